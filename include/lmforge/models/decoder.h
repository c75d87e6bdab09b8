// Decoder-only language models (GPT-2, LLaMA and its relatives Qwen2/Mistral): the interface the
// generation loop, perplexity and training use, and the per-layer KV cache the generation loop
// owns. Families implement it in their own files (models/gpt2.h, models/llama.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lmforge/models/model.h"
#include "lmforge/nn/attention.h"

namespace lmf::models {

// Keys and values of every layer, preallocated to `capacity` positions ([B, n_kv_heads,
// capacity, head_dim] per layer), so decoding never reallocates and memory is bounded. Owned by
// the caller (the generation loop), passed to forward().
class KVCache {
 public:
  KVCache() = default;
  KVCache(int64_t num_layers, int64_t batch, int64_t n_kv_heads, int64_t head_dim,
          int64_t capacity);
  int64_t length() const { return length_; }  // positions stored (the same in every layer)
  int64_t capacity() const { return capacity_; }
  int64_t batch() const { return batch_; }
  int64_t num_layers() const { return static_cast<int64_t>(k_.size()); }
  // Layer `layer`'s buffers [B, n_kv_heads, capacity, head_dim]; positions [0, length) are valid.
  // Batch row b lives in buffer row physical_row(b) (b until a reorder relabels rows).
  Tensor& keys(int64_t layer) { return k_.at(layer); }
  Tensor& values(int64_t layer) { return v_.at(layer); }
  int64_t physical_row(int64_t b) const { return rows_.empty() ? b : rows_.at(b); }
  // Called by the model after every layer wrote `n` new positions at [length, length + n).
  void advance(int64_t n);
  // Beam search / batch compaction: row b becomes old row rows[b] (rows.size() may differ from
  // batch()). With the batch size kept, rows are relabelled (physical_row) and only rows taken
  // twice are copied; a new size compacts the buffers.
  void reorder(const std::vector<int64_t>& rows);
  void truncate(int64_t length);  // forget positions >= length (length <= this->length())
  void reset() {
    length_ = 0;
    rows_.clear();
  }
  // Layer `layer`'s buffers as the attention reads and extends them (positions [0, length)).
  nn::KVCache layer(int64_t layer) const {
    return nn::KVCache{Tensor(),     Tensor(), k_.at(layer),
                       v_.at(layer), length_,  rows_.empty() ? nullptr : rows_.data()};
  }
  size_t bytes() const;

 private:
  std::vector<Tensor> k_, v_;
  // reorder()'s destination buffers, swapped with k_/v_ after each copy: beam search reorders
  // every step, and fresh multi-MiB buffers each time cost page faults (and huge-page zeroing).
  std::vector<Tensor> spare_k_, spare_v_;
  // Buffer row of each batch row after a relabelling reorder; empty: row b is buffer row b.
  std::vector<int64_t> rows_;
  int64_t batch_ = 0, capacity_ = 0, length_ = 0;
  bool relabel(const std::vector<int64_t>& rows);
};

struct DecoderInputs {
  Tensor input_ids;  // integer [B, T]: the new tokens (after the cache's positions)
  // [B, past + T] of 1 (attend) / 0 (padding), covering the cached and the new positions (HF's
  // convention with left padding); undefined: every position is attended.
  Tensor attention_mask;
  // [B, T]; undefined: as transformers' generate, cumsum(attention_mask) - 1 (1 where masked)
  // when a mask is given, else past + arange(T).
  Tensor position_ids;
  KVCache* cache = nullptr;  // read, and extended by T positions; null: no cache
  // Logits only for the last `logits_to_keep` positions (HF's logits_to_keep); 0: all.
  int64_t logits_to_keep = 0;
  // Inference with a cache and logits_to_keep > 0: the last layer computes only the kept positions
  // (all positions' keys/values are still cached), as llama.cpp skips unused outputs; the kept
  // logits are unchanged, last_hidden_state then holds the kept positions only. Used by
  // generate()'s prefill; families without it (GPT-2) ignore it.
  bool prune_last_layer = false;
  bool output_hidden_states = false;
  // Sequence-classification heads: logits [B, T, L] of every position (the head applied to each
  // hidden state, as TRL's get_reward and PPO's value model use it) instead of the rightmost
  // non-pad token's [B, L]. Ignored by LM heads.
  bool score_every_position = false;
};

struct DecoderLabels {
  // Causal LM: [B, T] next-token targets shifted inside the model as HF does (-100 ignored).
  // Sequence classification: [B] (integer) or [B, L] float; token classification: [B, T].
  Tensor labels;
};

struct DecoderOutput {
  Tensor loss;               // scalar when labels were given
  Tensor logits;             // LM [B, T', V]; sequence classification [B, L];
                             // token classification [B, T, L]
  Tensor last_hidden_state;  // [B, T, H] after the final norm
  // On request: the embeddings output, then each layer's output, the last one replaced by
  // last_hidden_state (after the final norm), as transformers 5.x returns them.
  std::vector<Tensor> hidden_states;
};

// Shape facts the generation loop needs, read from the family's config.
struct DecoderSpec {
  int64_t vocab_size = 0;
  int64_t num_layers = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_positions = 0;  // hard limit (n_positions for GPT-2); 0: none (scaled RoPE)
  // The trained context: config max_position_embeddings (n_positions for GPT-2); the default
  // window of perplexity and chat's history budget.
  int64_t trained_positions = 0;
  std::vector<int64_t> eos_token_ids;
  int64_t bos_token_id = -1;  // -1: none
  int64_t pad_token_id = -1;  // -1: none
};

class DecoderModel : public PretrainedModel {
 public:
  // Runs in the module's mode (dropout in training only); no-grad is up to the caller.
  virtual DecoderOutput forward(const DecoderInputs& in,
                                const DecoderLabels& labels = {}) const = 0;
  virtual DecoderSpec spec() const = 0;
  // True for *LMHeadModel / *ForCausalLM (logits over the vocabulary).
  virtual bool is_causal_lm() const = 0;
  // A cache sized for this model: `capacity` positions (<= max_positions) for `batch` rows.
  KVCache make_cache(int64_t batch, int64_t capacity) const;
};

}  // namespace lmf::models
