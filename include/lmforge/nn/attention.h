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

// Rotary frequencies a model computes once per forward (transformers' rotary embedding after
// rope_scaling: inv_freq [head_dim / 2] and the cos/sin scaling) and hands to every layer.
struct RopeFrequencies {
  Tensor inv_freq;
  double attention_scaling = 1.0;
  // q/k projection rows in llama.cpp's GGUF order (rotary pairs interleaved per head): the same
  // attention as HF's layout with rotate_half, without un-permuting the checkpoint's weights.
  bool interleaved = false;
};

// Keys and values of the past positions (after rotary), in one of two forms.
// Growing form: k, v [B, n_kv_heads, T_past, head_dim], replaced by past + new each call (and, for
// cross-attention, the encoder's keys/values stored on the first call and reused).
// Preallocated form (models::KVCache, self-attention): k_buffer / v_buffer [B, n_kv_heads,
// capacity, head_dim] of which positions [0, past) are valid; a call writes its T new keys/values
// at [past, past + T) and attends [0, past + T) without reallocating or concatenating. The owner
// advances `past` once every layer has run.
struct KVCache {
  Tensor k, v;
  Tensor k_buffer, v_buffer;
  int64_t past = 0;
  // Preallocated form: the buffer row holding batch row b is rows[b] (beam search relabels rows
  // instead of moving them; see models::KVCache::reorder); null: row b.
  const int64_t* rows = nullptr;
  bool preallocated() const { return k_buffer.defined(); }
  int64_t length() const { return preallocated() ? past : (k.defined() ? k.size(2) : 0); }
};

struct AttentionInputs {
  Tensor context;            // cross-attention source [B, Tk, kv_input_dim]; undefined: self
  AttentionOptions options;  // masks, causal, scale, return_probs (dropout comes from the module)
  Tensor positions;          // rotary positions [T] or [B, T]; default past_length + arange(T)
  KVCache* cache = nullptr;  // incremental decoding: read and extended
  // Rotary frequencies for self-attention (overrides config.rope_theta); null: rope_theta's.
  const RopeFrequencies* rope = nullptr;
  // Inference, self-attention with a preallocated cache: only the last q_keep positions of x
  // produce outputs ([B, q_keep, dim]); the keys/values of all of them are cached. 0: all. (A
  // prompt's last layer needs no more than the positions whose logits are kept.)
  int64_t q_keep = 0;
};

// Self-attention of new q [B, H, T, D], k/v [B, Hkv, T, D] (any strides with a contiguous last
// dim, e.g. views of a fused projection) against a preallocated cache: applies the rotary
// embedding (when `rope` is given) to q and k, stores k and v at [past, past + T) of the cache's
// buffers and attends over [0, past + T). Without gradients the rotated keys are written straight
// into the cache and nothing but q's rotation and the output is allocated. Shared by
// MultiHeadAttention and models with their own projections (GPT-2's Conv1D).
// q_keep > 0: only the last q_keep query positions attend (their outputs alone are returned,
// [B, H, q_keep, Dv]); all T keys/values are still cached. options.attn_mask, when given, covers
// the q_keep kept rows.
AttentionResult cached_self_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                      KVCache& cache, const AttentionOptions& options,
                                      const Tensor& positions = Tensor(),
                                      const RopeFrequencies* rope = nullptr, int64_t q_keep = 0);

// A padded batch [B, S] reduced to its real positions: rows[i] = b * S + s of the i-th kept one.
// Inference of a padded encoder runs its projections and FFNs on the kept rows only.
struct PackedRows {
  int64_t B = 0, S = 0;
  std::vector<int64_t> rows;
};
// x [R, C] (any leading dims flattened, contiguous rows) -> [n, C]: the given rows, in order.
Tensor gather_rows(const Tensor& x, const std::vector<int64_t>& rows);
// x [n, C] -> [R, C] zeros with row rows[i] = x[i].
Tensor scatter_rows(const Tensor& x, const std::vector<int64_t>& rows, int64_t R);

class MultiHeadAttention : public Module {
 public:
  explicit MultiHeadAttention(const AttentionConfig& config);
  // x [B, T, dim] -> out [B, T, dim] (or [B, T, n_heads * head_dim] without an output
  // projection); probs [B, n_heads, T, Tk] when options.return_probs.
  AttentionResult forward(const Tensor& x, const AttentionInputs& in = {}) const;
  // Inference self-attention of a padded batch given as its kept rows, x [1, n, dim] (n =
  // p.rows.size()): the projections run on the kept rows, the attention on the padded layout
  // (options: its key padding), the output [1, n, dim] again holds the kept rows only. The kept
  // rows' values equal forward()'s on the padded batch.
  Tensor forward_packed(const Tensor& x, const PackedRows& p, const AttentionOptions& options) const;
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
