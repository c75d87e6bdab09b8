// The GPT-2 decoder family, readable top to bottom like modeling_gpt2.py: config, attention
// (fused c_attn Conv1D), MLP, block, model (learned positions), heads (tied LM head, sequence and
// token classification). Parameter names are HF's state-dict keys.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/models/decoder.h"
#include "lmforge/nn/attention.h"
#include "lmforge/nn/layers.h"

namespace lmf::models {

// Field names and defaults as transformers' GPT2Config.
struct GPT2Config {
  int64_t vocab_size = 50257;
  int64_t n_positions = 1024;
  int64_t n_embd = 768;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  std::optional<int64_t> n_inner;  // none: 4 * n_embd
  std::string activation_function = "gelu_new";
  double resid_pdrop = 0.1;
  double embd_pdrop = 0.1;
  double attn_pdrop = 0.1;
  double layer_norm_epsilon = 1e-5;
  double initializer_range = 0.02;
  std::string summary_type = "cls_index";  // GPT2DoubleHeadsModel's fields, written back only
  bool summary_use_proj = true;
  std::optional<std::string> summary_activation;
  bool summary_proj_to_labels = true;
  double summary_first_dropout = 0.1;
  bool scale_attn_weights = true;
  bool use_cache = true;
  bool add_cross_attention = false;  // only false is supported
  bool scale_attn_by_inverse_layer_idx = false;
  bool reorder_and_upcast_attn = false;  // f32 only here, so the same numbers
  std::optional<int64_t> bos_token_id = 50256;
  std::optional<int64_t> pad_token_id;
  bool tie_word_embeddings = true;
  std::optional<double> classifier_dropout;  // token classification (an extra key in HF)
  std::vector<std::string> architectures;
  int64_t num_labels = 2;
  std::map<int64_t, std::string> id2label;
  std::map<std::string, int64_t> label2id;
  std::string problem_type;
  std::vector<int64_t> eos_token_ids = {50256};
  bool eos_is_list = false;
  bool eos_set = true;
  std::map<std::string, std::string> extra;  // other keys, raw JSON, written back

  int64_t inner_dim() const { return n_inner.value_or(4 * n_embd); }
  int64_t head_dim() const { return n_embd / n_head; }
  static GPT2Config from_json(const std::string& text, const std::string& origin = "config.json");
  std::string to_json(const std::string& architecture) const;
};

// GPT2Attention: c_attn (q|k|v fused, Conv1D [n_embd, 3 n_embd]), c_proj; scaled by 1/sqrt(D)
// (scale_attn_weights) and 1/(layer_idx + 1) (scale_attn_by_inverse_layer_idx).
class GPT2Attention : public nn::Module {
 public:
  GPT2Attention(const GPT2Config& c, int64_t layer_idx);
  Tensor forward(const Tensor& x, const AttentionOptions& options, nn::KVCache* cache) const;

 private:
  int64_t n_head_, head_dim_;
  double scale_;
  std::shared_ptr<nn::Conv1D> c_attn_, c_proj_;
  std::shared_ptr<nn::Dropout> resid_dropout_;
  double attn_pdrop_;
};

// GPT2Block: x + attn(ln_1(x)), then h + mlp(ln_2(h)); mlp = c_proj(act(c_fc(h))).
class GPT2Block : public nn::Module {
 public:
  GPT2Block(const GPT2Config& c, int64_t layer_idx);
  Tensor forward(const Tensor& x, const AttentionOptions& options, nn::KVCache* cache) const;

 private:
  std::shared_ptr<nn::LayerNorm> ln_1_, ln_2_;
  std::shared_ptr<GPT2Attention> attn_;
  std::shared_ptr<nn::Conv1D> c_fc_, mlp_c_proj_;
  std::shared_ptr<nn::Dropout> mlp_dropout_;
  Activation act_;
};

// GPT2Model: wte, wpe, drop, h, ln_f (keys without a prefix).
class GPT2Model : public DecoderModel {
 public:
  explicit GPT2Model(const GPT2Config& c);
  const GPT2Config& config() const { return cfg_; }
  std::string model_type() const override { return "gpt2"; }
  std::string architecture() const override { return "GPT2Model"; }
  std::string config_json() const override { return cfg_.to_json(architecture()); }
  LoadSpec load_spec() const override;
  void init_missing(const std::vector<std::string>& keys) override;
  DecoderOutput forward(const DecoderInputs& in, const DecoderLabels& labels = {}) const override;
  DecoderSpec spec() const override;
  bool is_causal_lm() const override { return false; }
  nn::Embedding& wte() { return *wte_; }

 private:
  GPT2Config cfg_;
  std::shared_ptr<nn::Embedding> wte_, wpe_;
  std::shared_ptr<nn::Dropout> drop_;
  std::shared_ptr<nn::ModuleList> h_;
  std::shared_ptr<nn::LayerNorm> ln_f_;
};

// Heads on `transformer` (keys "transformer.*").
enum class GPT2Head { lm, sequence_classification, token_classification };

class GPT2HeadModel : public DecoderModel {
 public:
  GPT2HeadModel(const GPT2Config& c, GPT2Head head);
  const GPT2Config& config() const { return transformer_->config(); }
  std::string model_type() const override { return "gpt2"; }
  std::string architecture() const override;
  std::string config_json() const override { return config().to_json(architecture()); }
  LoadSpec load_spec() const override;
  void init_missing(const std::vector<std::string>& keys) override;
  DecoderOutput forward(const DecoderInputs& in, const DecoderLabels& labels = {}) const override;
  DecoderSpec spec() const override { return transformer_->spec(); }
  bool is_causal_lm() const override { return head_ == GPT2Head::lm; }
  GPT2Model& transformer() { return *transformer_; }
  void tie_weights();  // lm_head = wte (GPT2LMHeadModel with tie_word_embeddings)

 private:
  GPT2Head head_;
  std::shared_ptr<GPT2Model> transformer_;
  std::shared_ptr<nn::Linear> out_;  // lm_head, score or classifier
  std::shared_ptr<nn::Dropout> dropout_;
};

// Builds architecture `arch` (GPT2Model, GPT2LMHeadModel, GPT2ForSequenceClassification,
// GPT2ForTokenClassification); ValueError naming the supported ones.
std::unique_ptr<DecoderModel> make_gpt2_model(const GPT2Config& c, const std::string& arch);
void register_gpt2_family();

}  // namespace lmf::models
