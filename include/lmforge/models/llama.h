// The LLaMA decoder family, readable top to bottom like modeling_llama.py: config (with
// rope_parameters as transformers 5.x reads and writes it), rotary embedding (default, linear,
// dynamic NTK, llama3), attention (GQA/MQA), SwiGLU MLP, decoder layer, model, heads. Qwen2 (q/k/v
// biases) and Mistral (sliding-window attention) are options of the family (config.variant), not
// copies. Parameter names are HF's state-dict keys.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/models/decoder.h"
#include "lmforge/nn/attention.h"
#include "lmforge/nn/feed_forward.h"
#include "lmforge/nn/layers.h"

namespace lmf::models {

enum class LlamaVariant { llama, qwen2, mistral };  // config.json "model_type"
const char* variant_name(LlamaVariant v);           // "llama", "qwen2", "mistral"

// transformers' rope_parameters (older configs: rope_scaling + rope_theta, converted on load as
// transformers 5.x does; written back as rope_parameters).
struct RopeParameters {
  std::string rope_type = "default";  // default | linear | dynamic | llama3
  double rope_theta = 10000.0;
  double factor = 1.0;                           // linear, dynamic, llama3
  double low_freq_factor = 1.0;                  // llama3
  double high_freq_factor = 4.0;                 // llama3
  int64_t original_max_position_embeddings = 0;  // llama3
  // The object as transformers writes it (its other keys, e.g. a legacy "type", kept), raw
  // JSON; empty: made from the fields above.
  std::string raw;
};

// Field names and defaults as transformers' LlamaConfig / Qwen2Config / MistralConfig
// (defaults(variant) gives each one's defaults).
struct LlamaConfig {
  LlamaVariant variant = LlamaVariant::llama;
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;  // fewer: grouped-query attention (1: multi-query)
  int64_t head_dim = 128;            // llama/mistral field; qwen2: hidden_size / heads
  std::string hidden_act = "silu";
  int64_t max_position_embeddings = 2048;
  double initializer_range = 0.02;
  double rms_norm_eps = 1e-6;
  bool use_cache = true;
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id = 1;
  int64_t pretraining_tp = 1;  // llama only (written, ignored)
  bool tie_word_embeddings = false;
  RopeParameters rope;
  bool attention_bias = false;  // llama: bias on q/k/v/o; qwen2: q/k/v always, o never
  double attention_dropout = 0.0;
  bool mlp_bias = false;  // llama only
  // Mistral: every layer attends a window of sliding_window keys (none: full attention).
  // Qwen2: layers whose layer_types entry is "sliding_attention" do (when use_sliding_window).
  std::optional<int64_t> sliding_window;
  bool use_sliding_window = false;       // qwen2
  int64_t max_window_layers = 28;        // qwen2
  std::vector<std::string> layer_types;  // qwen2: "full_attention" | "sliding_attention"
  // Architectures, labels, eos ids, extra keys (see models/decoder_util.h in src).
  std::vector<std::string> architectures;
  int64_t num_labels = 2;
  std::map<int64_t, std::string> id2label;
  std::map<std::string, int64_t> label2id;
  std::string problem_type;
  std::vector<int64_t> eos_token_ids = {2};
  bool eos_is_list = false;
  bool eos_set = true;
  std::map<std::string, std::string> extra;

  static LlamaConfig defaults(LlamaVariant v);
  // Parses config.json text (model_type llama, qwen2 or mistral); ValueError naming the key.
  static LlamaConfig from_json(const std::string& text, const std::string& origin = "config.json");
  // config.json as transformers' save_pretrained writes it, architectures = [architecture].
  std::string to_json(const std::string& architecture) const;
  // The sliding window of layer i (0: full attention).
  int64_t layer_window(int64_t i) const;
};

// transformers' LlamaRotaryEmbedding: inv_freq (f32, as HF computes it) and attention_scaling for
// the rope type; the dynamic type recomputes inv_freq from the longest position seen, keeping
// transformers' state (grow beyond the cached length, reset below the original one).
class LlamaRotaryEmbedding {
 public:
  explicit LlamaRotaryEmbedding(const LlamaConfig& c);
  // The frequencies for a forward whose largest position id is max_position.
  nn::RopeFrequencies frequencies(int64_t max_position) const;
  // q/k rows in llama.cpp's GGUF order: rotary pairs interleaved (nn::RopeFrequencies).
  void set_interleaved(bool on) { interleaved_ = on; }
  bool interleaved() const { return interleaved_; }

 private:
  std::vector<float> compute(int64_t seq_len) const;  // inv_freq for a sequence length
  nn::RopeFrequencies dynamic_frequencies(int64_t max_position) const;
  LlamaConfig cfg_;
  int64_t dim_;
  nn::RopeFrequencies original_;
  mutable std::mutex mu_;
  mutable nn::RopeFrequencies current_;
  mutable int64_t max_seq_len_cached_;
  bool interleaved_ = false;
};

// LlamaDecoderLayer: x + attn(input_layernorm(x)), then h + mlp(post_attention_layernorm(h)).
class LlamaDecoderLayer : public nn::Module {
 public:
  LlamaDecoderLayer(const LlamaConfig& c, int64_t layer_idx);
  Tensor forward(const Tensor& x, const nn::AttentionInputs& in) const;

