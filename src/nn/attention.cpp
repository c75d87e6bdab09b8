// Construction of MultiHeadAttention (its forward is in forward.cpp).
#include "lmforge/nn/attention.h"

namespace lmf::nn {

AttentionConfig AttentionConfig::bert(int64_t dim, int64_t n_heads, double dropout) {
  AttentionConfig c;
  c.dim = dim;
  c.n_heads = n_heads;
  c.dropout = dropout;
  c.o_name = "";
  return c;
}

AttentionConfig AttentionConfig::llama(int64_t dim, int64_t n_heads, int64_t n_kv_heads,
                                       double rope_theta) {
  AttentionConfig c;
  c.dim = dim;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.qkv_bias = false;
  c.out_bias = false;
  c.rope_theta = rope_theta;
  c.q_name = "q_proj";
  c.k_name = "k_proj";
  c.v_name = "v_proj";
  c.o_name = "o_proj";
  return c;
}

MultiHeadAttention::MultiHeadAttention(const AttentionConfig& config) : cfg_(config) {
  AttentionConfig& c = cfg_;
  LMF_CHECK(c.dim > 0 && c.n_heads > 0, ValueError,
            "MultiHeadAttention: dim {} and n_heads {} must be positive", c.dim, c.n_heads);
  if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
  if (c.kv_input_dim == 0) c.kv_input_dim = c.dim;
  if (c.head_dim == 0) {
    LMF_CHECK(c.dim % c.n_heads == 0, ValueError,
              "MultiHeadAttention: dim {} is not a multiple of n_heads {} (set head_dim)", c.dim,
              c.n_heads);
    c.head_dim = c.dim / c.n_heads;
  }
  LMF_CHECK(c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0, ValueError,
            "MultiHeadAttention: n_kv_heads {} must divide n_heads {}", c.n_kv_heads, c.n_heads);
  LMF_CHECK(c.dropout >= 0 && c.dropout < 1, ValueError,
            "MultiHeadAttention: dropout {} must lie in [0, 1)", c.dropout);
  LMF_CHECK(c.rope_theta == 0 || c.head_dim % 2 == 0, ValueError,
            "MultiHeadAttention: rotary embedding needs an even head_dim, got {}", c.head_dim);
  q_ = register_module(c.q_name,
                       std::make_shared<Linear>(c.dim, c.n_heads * c.head_dim, c.qkv_bias));
  k_ = register_module(
      c.k_name, std::make_shared<Linear>(c.kv_input_dim, c.n_kv_heads * c.head_dim, c.qkv_bias));
  v_ = register_module(
      c.v_name, std::make_shared<Linear>(c.kv_input_dim, c.n_kv_heads * c.head_dim, c.qkv_bias));
  if (!c.o_name.empty())
    o_ = register_module(c.o_name,
                         std::make_shared<Linear>(c.n_heads * c.head_dim, c.dim, c.out_bias));
}

}  // namespace lmf::nn
