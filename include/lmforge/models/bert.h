// The BERT encoder family, readable top to bottom like modeling_bert.py: config, embeddings,
// layer, model (encoder + pooler), heads, loading, registry. RoBERTa, ALBERT and ELECTRA are
// options of the family (config.family), not copies. Parameter names are HF's state-dict keys.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/models/model.h"
#include "lmforge/nn/attention.h"
#include "lmforge/nn/layers.h"
#include "lmforge/nn/module.h"

namespace lmf::models {

// The four HF model types this file implements (config.json "model_type").
enum class EncoderFamily { bert, roberta, albert, electra };
// What sits on top of the encoder (the suffix of the HF class name).
enum class EncoderHead {
  base,                     // XModel
  masked_lm,                // XForMaskedLM (ELECTRA: the generator)
  next_sentence,            // BertForNextSentencePrediction
  pretraining,              // Bert: MLM + NSP; Albert: MLM + SOP; Electra: the discriminator
  sequence_classification,  // XForSequenceClassification
  token_classification,     // XForTokenClassification
  question_answering,       // XForQuestionAnswering
  multiple_choice,          // XForMultipleChoice
};

const char* family_name(EncoderFamily f);  // "bert", "roberta", "albert", "electra"
// HF activation name ("gelu", "gelu_new", "relu", "silu", ...) -> Activation; ValueError listing
// the supported names otherwise.
Activation parse_activation(const std::string& name);

// Field names and defaults as transformers' BertConfig / RobertaConfig / AlbertConfig /
// ElectraConfig (defaults(family) gives each family's defaults, as HF omits some on save).
struct BertConfig {
  EncoderFamily family = EncoderFamily::bert;
  std::vector<std::string> architectures;  // config.json "architectures" (may be empty)
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  Activation hidden_act = Activation::gelu;  // HF "gelu" (erf)
  std::string hidden_act_name = "gelu";
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;
  int64_t num_labels = 2;
  std::string position_embedding_type = "absolute";  // the only one supported
  int64_t embedding_size = 0;     // ALBERT/ELECTRA factorised embedding width E; 0: hidden_size
  int64_t num_hidden_groups = 1;  // ALBERT: distinct layer groups shared across the depth
  int64_t inner_group_num = 1;    // ALBERT: layers per group
  std::optional<double> classifier_dropout;  // BERT/RoBERTa/ELECTRA; none: hidden_dropout_prob
  double classifier_dropout_prob = 0.1;      // ALBERT's classifier dropout
  std::map<int64_t, std::string> id2label;
  std::map<std::string, int64_t> label2id;
  std::string problem_type;  // "", "regression", "single_label_classification",
                             // "multi_label_classification" ("" : decided from labels as HF)
  bool tie_word_embeddings = true;
  // ELECTRA's sequence summary (ElectraForMultipleChoice).
  std::string summary_type = "first";  // first | last | mean
  bool summary_use_proj = true;
  bool summary_proj_to_labels = false;
  std::string summary_activation = "gelu";  // "" : none
  double summary_first_dropout = 0.0;
  double summary_last_dropout = 0.1;
  // Other config.json keys (key -> raw JSON text, e.g. "use_cache" -> "true"), kept and written
  // back by to_json as transformers keeps unknown attributes.
  std::map<std::string, std::string> extra;