 private:
  std::shared_ptr<nn::MultiHeadAttention> self_attn_;
  std::shared_ptr<nn::FeedForward> mlp_;
  std::shared_ptr<nn::RMSNorm> input_layernorm_, post_attention_layernorm_;
};

// LlamaModel: embed_tokens, layers, norm (keys without a prefix).
class LlamaModel : public DecoderModel {
 public:
  explicit LlamaModel(const LlamaConfig& c);
  const LlamaConfig& config() const { return cfg_; }
  std::string model_type() const override { return variant_name(cfg_.variant); }
  std::string architecture() const override;
  std::string config_json() const override { return cfg_.to_json(architecture()); }
  LoadSpec load_spec() const override;
  void init_missing(const std::vector<std::string>& keys) override;
  DecoderOutput forward(const DecoderInputs& in, const DecoderLabels& labels = {}) const override;
  DecoderSpec spec() const override;
  bool is_causal_lm() const override { return false; }
  nn::Embedding& embed_tokens() { return *embed_tokens_; }
  // Runs q_proj / k_proj weights kept in llama.cpp's rotary row order (a GGUF file's, read in
  // place) with interleaved rotary pairs: the same outputs without un-permuted copies of the
  // weights. Saving writes them back in HF's order (to_saved_layout).
  void set_gguf_rotary_layout(bool on) { rotary_emb_.set_interleaved(on); }
  bool gguf_rotary_layout() const { return rotary_emb_.interleaved(); }
  void to_saved_layout(nn::StateDict& tensors) const override;

 private:
  LlamaConfig cfg_;
  std::shared_ptr<nn::Embedding> embed_tokens_;
  std::shared_ptr<nn::ModuleList> layers_;
  std::shared_ptr<nn::RMSNorm> norm_;
  LlamaRotaryEmbedding rotary_emb_;
};

// A head on `model` (keys "model.*"): LlamaForCausalLM (lm_head, tied to embed_tokens when
// tie_word_embeddings) or LlamaForSequenceClassification (score, no bias; the rightmost
// non-pad token as HF).
class LlamaForCausalLM : public DecoderModel {
 public:
  explicit LlamaForCausalLM(const LlamaConfig& c);
  const LlamaConfig& config() const { return model_->config(); }
  std::string model_type() const override { return model_->model_type(); }
  std::string architecture() const override;
  std::string config_json() const override { return config().to_json(architecture()); }
  LoadSpec load_spec() const override;
  void init_missing(const std::vector<std::string>& keys) override;
  DecoderOutput forward(const DecoderInputs& in, const DecoderLabels& labels = {}) const override;
  DecoderSpec spec() const override { return model_->spec(); }
  bool is_causal_lm() const override { return true; }
  LlamaModel& model() { return *model_; }
  void to_saved_layout(nn::StateDict& tensors) const override;
  // Re-establishes lm_head = embed_tokens after the embedding tensor was replaced (loading).
  void tie_weights();

 private:
  std::shared_ptr<LlamaModel> model_;
  std::shared_ptr<nn::Linear> lm_head_;
};

class LlamaForSequenceClassification : public DecoderModel {
 public:
  explicit LlamaForSequenceClassification(const LlamaConfig& c);
  const LlamaConfig& config() const { return model_->config(); }
  std::string model_type() const override { return model_->model_type(); }
  std::string architecture() const override;
  std::string config_json() const override { return config().to_json(architecture()); }
  LoadSpec load_spec() const override;
  void init_missing(const std::vector<std::string>& keys) override;
  DecoderOutput forward(const DecoderInputs& in, const DecoderLabels& labels = {}) const override;
  DecoderSpec spec() const override { return model_->spec(); }
  bool is_causal_lm() const override { return false; }
  LlamaModel& model() { return *model_; }
  void to_saved_layout(nn::StateDict& tensors) const override;

 private:
  std::shared_ptr<LlamaModel> model_;
  std::shared_ptr<nn::Linear> score_;
};

// Permutes the rows of a q/k projection weight [out, in] or bias [out] between llama.cpp's rotary
// layout ((dim, 2) pairs per head, GGUF) and HF's ((2, dim) halves): to_hf undoes llama.cpp's
// permute (transformers' _reverse_permute_weights), else applies it (convert_hf_to_gguf.py).
// ValueError (naming `name`) when the rows do not split into n_head heads of pairs.
Tensor llama_permute_rotary_rows(const Tensor& w, int64_t n_head, bool to_hf,
                                 const std::string& name);
// The LlamaModel of `m` (itself, or the model under a LlamaFor* head); null for other families.
LlamaModel* llama_base_model(PretrainedModel& m);

// Builds architecture `arch` ("LlamaForCausalLM", "Qwen2Model", "MistralForCausalLM", ...);
// ValueError naming the supported ones.
std::unique_ptr<DecoderModel> make_llama_model(const LlamaConfig& c, const std::string& arch);
// Registers llama, qwen2 and mistral with the architecture registry.
void register_llama_family();

}  // namespace lmf::models
