// Multi-head attention with separate q/k/v/o Linear projections whose names the model chooses
// (BERT: query/key/value; LLaMA: q_proj/k_proj/v_proj/o_proj), self- or cross-attention,
// grouped-query heads, optional rotary embedding and a KV cache for incremental decoding.
#pragma once
#include <string>

#include "lmforge/nn/layers.h"

namespace lmf::nn {

struct AttentionConfig {
  int64_t dim = 0;  // model width: input of q, output of o
  int64_t n_heads = 1;
  int64_t n_kv_heads = 0;    // 0: n_heads; fewer (dividing n_heads): grouped-query attention
  int64_t head_dim = 0;      // 0: dim / n_heads
  int64_t kv_input_dim = 0;  // width of the cross-attention context; 0: dim
  bool qkv_bias = true;
  bool out_bias = true;
  double dropout = 0.0;     // on the attention probabilities, in training mode only
  double rope_theta = 0.0;  // > 0: rotary embedding (HF LLaMA convention) on q and k
  std::string q_name = "query", k_name = "key", v_name = "value";
  std::string o_name = "output";  // empty: no output projection (the caller applies its own)

  // HF BERT's BertSelfAttention: query/key/value with biases; the output projection lives in the
  // sibling BertSelfOutput ("attention.output.dense"), so there is none here.
  static AttentionConfig bert(int64_t dim, int64_t n_heads, double dropout = 0.0);
  // HF LLaMA's LlamaAttention: q_proj/k_proj/v_proj/o_proj without biases, rotary positions.
  static AttentionConfig llama(int64_t dim, int64_t n_heads, int64_t n_kv_heads,
                               double rope_theta = 10000.0);
};

// Keys and values of the past positions, [B, n_kv_heads, T_past, head_dim] (after rotary).
// For cross-attention the encoder's keys/values are stored on the first call and reused.
struct KVCache {
  Tensor k, v;
  int64_t length() const { return k.defined() ? k.size(2) : 0; }
};

struct AttentionInputs {
  Tensor context;            // cross-attention source [B, Tk, kv_input_dim]; undefined: self
  AttentionOptions options;  // masks, causal, scale, return_probs (dropout comes from the module)
  Tensor positions;          // rotary positions [T] or [B, T]; default past_length + arange(T)
  KVCache* cache = nullptr;  // incremental decoding: read and extended
};

class MultiHeadAttention : public Module {
 public:
  explicit MultiHeadAttention(const AttentionConfig& config);
  // x [B, T, dim] -> out [B, T, dim] (or [B, T, n_heads * head_dim] without an output
  // projection); probs [B, n_heads, T, Tk] when options.return_probs.
  AttentionResult forward(const Tensor& x, const AttentionInputs& in = {}) const;
  const AttentionConfig& config() const { return cfg_; }
  const Linear& q_proj() const { return *q_; }
  const Linear& k_proj() const { return *k_; }
  const Linear& v_proj() const { return *v_; }
  const Linear* o_proj() const { return o_.get(); }  // null without an output projection

 protected:
  // Prepared for inference, self-attention over a small input runs q/k/v as one packed
  // projection (one kernel call instead of three), built on first use like Linear's.
  void on_prepare_inference(bool prepare) override;

 private:
  // The fused q/k/v projection [B, T, (n_heads + 2 n_kv_heads) head_dim], or undefined where
  // it does not apply (not prepared, training, gradients, too many rows, cross-attention).
  Tensor fused_qkv(const Tensor& x) const;

  AttentionConfig cfg_;
  std::shared_ptr<Linear> q_, k_, v_, o_;
  bool fuse_allowed_ = false;
  mutable std::mutex fuse_mu_;
  mutable std::shared_ptr<const PackedLinearWeight> qkv_packed_;
  mutable Tensor qkv_bias_;
};

}  // namespace lmf::nn