  static BertConfig defaults(EncoderFamily f);
  // Parses config.json text; `origin` names the file in errors. ValueError naming the key for a
  // wrong type, an unknown model_type or hidden_act, or a position_embedding_type not "absolute".
  static BertConfig from_json(const std::string& text, const std::string& origin = "config.json");
  // IoError when unreadable or not JSON (with line:column), else as from_json.
  static BertConfig from_file(const std::string& path);
  int64_t embed_dim() const { return embedding_size > 0 ? embedding_size : hidden_size; }
  double head_dropout() const;  // the classifier dropout HF uses for this family
  void validate() const;        // ValueError naming the field
  // config.json text as transformers' save_pretrained writes it for this family (model_type,
  // architectures, every field from_json reads, id2label/label2id); from_json(to_json()) == *this.
  std::string to_json() const;
};

// ---- inputs and outputs -------------------------------------------------------------------------

struct EncoderInputs {
  Tensor input_ids;       // integer [B, T] ([B, C, T] for multiple choice)
  Tensor attention_mask;  // same shape, 1 = token, 0 = padding; undefined: all tokens
  Tensor token_type_ids;  // same shape; undefined: zeros
  Tensor position_ids;    // same shape; undefined: arange (RoBERTa: from input_ids, HF's rule)
  bool output_hidden_states = false;
  bool output_attentions = false;
};

struct EncoderLabels {
  // MLM / token classification [B, T] (-100 ignored); sequence classification [B] integer
  // (single label), [B, num_labels] float (multi-label) or float (regression); multiple choice
  // [B]; ELECTRA discriminator [B, T] of 0/1.
  Tensor labels;
  Tensor next_sentence_label;             // NSP (BERT) / sentence order (ALBERT) [B]
  Tensor start_positions, end_positions;  // question answering [B]
};

struct ModelOutput {
  Tensor loss;                        // scalar when labels were given
  Tensor logits;                      // the head's logits (MLM [B,T,V], classes [B,L], tokens
                                      // [B,T,L], NSP [B,2], choices [B,C], discriminator [B,T])
  Tensor seq_relationship_logits;     // *ForPreTraining: NSP (BERT) / SOP (ALBERT) [B, 2]
  Tensor start_logits, end_logits;    // question answering [B, T]
  Tensor last_hidden_state;           // [B, T, H]
  std::vector<Tensor> hidden_states;  // on request: input of layer 1, then each layer's output
  std::vector<Tensor> attentions;     // on request: [B, heads, T, T] per layer
  Tensor pooler;                      // [B, H]; undefined when unavailable (see pooler_output)
  std::string pooler_unavailable;     // why pooler is undefined
  // tanh(dense(CLS)); ValueError explaining why when the model has no (loaded) pooler.
  const Tensor& pooler_output() const;
};

// ---- loading: LoadOptions, LoadReport (models/model.h) ---------------------------------------

class BertModel;

// Any model of the family: a base model or a head. forward() runs in the module's mode (dropout
// only in training); no-grad is up to the caller (NoGradGuard).
class EncoderModel : public PretrainedModel {
 public:
  virtual ModelOutput forward(const EncoderInputs& in, const EncoderLabels& labels = {}) const = 0;
  const BertConfig& config() const { return cfg_; }
  EncoderHead head() const { return head_; }
  std::string model_type() const override { return family_name(cfg_.family); }
  std::string architecture() const override;  // the HF class name, e.g. "RobertaForMaskedLM"
  std::string config_json() const override;   // BertConfig::to_json with this architecture
  // HF's rules: legacy gamma/beta renames, base prefix = the family name, tied MLM decoder.
  LoadSpec load_spec() const override;
  virtual BertModel& encoder() = 0;  // the base model (this one for BertModel)
  // load_hf_state_dict (models/hf_loader.h), then the pooler rule of LoadOptions: a checkpoint
  // without pooler weights leaves pooler_output refused unless pooler_init_seed is given.
  LoadReport load(const nn::StateDict& state, const LoadOptions& opt = {},
                  const std::string& origin = "checkpoint") override;
  // A refused pooler is not saved as if it were trained.
  std::vector<std::string> keys_not_saved() const override;
  // (target key, source key) pairs that share one tensor, e.g. the MLM decoder and the word
  // embeddings; the target is not expected in a checkpoint.
  const std::vector<std::pair<std::string, std::string>>& tied_keys() const { return tied_; }

 protected:
  EncoderModel(const BertConfig& c, EncoderHead head);
  void tie(const std::string& target, const std::string& source);
  // The base-model prefix HF uses ("bert", "roberta", "albert", "electra"); "" for XModel.
  std::string prefix_;
  BertConfig cfg_;
  EncoderHead head_;
  std::vector<std::pair<std::string, std::string>> tied_;
};

// ---- building blocks ----------------------------------------------------------------------------

// word + position + token_type embeddings, LayerNorm, dropout; width embed_dim().
class BertEmbeddings : public nn::Module {
 public:
  explicit BertEmbeddings(const BertConfig& c);
  // ids [B, T]; token_type_ids / position_ids [B, T] or undefined (defaults as HF).
  Tensor forward(const Tensor& ids, const Tensor& token_type_ids,
                 const Tensor& position_ids = Tensor()) const;
  nn::Embedding& word_embeddings() { return *word_; }

