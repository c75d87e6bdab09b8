// The BART family, top to bottom like modeling_bart.py: config, learned positions, encoder/decoder
// stack, classification head, BartModel and its heads (encode, decode, logits, losses),
// registration. The layers and loops are Marian's (models/seq2seq_layers.h, seq2seq_util.h).
#include "lmforge/models/bart.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "lmforge/core/autograd.h"
#include "lmforge/models/registry.h"
#include "lmforge/ops/ops.h"
#include "models/decoder_util.h"
#include "models/seq2seq_util.h"

namespace lmf::models {

using nlohmann::json;

// ---- config -------------------------------------------------------------------------------------

namespace {
const std::vector<std::string> kBartFields = detail::seq2seq_config_fields({"classifier_dropout"});
}  // namespace

BartConfig BartConfig::from_json(const std::string& text, const std::string& origin) {
  json j = detail::parse_config_object(text, origin);
  detail::ConfigReader r{j, origin};
  std::string mt = "bart";
  r.get("model_type", mt);
  LMF_CHECK(mt == "bart", ValueError, "{}: model_type '{}' is not bart", origin, mt);
  BartConfig c;
  detail::read_seq2seq_config(r, c);
  r.get("classifier_dropout", c.classifier_dropout);
  LMF_CHECK(c.classifier_dropout >= 0 && c.classifier_dropout < 1, ValueError,
            "{}: classifier_dropout must lie in [0, 1), got {}", origin, c.classifier_dropout);
  // BartConfig keeps "normalize_before" & co. of old fairseq-converted configs as plain
  // attributes that the 5.25 model never reads; a config asking for pre-norm is refused.
  for (const char* k : {"normalize_before", "add_final_layer_norm"})
    if (const json* v = r.find(k))
      LMF_CHECK(!v->is_boolean() || !v->get<bool>(), ValueError,
                "{}: {} = true asks for mBART's pre-norm layers, which transformers 5.25's BART "
                "does not build (model_type 'mbart' is not implemented)",
                origin, k);
  detail::check_seq2seq_config(c, c.vocab_size, origin);
  if (c.decoder_start_token_id)
    LMF_CHECK(*c.decoder_start_token_id >= 0 && *c.decoder_start_token_id < c.vocab_size,
              ValueError, "{}: decoder_start_token_id {} must lie in [0, {})", origin,
              *c.decoder_start_token_id, c.vocab_size);
  detail::read_common_into(j, origin, kBartFields, c);
  return c;
}

std::string BartConfig::to_json(const std::string& architecture) const {
  json j;
  j["model_type"] = "bart";
  detail::write_seq2seq_config(j, *this);
  j["classifier_dropout"] = classifier_dropout;
  return detail::finish_config_json_of(std::move(j), *this, architecture);
}

// ---- positions, stack, classification head ------------------------------------------------------

namespace {
constexpr int64_t kPositionOffset = 2;  // BartLearnedPositionalEmbedding.offset
}

BartLearnedPositions::BartLearnedPositions(int64_t max_positions, int64_t dim)
    : nn::Embedding(max_positions + kPositionOffset, dim), max_(max_positions) {}

Tensor BartLearnedPositions::forward(int64_t start, int64_t n) const {
  LMF_CHECK(start >= 0 && start + n <= max_, ValueError,
            "BART: positions [{}, {}) exceed max_position_embeddings = {} (shorten the input)",
            start, start + n, max_);
  std::vector<int64_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = start + i + kPositionOffset;
  return nn::Embedding::forward(Tensor::from_vector(ids, {n}));
}

BartStack::BartStack(const BartConfig& c, bool decoder)
    : embed_scale_(c.scale_embedding ? std::sqrt(static_cast<double>(c.d_model)) : 1.0),
      dropout_(c.dropout) {
  embed_tokens_ = register_module(
      "embed_tokens",
      std::make_shared<nn::Embedding>(c.vocab_size, c.d_model, c.pad_token_id.value_or(-1)));
  embed_positions_ = register_module("embed_positions", std::make_shared<BartLearnedPositions>(
                                                            c.max_position_embeddings, c.d_model));
  layers_ = register_module("layers", std::make_shared<nn::ModuleList>());
  const Seq2SeqLayerOptions o = detail::seq2seq_layer_options(c, decoder);
  const int64_t n = decoder ? c.decoder_layers : c.encoder_layers;
  for (int64_t i = 0; i < n; ++i) layers_->push_back(std::make_shared<Seq2SeqLayer>(o));
  layernorm_embedding_ =
      register_module("layernorm_embedding", std::make_shared<nn::LayerNorm>(c.d_model));
}

Tensor BartStack::embed(const Tensor& ids, int64_t start) const {
  Tensor x = embed_tokens_->forward(ids);
  if (embed_scale_ != 1.0) x = x * embed_scale_;
  x = layernorm_embedding_->forward(x + embed_positions_->forward(start, ids.size(1)));
  return dropout(x, dropout_, is_training());
}

BartClassificationHead::BartClassificationHead(int64_t dim, int64_t num_labels, double dropout)
    : dropout_(dropout) {
  dense_ = register_module("dense", std::make_shared<nn::Linear>(dim, dim));
  out_proj_ = register_module("out_proj", std::make_shared<nn::Linear>(dim, num_labels));
}

Tensor BartClassificationHead::forward(const Tensor& x) const {
  const bool tr = is_training();
  const Tensor h = dense_->forward(dropout(x, dropout_, tr), Activation::tanh);
  return out_proj_->forward(dropout(h, dropout_, tr));
}

// ---- BartModel and heads ------------------------------------------------------------------------

BartModel::BartModel(const BartConfig& c, Head head) : cfg_(c), head_(head) {
  base_ = this;
  if (head != Head::None) base_ = register_module("model", std::make_shared<nn::Module>()).get();
  shared_ = base_->register_module(
      "shared",
      std::make_shared<nn::Embedding>(c.vocab_size, c.d_model, c.pad_token_id.value_or(-1)));
  encoder_ = base_->register_module("encoder", std::make_shared<BartStack>(c, false));
  decoder_ = base_->register_module("decoder", std::make_shared<BartStack>(c, true));
  if (head == Head::ConditionalGeneration) {
    final_logits_bias_ = &register_buffer("final_logits_bias", Tensor::zeros({1, c.vocab_size}));
    lm_head_ =
        register_module("lm_head", std::make_shared<nn::Linear>(c.d_model, c.vocab_size, false));
  } else if (head == Head::SequenceClassification) {
    classification_head_ = register_module(
        "classification_head",
        std::make_shared<BartClassificationHead>(c.d_model, c.num_labels, c.classifier_dropout));
  }
  tie_weights();
}

std::string BartModel::architecture() const {
  switch (head_) {
    case Head::ConditionalGeneration:
      return "BartForConditionalGeneration";
    case Head::SequenceClassification:
      return "BartForSequenceClassification";
    default:
      return "BartModel";
  }
}

// As Marian with shared embeddings: transformers 5.25 ties encoder/decoder embed_tokens and
// lm_head to shared only with tie_word_embeddings; without it all four are separate and saved.
void BartModel::tie_weights() {
  if (!cfg_.tie_word_embeddings) return;
  encoder_->embed_tokens().weight() = shared_->weight();
  decoder_->embed_tokens().weight() = shared_->weight();
  if (lm_head_) lm_head_->weight() = shared_->weight();
}

LoadSpec BartModel::load_spec() const {
  LoadSpec s;
  s.base_prefix = "model";
  s.keys_have_prefix = head_ != Head::None;
  // fairseq leftovers transformers ignores (_keys_to_ignore_on_load_unexpected).
  s.ignored_suffixes = {"encoder.version", "decoder.version"};
  if (cfg_.tie_word_embeddings) {
    s.tied = {{key("encoder.embed_tokens.weight"), key("shared.weight")},
              {key("decoder.embed_tokens.weight"), key("shared.weight")}};
    if (lm_head_) s.tied.push_back({"lm_head.weight", key("shared.weight")});
  }
  return s;
}

LoadReport BartModel::load(const nn::StateDict& state, const LoadOptions& opt,
                           const std::string& origin) {
  return detail::load_seq2seq(*this, state, opt, origin,
                              [](const std::string& k) { return k == "final_logits_bias"; });
}

void BartModel::init_missing(const std::vector<std::string>& keys) {
  detail::init_missing_seq2seq(*this, keys, final_logits_bias_, cfg_.init_std, cfg_.pad_token_id);
}

Seq2SeqSpec BartModel::spec() const {
  Seq2SeqSpec s = detail::seq2seq_spec(cfg_);
  s.vocab_size = cfg_.vocab_size;
  s.source_vocab_size = cfg_.vocab_size;
  s.decoder_start_token_id = cfg_.decoder_start_token_id.value_or(-1);
  return s;
}

EncoderOutput BartModel::encode_for_decoder(const Tensor& input_ids,
                                        const Tensor& attention_mask) const {
  return detail::encode_stack(cfg_, architecture(), *encoder_, input_ids, attention_mask, false,
                              is_training(), true);
}

EncoderOutput BartModel::encode(const Tensor& input_ids, const Tensor& attention_mask,
                                bool output_attentions) const {
  return detail::encode_stack(cfg_, architecture(), *encoder_, input_ids, attention_mask,
                              output_attentions, is_training());
}

// BartForSequenceClassification: the decoder state at each row's last eos token of input_ids.
Tensor BartModel::classify(const Tensor& input_ids, const Tensor& hidden) const {
  const std::string who = architecture();
  LMF_CHECK(input_ids.defined(), ValueError,
            "{}: the classifier pools at the eos tokens of input_ids; give input_ids", who);
  LMF_CHECK(cfg_.eos_set && !cfg_.eos_token_ids.empty(), ValueError,
            "{}: config.json sets no eos_token_id, which the classifier pools at", who);
  const int64_t eos = cfg_.eos_token_ids[0];
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  LMF_CHECK(hidden.size(1) == T, ShapeError,
            "{}: the decoder ran over {} positions but input_ids has {} (the classifier needs "
            "decoder_input_ids as long as input_ids)",
            who, hidden.size(1), T);
  const std::vector<int64_t> ids = input_ids.to_vector<int64_t>();
  std::vector<int64_t> last(B, -1), count(B, 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      if (ids[b * T + t] == eos) {
        ++count[b];
        last[b] = t;
      }
  for (int64_t b = 1; b < B; ++b)
    LMF_CHECK(count[b] == count[0], ValueError,
              "{}: All examples must have the same number of <eos> tokens. (row 0 has {} eos = {}, "
              "row {} has {})",
              who, count[0], eos, b, count[b]);
  LMF_CHECK(B == 0 || count[0] >= 1, ValueError,
            "{}: Each example must contain at least one <eos> token (eos_token_id {})", who, eos);
  std::vector<Tensor> rows;
  for (int64_t b = 0; b < B; ++b) rows.push_back(hidden.select(0, b).select(0, last[b]));
  return classification_head_->forward(stack(rows, 0));
}

Seq2SeqOutput BartModel::forward(const Seq2SeqInputs& in, const Seq2SeqLabels& labels) const {
  const std::string who = architecture();
  Seq2SeqOutput out = detail::seq2seq_encoder_output(*this, in);
  const int64_t pad = cfg_.pad_token_id.value_or(-1);
  const int64_t start = cfg_.decoder_start_token_id.value_or(-1);
  // transformers: labels shifted (the LM head), else input_ids shifted (BartModel's denoising).
  Tensor dec_ids = in.decoder_input_ids;
  if (!dec_ids.defined() && labels.labels.defined() && lm_head_)
    dec_ids = shift_tokens_right(labels.labels, pad, start);
  if (!dec_ids.defined()) {
    LMF_CHECK(in.input_ids.defined(), ValueError,
              "{}: give decoder_input_ids (start with decoder_start_token_id = {}), labels or "
              "input_ids (shifted right into the decoder's input)",
              who, start);
    dec_ids = shift_tokens_right(in.input_ids, pad, start);
  }
  out.last_hidden_state = detail::decode_stack(cfg_, who, *decoder_, in, dec_ids,
                                               out.encoder_last_hidden_state, is_training(), out);
  switch (head_) {
    case Head::None:
      LMF_CHECK(!labels.labels.defined(), ValueError,
                "BartModel has no head to compute a loss (load it as "
                "BartForConditionalGeneration or BartForSequenceClassification)");
      break;
    case Head::ConditionalGeneration:
      detail::seq2seq_lm_logits(who, *lm_head_, *final_logits_bias_, in, labels, out);
      break;
    case Head::SequenceClassification:
      out.logits = classify(in.input_ids, out.last_hidden_state);
      if (labels.labels.defined())
        out.loss = detail::sequence_classification_loss(out.logits, labels.labels, cfg_.num_labels,
                                                        cfg_.problem_type);
      break;
  }
  return out;
}

// ---- registration -------------------------------------------------------------------------------

std::unique_ptr<EncoderDecoderModel> make_bart_model(const BartConfig& c, const std::string& arch) {
  if (arch == "BartForConditionalGeneration")
    return std::make_unique<BartModel>(c, BartModel::Head::ConditionalGeneration);
  if (arch == "BartForSequenceClassification")
    return std::make_unique<BartModel>(c, BartModel::Head::SequenceClassification);
  if (arch == "BartModel") return std::make_unique<BartModel>(c, BartModel::Head::None);
  fail<ValueError>(
      "architecture '{}' is not one lmforge implements for model_type 'bart'; supported: "
      "BartModel, BartForConditionalGeneration, BartForSequenceClassification",
      arch);
}

void register_bart_family() {
  FamilyRegistration reg;
  reg.model_types = {"bart"};
  reg.architectures = {"BartModel", "BartForConditionalGeneration",
                       "BartForSequenceClassification"};
  reg.default_architecture = "BartModel";
  reg.create = [](const std::string& text, const std::string& arch,
                  const std::string& origin) -> std::unique_ptr<PretrainedModel> {
    const BartConfig c = BartConfig::from_json(text, origin);
    return make_bart_model(c, !arch.empty()              ? arch
                              : !c.architectures.empty() ? c.architectures[0]
                                                         : "BartModel");
  };
  register_family(std::move(reg));
}

}  // namespace lmf::models
