// The BART family (BartModel, BartForConditionalGeneration, BartForSequenceClassification) as
// transformers 5.25's modeling_bart.py builds it: one shared token embedding (scaled by sqrt(d)
// when scale_embedding), learned positions offset by 2, layernorm_embedding, the post-norm layers
// Marian shares (Seq2SeqLayer), an LM head tied to the shared matrix plus final_logits_bias, and a
// classification head on the decoder state of each row's last eos token.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/models/encoder_decoder.h"
#include "lmforge/models/seq2seq_layers.h"
#include "lmforge/nn/layers.h"

namespace lmf::models {

// Field names and defaults as transformers' BartConfig (5.25). 5.25 has no normalize_before /
// add_final_layer_norm (mBART's pre-norm lives in MBartConfig): BART is post-norm only.
struct BartConfig {
  int64_t vocab_size = 50265;
  int64_t max_position_embeddings = 1024;
  int64_t encoder_layers = 12;
  int64_t encoder_ffn_dim = 4096;
  int64_t encoder_attention_heads = 16;
  int64_t decoder_layers = 12;
  int64_t decoder_ffn_dim = 4096;
  int64_t decoder_attention_heads = 16;
  double encoder_layerdrop = 0.0;
  double decoder_layerdrop = 0.0;
  std::string activation_function = "gelu";
  int64_t d_model = 1024;
  double dropout = 0.1;
  double attention_dropout = 0.0;
  double activation_dropout = 0.0;
  double init_std = 0.02;
  double classifier_dropout = 0.0;
  bool scale_embedding = false;
  bool use_cache = true;
  std::optional<int64_t> pad_token_id = 1;
  std::optional<int64_t> bos_token_id = 0;
  bool is_encoder_decoder = true;
  std::optional<int64_t> decoder_start_token_id = 2;
  std::vector<int64_t> forced_eos_token_ids = {2};  // "forced_eos_token_id": int, list or null
  bool forced_eos_is_list = false;
  bool is_decoder = false;
  bool tie_word_embeddings = true;
  std::vector<std::string> architectures;
  int64_t num_labels = 3;  // BartConfig's default without id2label
  std::map<int64_t, std::string> id2label;
  std::map<std::string, int64_t> label2id;
  std::string problem_type;
  std::vector<int64_t> eos_token_ids = {2};
  bool eos_is_list = false;
  bool eos_set = true;
  std::map<std::string, std::string> extra;  // other keys, raw JSON, written back

  static BartConfig from_json(const std::string& text, const std::string& origin = "config.json");
  std::string to_json(const std::string& architecture) const;
};

// BartLearnedPositionalEmbedding: an embedding of max_position_embeddings + 2 rows; position p
// reads row p + 2 (fairseq's padding offset).
class BartLearnedPositions : public nn::Embedding {
 public:
  BartLearnedPositions(int64_t max_positions, int64_t dim);
  // Rows for positions [start, start + n) as [n, dim].
  Tensor forward(int64_t start, int64_t n) const;

 private:
  int64_t max_;
};

// BartEncoder / BartDecoder: embed_tokens, embed_positions, layers, layernorm_embedding.
class BartStack : public nn::Module {
 public:
  BartStack(const BartConfig& c, bool decoder);
  nn::Embedding& embed_tokens() { return *embed_tokens_; }
  const nn::ModuleList& layers() const { return *layers_; }
  // layernorm_embedding(tokens * embed_scale + positions [start, start + T)), dropout.
  Tensor embed(const Tensor& ids, int64_t start) const;

 private:
  double embed_scale_, dropout_;
  std::shared_ptr<nn::Embedding> embed_tokens_;
  std::shared_ptr<BartLearnedPositions> embed_positions_;
  std::shared_ptr<nn::ModuleList> layers_;
  std::shared_ptr<nn::LayerNorm> layernorm_embedding_;
};

// BartClassificationHead: dropout, dense (d -> d), tanh, dropout, out_proj (d -> num_labels).
class BartClassificationHead : public nn::Module {
 public:
  BartClassificationHead(int64_t dim, int64_t num_labels, double dropout);
  Tensor forward(const Tensor& x) const;

 private:
  double dropout_;
  std::shared_ptr<nn::Linear> dense_, out_proj_;
};

// BartModel (keys without "model."), BartForConditionalGeneration (model + final_logits_bias
// [1, V] buffer + lm_head) and BartForSequenceClassification (model + classification_head).
// Without decoder_input_ids nor labels the decoder reads shift_tokens_right(input_ids) as
// transformers does. The classifier's forward returns logits [B, num_labels] (and the loss of
// Seq2SeqLabels::labels, [B] class ids or [B, num_labels] floats, by problem_type).
class BartModel : public EncoderDecoderModel {
 public:
  enum class Head { None, ConditionalGeneration, SequenceClassification };
  BartModel(const BartConfig& c, Head head);
  const BartConfig& config() const { return cfg_; }
  Head head() const { return head_; }
  std::string model_type() const override { return "bart"; }
  std::string architecture() const override;
  std::string config_json() const override { return cfg_.to_json(architecture()); }
  LoadSpec load_spec() const override;
  // The generic load, except that an absent final_logits_bias is not missing (zeros), as
  // transformers' _keys_to_ignore_on_load_missing.
  LoadReport load(const nn::StateDict& state, const LoadOptions& opt = {},
                  const std::string& origin = "checkpoint") override;
  void init_missing(const std::vector<std::string>& keys) override;
  EncoderOutput encode_for_decoder(const Tensor& input_ids,
                                   const Tensor& attention_mask = Tensor()) const override;
  EncoderOutput encode(const Tensor& input_ids, const Tensor& attention_mask = Tensor(),
                       bool output_attentions = false) const override;
  Seq2SeqOutput forward(const Seq2SeqInputs& in, const Seq2SeqLabels& labels = {}) const override;
  Seq2SeqSpec spec() const override;
  bool is_seq2seq_lm() const override { return head_ == Head::ConditionalGeneration; }
  void tie_weights();  // re-shares the tied tensors as transformers' tie_weights

 private:
  Tensor classify(const Tensor& input_ids, const Tensor& hidden) const;
  std::string key(const std::string& k) const { return head_ != Head::None ? "model." + k : k; }

  BartConfig cfg_;
  Head head_;
  nn::Module* base_;  // "model" for the heads, this for BartModel
  std::shared_ptr<nn::Embedding> shared_;
  std::shared_ptr<BartStack> encoder_, decoder_;
  std::shared_ptr<nn::Linear> lm_head_;
  Tensor* final_logits_bias_ = nullptr;
  std::shared_ptr<BartClassificationHead> classification_head_;
};

// Builds BartModel, BartForConditionalGeneration or BartForSequenceClassification; ValueError
// naming the supported ones.
std::unique_ptr<EncoderDecoderModel> make_bart_model(const BartConfig& c, const std::string& arch);
void register_bart_family();

}  // namespace lmf::models