 private:
  BertConfig cfg_;
  std::shared_ptr<nn::Embedding> word_, position_, token_type_;
  std::shared_ptr<nn::LayerNorm> norm_;
  std::shared_ptr<nn::Dropout> dropout_;
};

// RoBERTa's positions: non-padding tokens count from padding_idx + 1, padding keeps padding_idx.
Tensor create_position_ids_from_input_ids(const Tensor& ids, int64_t padding_idx);

// Post-norm encoder layer. BERT names: attention.self.{query,key,value},
// attention.output.{dense,LayerNorm}, intermediate.dense, output.{dense,LayerNorm}. ALBERT names:
// attention.{query,key,value,dense,LayerNorm}, ffn, ffn_output, full_layer_layer_norm.
class BertLayer : public nn::Module {
 public:
  explicit BertLayer(const BertConfig& c);
  // probs (when non-null) receives the attention probabilities [B, heads, T, T].
  Tensor forward(const Tensor& x, const AttentionOptions& mask, Tensor* probs = nullptr) const;

 private:
  BertConfig cfg_;
  std::shared_ptr<nn::MultiHeadAttention> self_;
  std::shared_ptr<nn::Linear> attn_out_, inter_, out_;
  std::shared_ptr<nn::LayerNorm> attn_norm_, out_norm_;
  std::shared_ptr<nn::Dropout> dropout_;
};

// Embeddings, (ELECTRA embeddings_project | ALBERT embedding_hidden_mapping_in), the layer stack
// (ALBERT: shared groups) and the optional pooler tanh(dense(h[:, 0])).
class BertModel : public EncoderModel {
 public:
  explicit BertModel(const BertConfig& c, bool add_pooling_layer = true);
  ModelOutput forward(const EncoderInputs& in, const EncoderLabels& labels = {}) const override;
  // Convenience: last_hidden_state [B, T, H]. ShapeError when T > max_position_embeddings.
  Tensor forward(const Tensor& ids, const Tensor& attention_mask = Tensor(),
                 const Tensor& token_type_ids = Tensor()) const;
  BertModel& encoder() override { return *this; }
  BertEmbeddings& embeddings() { return *embeddings_; }
  bool has_pooler() const { return pooler_ != nullptr; }
  // The pooler keys of this model ("pooler.dense.weight", ... / ALBERT "pooler.weight", ...).
  std::vector<std::string> pooler_keys() const;
  // Refuses pooler_output with `reason` (set by load when the checkpoint has no pooler).
  void set_pooler_unavailable(std::string reason) { pooler_unavailable_ = std::move(reason); }
  // Why pooler_output is refused; "" when the pooler is available (or there is none).
  const std::string& pooler_unavailable() const { return pooler_unavailable_; }
  // Initialises the pooler N(0, initializer_range), bias 0, from `seed`, and makes it available.
  void init_pooler(uint64_t seed);

 private:
  std::shared_ptr<BertEmbeddings> embeddings_;
  std::shared_ptr<nn::Linear> project_;  // ELECTRA embeddings_project / ALBERT mapping_in
  std::vector<std::shared_ptr<BertLayer>> layers_;  // distinct layers (ALBERT: group x inner)
  std::shared_ptr<nn::Linear> pooler_;
  std::string pooler_unavailable_;
};

// ---- heads --------------------------------------------------------------------------------------

// Shared parts of every head: the base model under the family prefix, and dropout.
class BertHeadModel : public EncoderModel {
 public:
  BertModel& encoder() override { return *base_; }
  BertModel& bert() { return *base_; }

 protected:
  BertHeadModel(const BertConfig& c, EncoderHead head, bool add_pooling_layer);
  ModelOutput run_base(const EncoderInputs& in) const;
  const Tensor& pooled(const ModelOutput& o) const;  // pooler_output or ValueError naming the head
  std::shared_ptr<BertModel> base_;
};

// The MLM transform and decoder (tied to the word embeddings): BERT cls.predictions.*, RoBERTa
// lm_head.*, ALBERT predictions.*, ELECTRA generator_predictions.* + generator_lm_head.
struct MaskedLMHead {
  std::shared_ptr<nn::Linear> dense, decoder;
  std::shared_ptr<nn::LayerNorm> norm;
  Activation act = Activation::gelu;
  Tensor forward(const Tensor& h) const;
};

class BertForMaskedLM : public BertHeadModel {
 public:
  explicit BertForMaskedLM(const BertConfig& c);
  ModelOutput forward(const EncoderInputs& in, const EncoderLabels& labels = {}) const override;

 private:
  MaskedLMHead lm_;
};

class BertForNextSentencePrediction : public BertHeadModel {
 public:
  explicit BertForNextSentencePrediction(const BertConfig& c);
  ModelOutput forward(const EncoderInputs& in, const EncoderLabels& labels = {}) const override;

