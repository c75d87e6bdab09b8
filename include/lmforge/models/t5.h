// The T5 family (T5Model, T5ForConditionalGeneration, T5EncoderModel) as modeling_t5.py builds it:
// pre-norm blocks with T5LayerNorm (RMS, no bias), no 1/sqrt(d) query scaling, a learned relative
// position bias (bucketed, in the first block only, shared by the later ones), relu or gated-ACT
// feed-forward, one shared embedding. Parameter names are HF's state-dict keys.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/models/encoder_decoder.h"
#include "lmforge/nn/attention.h"
#include "lmforge/nn/layers.h"

namespace lmf::models {

// Field names and defaults as transformers' T5Config (5.25). transformers 5.25 always sets
// tie_word_embeddings true (lm_head is untied only when a checkpoint holds a different
// lm_head.weight); a config's "tie_word_embeddings": false becomes scale_decoder_outputs false (no
// d_model**-0.5 before lm_head), which is then written back.
struct T5Config {
  int64_t vocab_size = 32128;
  int64_t d_model = 512;
  int64_t d_kv = 64;
  int64_t d_ff = 2048;
  int64_t num_layers = 6;
  int64_t num_decoder_layers = 6;  // absent or null: num_layers
  int64_t num_heads = 8;
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  double dropout_rate = 0.1;
  double layer_norm_epsilon = 1e-6;
  double initializer_factor = 1.0;
  std::string feed_forward_proj = "relu";  // "ACT" or "gated-ACT" ("gated-gelu": gelu_new)
  bool is_encoder_decoder = true;
  bool use_cache = true;
  std::optional<int64_t> pad_token_id = 0;
  double classifier_dropout = 0.0;
  bool is_decoder = false;
  bool scale_decoder_outputs = true;
  // Not T5Config fields but read by generate() when a config.json carries them (kept verbatim in
  // `extra`): real T5 checkpoints set decoder_start_token_id 0 (the pad token).
  std::optional<int64_t> decoder_start_token_id;
  std::optional<int64_t> bos_token_id;
  std::vector<std::string> architectures;
  int64_t num_labels = 2;
  std::map<int64_t, std::string> id2label;
  std::map<std::string, int64_t> label2id;
  std::string problem_type;
  std::vector<int64_t> eos_token_ids = {1};
  bool eos_is_list = false;
  bool eos_set = true;
  std::map<std::string, std::string> extra;  // other keys, raw JSON, written back

  // Derived from feed_forward_proj as T5Config.__post_init__ does.
  std::string dense_act_fn() const;
  bool is_gated_act() const;
  int64_t inner_dim() const { return num_heads * d_kv; }
  static T5Config from_json(const std::string& text, const std::string& origin = "config.json");
  std::string to_json(const std::string& architecture) const;
};

// T5Attention._relative_position_bucket for one relative position (memory - query), with the same
// f32 arithmetic: exact buckets for small distances, logarithmic ones up to max_distance, the last
// bucket beyond; bidirectional (encoder) uses half the buckets per direction, causal (decoder)
// maps positive distances to bucket 0.
int64_t t5_relative_position_bucket(int64_t relative_position, bool bidirectional,
                                    int64_t num_buckets, int64_t max_distance);

// T5LayerSelfAttention / T5LayerCrossAttention: x + dropout(attn(layer_norm(x))). The attention is
// a MultiHeadAttention named SelfAttention / EncDecAttention (q, k, v, o without biases); the first
// self-attention block also owns relative_attention_bias [num_buckets, num_heads].
class T5LayerAttention : public nn::Module {
 public:
  T5LayerAttention(const T5Config& c, bool cross, bool has_relative_attention_bias);
  Tensor forward(const Tensor& x, const nn::AttentionInputs& in, std::vector<Tensor>* probs) const;
  // The bias [1, H, Tq, Tk] of queries past..past+Tq-1 over keys 0..Tk-1 (compute_bias).
  Tensor compute_bias(int64_t Tq, int64_t Tk, int64_t past, bool bidirectional) const;
  bool has_relative_attention_bias() const { return relative_attention_bias_ != nullptr; }