 private:
  std::shared_ptr<nn::Linear> seq_relationship_;
};

// BERT: MLM + NSP (cls.*); ALBERT: MLM + SOP (predictions.*, sop_classifier.classifier);
// ELECTRA: the replaced-token discriminator (discriminator_predictions.*), logits [B, T].
class BertForPreTraining : public BertHeadModel {
 public:
  explicit BertForPreTraining(const BertConfig& c);
  ModelOutput forward(const EncoderInputs& in, const EncoderLabels& labels = {}) const override;

 private:
  MaskedLMHead lm_;
  std::shared_ptr<nn::Linear> seq_relationship_;  // NSP / SOP
  std::shared_ptr<nn::Dropout> sop_dropout_;
  std::shared_ptr<nn::Linear> disc_dense_, disc_prediction_;  // ELECTRA
};

// BERT/ALBERT: dropout + classifier on the pooler; RoBERTa (tanh) / ELECTRA (gelu):
// classifier.{dense,out_proj} on the first token. Loss per problem_type as HF decides.
class BertForSequenceClassification : public BertHeadModel {
 public:
  explicit BertForSequenceClassification(const BertConfig& c);
  ModelOutput forward(const EncoderInputs& in, const EncoderLabels& labels = {}) const override;

 private:
  std::shared_ptr<nn::Dropout> dropout_;
  std::shared_ptr<nn::Linear> classifier_, dense_;  // dense_: RoBERTa/ELECTRA head only
};

// dropout + classifier [num_labels, H] on every token.
class BertForTokenClassification : public BertHeadModel {
 public:
  explicit BertForTokenClassification(const BertConfig& c);
  ModelOutput forward(const EncoderInputs& in, const EncoderLabels& labels = {}) const override;
  // Convenience: logits [B, T, num_labels].
  Tensor forward(const Tensor& ids, const Tensor& attention_mask = Tensor(),
                 const Tensor& token_type_ids = Tensor()) const;
  // Mean cross-entropy over labels != -100 (HF's loss).
  Tensor loss(const Tensor& logits, const Tensor& labels) const;

 private:
  std::shared_ptr<nn::Dropout> dropout_;
  std::shared_ptr<nn::Linear> classifier_;
};

// qa_outputs -> start/end logits; loss: positions clamped to [0, T], T ignored, mean of both.
class BertForQuestionAnswering : public BertHeadModel {
 public:
  explicit BertForQuestionAnswering(const BertConfig& c);
  ModelOutput forward(const EncoderInputs& in, const EncoderLabels& labels = {}) const override;

 private:
  std::shared_ptr<nn::Linear> qa_outputs_;
};

// Inputs [B, C, T]; one score per choice from the pooler (ELECTRA: sequence_summary) -> [B, C].
class BertForMultipleChoice : public BertHeadModel {
 public:
  explicit BertForMultipleChoice(const BertConfig& c);
  ModelOutput forward(const EncoderInputs& in, const EncoderLabels& labels = {}) const override;

 private:
  std::shared_ptr<nn::Dropout> dropout_;
  std::shared_ptr<nn::Linear> summary_, classifier_;
};

// HF's _init_weights: Linear/Embedding weights ~ N(0, initializer_range), biases 0, padding rows
// 0, LayerNorm weight 1 bias 0.
void init_bert_weights(nn::Module& m, const BertConfig& c);

// ---- registry -----------------------------------------------------------------------------------

struct Architecture {
  std::string name;  // HF class name
  EncoderFamily family;
  EncoderHead head;
};
const std::vector<Architecture>& supported_architectures();
// `architecture` empty: config.architectures[0], else the family's base model. ValueError
// listing the supported names for an unknown one or one of another family than model_type.
std::unique_ptr<EncoderModel> create_model(const BertConfig& c,
                                           const std::string& architecture = "");
// A Hugging Face model folder: config.json + weights (io::load_checkpoint_dir). The model is in
// eval mode; `report` (optional) receives the load report.
std::unique_ptr<EncoderModel> create_model(const std::string& model_dir,
                                           const LoadOptions& opt = {},
                                           LoadReport* report = nullptr);

// Registers the family (model types bert, roberta, albert, electra) in models/registry.h.
void register_bert_family();

// save_pretrained(model, dir): models/model.h (refused poolers are left out, keys_not_saved).

}  // namespace lmf::models