 private:
  double dropout_;
  int64_t num_buckets_, max_distance_;
  std::shared_ptr<nn::MultiHeadAttention> attn_;
  std::shared_ptr<nn::Embedding> relative_attention_bias_;
  std::shared_ptr<nn::RMSNorm> layer_norm_;
};

// T5LayerFF: x + dropout(DenseReluDense(layer_norm(x))), DenseReluDense = wo(dropout(act(wi(x))))
// or, gated, wo(dropout(act(wi_0(x)) * wi_1(x))).
class T5LayerFF : public nn::Module {
 public:
  explicit T5LayerFF(const T5Config& c);
  Tensor forward(const Tensor& x) const;

 private:
  double dropout_;
  Activation act_;
  std::shared_ptr<nn::Linear> wi_, wi_0_, wi_1_, wo_;
  std::shared_ptr<nn::RMSNorm> layer_norm_;
};

// T5Stack: embed_tokens (tied to shared), block.N.layer.{0: self-attention, [1: cross-attention],
// last: FF}, final_layer_norm, dropout.
class T5Stack : public nn::Module {
 public:
  T5Stack(const T5Config& c, bool decoder);
  nn::Embedding& embed_tokens() { return *embed_tokens_; }
  struct Inputs {
    Tensor key_padding;            // self-attention key padding [B, past + T] or undefined
    Tensor encoder_hidden_states;  // decoder
    Tensor encoder_key_padding;    // decoder: source padding [B, S] or undefined
    KVCache* cache = nullptr;      // decoder: self-attention per layer
    std::vector<nn::KVCache>* cross = nullptr;  // decoder: cross-attention per layer
    std::vector<Tensor>* self_probs = nullptr;
    std::vector<Tensor>* cross_probs = nullptr;
  };
  // ids [B, T] -> the final layer norm's output [B, T, d_model] (the cache is advanced by T).
  Tensor forward(const Tensor& ids, const Inputs& in) const;
  int64_t num_blocks() const { return static_cast<int64_t>(blocks_.size()); }

 private:
  bool decoder_;
  double dropout_;
  std::shared_ptr<nn::Embedding> embed_tokens_;
  struct Block {
    std::shared_ptr<T5LayerAttention> self, cross;
    std::shared_ptr<T5LayerFF> ff;
  };
  std::vector<Block> blocks_;
  std::shared_ptr<nn::RMSNorm> final_layer_norm_;
};

// T5Model (shared, encoder, decoder), T5ForConditionalGeneration (+ lm_head, tied to shared unless
// the checkpoint holds a different one), T5EncoderModel (shared, encoder). No key prefix.
class T5Model : public EncoderDecoderModel {
 public:
  enum class Kind { model, conditional_generation, encoder };
  T5Model(const T5Config& c, Kind kind);
  const T5Config& config() const { return cfg_; }
  std::string model_type() const override { return "t5"; }
  std::string architecture() const override;
  std::string config_json() const override { return cfg_.to_json(architecture()); }
  LoadSpec load_spec() const override;
  // Unties lm_head when the checkpoint's lm_head.weight differs from shared.weight (as
  // transformers 5.25), then the generic load.
  LoadReport load(const nn::StateDict& state, const LoadOptions& opt = {},
                  const std::string& origin = "checkpoint") override;
  void init_missing(const std::vector<std::string>& keys) override;
  EncoderOutput encode(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                       bool output_attentions = false) const override;
  Seq2SeqOutput forward(const Seq2SeqInputs& in, const Seq2SeqLabels& labels = {}) const override;
  Seq2SeqSpec spec() const override;
  bool is_seq2seq_lm() const override { return lm_head_ != nullptr; }
  bool lm_head_tied() const { return lm_head_ && lm_tied_; }

 private:
  void tie_weights();
  T5Config cfg_;
  Kind kind_;
  bool lm_tied_ = true;
  std::shared_ptr<nn::Embedding> shared_;
  std::shared_ptr<T5Stack> encoder_, decoder_;
  std::shared_ptr<nn::Linear> lm_head_;
};

// Builds the architecture named (T5Model, T5ForConditionalGeneration, T5EncoderModel); ValueError
// naming the supported ones.
std::unique_ptr<EncoderDecoderModel> make_t5_model(const T5Config& c, const std::string& arch);
void register_t5_family();

}  // namespace lmf::models
