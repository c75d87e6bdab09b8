// The Marian family, top to bottom like modeling_marian.py: config, sinusoidal positions, layer,
// encoder/decoder stack, MarianModel / MarianMTModel (encode, decode, loss), registration.
#include "lmforge/models/marian.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/models/registry.h"
#include "models/decoder_util.h"
#include "models/seq2seq_util.h"

namespace lmf::models {

using nlohmann::json;

// ---- config -------------------------------------------------------------------------------------

namespace {
const std::vector<std::string> kMarianFields =
    detail::seq2seq_config_fields({"decoder_vocab_size", "share_encoder_decoder_embeddings"});

}  // namespace

MarianConfig MarianConfig::from_json(const std::string& text, const std::string& origin) {
  json j = detail::parse_config_object(text, origin);
  detail::ConfigReader r{j, origin};
  std::string mt = "marian";
  r.get("model_type", mt);
  LMF_CHECK(mt == "marian", ValueError, "{}: model_type '{}' is not marian", origin, mt);
  MarianConfig c;
  detail::read_seq2seq_config(r, c);
  r.get("decoder_vocab_size", c.decoder_vocab_size);
  r.get("share_encoder_decoder_embeddings", c.share_encoder_decoder_embeddings);
  LMF_CHECK(!c.share_encoder_decoder_embeddings || c.target_vocab_size() == c.vocab_size,
            ValueError,
            "{}: share_encoder_decoder_embeddings needs decoder_vocab_size == vocab_size (got {} "
            "and {})",
            origin, c.target_vocab_size(), c.vocab_size);
  detail::check_seq2seq_config(c, c.target_vocab_size(), origin);
  detail::read_common_into(j, origin, kMarianFields, c);
  return c;
}

std::string MarianConfig::to_json(const std::string& architecture) const {
  json j;
  j["model_type"] = "marian";
  detail::write_seq2seq_config(j, *this);
  j["decoder_vocab_size"] = target_vocab_size();  // transformers writes the resolved size
  j["share_encoder_decoder_embeddings"] = share_encoder_decoder_embeddings;
  return detail::finish_config_json_of(std::move(j), *this, architecture);
}

// ---- sinusoidal positions -----------------------------------------------------------------------

MarianSinusoidalPositions::MarianSinusoidalPositions(int64_t num_positions, int64_t dim,
                                                     bool persistent)
    : num_(num_positions) {
  // As create_weight(): angles in double (numpy), rounded to f32 once.
  const int64_t half = (dim + 1) / 2;
  std::vector<float> w(num_positions * dim);
  for (int64_t pos = 0; pos < num_positions; ++pos)
    for (int64_t j = 0; j < dim; ++j) {
      const double angle =
          static_cast<double>(pos) / std::pow(10000.0, 2.0 * static_cast<double>(j / 2) / dim);
      // Even j go to the sin half (column j / 2), odd j to the cos half.
      if (j % 2 == 0)
        w[pos * dim + j / 2] = static_cast<float>(std::sin(angle));
      else
        w[pos * dim + half + j / 2] = static_cast<float>(std::cos(angle));
    }
  table_ = &register_buffer("weight", Tensor::from_vector(w, {num_positions, dim}), persistent);
}

Tensor MarianSinusoidalPositions::forward(int64_t start, int64_t n) const {
  LMF_CHECK(start >= 0 && start + n <= num_, ValueError,
            "Marian: positions [{}, {}) exceed max_position_embeddings = {} (shorten the input)",
            start, start + n, num_);
  return table_->narrow(0, start, n);
}

// ---- layer and stack ----------------------------------------------------------------------------

MarianStack::MarianStack(const MarianConfig& c, bool decoder, bool persistent_positions)
    : embed_scale_(c.scale_embedding ? std::sqrt(static_cast<double>(c.d_model)) : 1.0),
      dropout_(c.dropout) {
  embed_tokens_ = register_module(
      "embed_tokens",
      std::make_shared<nn::Embedding>(decoder ? c.target_vocab_size() : c.vocab_size, c.d_model,
                                      c.pad_token_id.value_or(-1)));
  embed_positions_ = register_module(
      "embed_positions", std::make_shared<MarianSinusoidalPositions>(
                             c.max_position_embeddings, c.d_model, persistent_positions));
  layers_ = register_module("layers", std::make_shared<nn::ModuleList>());
  const int64_t n = decoder ? c.decoder_layers : c.encoder_layers;
  for (int64_t i = 0; i < n; ++i)
    layers_->push_back(std::make_shared<Seq2SeqLayer>(detail::seq2seq_layer_options(c, decoder)));
}

Tensor MarianStack::embed(const Tensor& ids, int64_t start) const {
  Tensor x = embed_tokens_->forward(ids);
  if (embed_scale_ != 1.0) x = x * embed_scale_;
  return dropout(x + embed_positions_->forward(start, ids.size(1)), dropout_, is_training());
}

// ---- MarianModel / MarianMTModel ----------------------------------------------------------------

MarianModel::MarianModel(const MarianConfig& c, bool with_lm_head) : cfg_(c) {
  base_ = this;
  if (with_lm_head) base_ = register_module("model", std::make_shared<nn::Module>()).get();
  if (c.share_encoder_decoder_embeddings)
    shared_ = base_->register_module(
        "shared",
        std::make_shared<nn::Embedding>(c.vocab_size, c.d_model, c.pad_token_id.value_or(-1)));
  encoder_ =
      base_->register_module("encoder", std::make_shared<MarianStack>(c, false, !with_lm_head));
  decoder_ =
      base_->register_module("decoder", std::make_shared<MarianStack>(c, true, !with_lm_head));
  if (with_lm_head) {
    const int64_t v = c.target_vocab_size();
    final_logits_bias_ = &register_buffer("final_logits_bias", Tensor::zeros({1, v}));
    lm_head_ = register_module("lm_head", std::make_shared<nn::Linear>(c.d_model, v, false));
  }
  tie_weights();
}

// transformers 5.25 ties only with tie_word_embeddings: shared -> encoder/decoder embed_tokens and
// lm_head when the embeddings are shared, else lm_head -> decoder.embed_tokens. Without it every
// matrix is its own (and saved).
void MarianModel::tie_weights() {
  if (!cfg_.tie_word_embeddings) return;
  if (shared_) {
    encoder_->embed_tokens().weight() = shared_->weight();
    decoder_->embed_tokens().weight() = shared_->weight();
    if (lm_head_) lm_head_->weight() = shared_->weight();
  } else if (lm_head_) {
    lm_head_->weight() = decoder_->embed_tokens().weight();
  }
}

LoadSpec MarianModel::load_spec() const {
  LoadSpec s;
  s.base_prefix = "model";
  s.keys_have_prefix = lm_head_ != nullptr;
  // MarianMTModel: computed sinusoids that older transformers versions saved; never weights.
  if (lm_head_) s.ignored_suffixes = {"embed_positions.weight"};
  if (cfg_.tie_word_embeddings) {
    if (shared_) {
      s.tied = {{key("encoder.embed_tokens.weight"), key("shared.weight")},
                {key("decoder.embed_tokens.weight"), key("shared.weight")}};
      if (lm_head_) s.tied.push_back({"lm_head.weight", key("shared.weight")});
    } else if (lm_head_) {
      s.tied = {{"lm_head.weight", key("decoder.embed_tokens.weight")}};
    }
  }
  return s;
}

LoadReport MarianModel::load(const nn::StateDict& state, const LoadOptions& opt,
                             const std::string& origin) {
  return detail::load_seq2seq(*this, state, opt, origin, [](const std::string& k) {
    return k.find("embed_positions.weight") != std::string::npos;
  });
}

void MarianModel::init_missing(const std::vector<std::string>& keys) {
  detail::init_missing_seq2seq(*this, keys, final_logits_bias_, cfg_.init_std, cfg_.pad_token_id);
}

Seq2SeqSpec MarianModel::spec() const {
  Seq2SeqSpec s = detail::seq2seq_spec(cfg_);
  s.vocab_size = cfg_.target_vocab_size();
  s.source_vocab_size = cfg_.vocab_size;
  s.decoder_start_token_id = cfg_.decoder_start_token_id;
  return s;
}

EncoderOutput MarianModel::encode_for_decoder(const Tensor& input_ids,
                                        const Tensor& attention_mask) const {
  return detail::encode_stack(cfg_, architecture(), *encoder_, input_ids, attention_mask, false,
                              is_training(), true);
}

EncoderOutput MarianModel::encode(const Tensor& input_ids, const Tensor& attention_mask,
                                  bool output_attentions) const {
  return detail::encode_stack(cfg_, architecture(), *encoder_, input_ids, attention_mask,
                              output_attentions, is_training());
}

Seq2SeqOutput MarianModel::forward(const Seq2SeqInputs& in, const Seq2SeqLabels& labels) const {
  const std::string who = architecture();
  Seq2SeqOutput out = detail::seq2seq_encoder_output(*this, in);
  const Tensor dec_ids = detail::seq2seq_decoder_ids(
      who, in, labels, cfg_.pad_token_id.value_or(-1), cfg_.decoder_start_token_id);
  out.last_hidden_state = detail::decode_stack(cfg_, who, *decoder_, in, dec_ids,
                                               out.encoder_last_hidden_state, is_training(), out);
  if (!lm_head_) {
    LMF_CHECK(!labels.labels.defined(), ValueError,
              "MarianModel has no LM head to compute a loss (load it as MarianMTModel)");
    return out;
  }
  detail::seq2seq_lm_logits(who, *lm_head_, *final_logits_bias_, in, labels, out);
  return out;
}

// ---- registration -------------------------------------------------------------------------------

std::unique_ptr<EncoderDecoderModel> make_marian_model(const MarianConfig& c,
                                                       const std::string& arch) {
  if (arch == "MarianMTModel") return std::make_unique<MarianModel>(c, true);
  if (arch == "MarianModel") return std::make_unique<MarianModel>(c, false);
  fail<ValueError>(
      "architecture '{}' is not one lmforge implements for model_type 'marian'; supported: "
      "MarianModel, MarianMTModel",
      arch);
}

void register_marian_family() {
  FamilyRegistration reg;
  reg.model_types = {"marian"};
  reg.architectures = {"MarianModel", "MarianMTModel"};
  reg.default_architecture = "MarianModel";
  reg.create = [](const std::string& text, const std::string& arch,
                  const std::string& origin) -> std::unique_ptr<PretrainedModel> {
    const MarianConfig c = MarianConfig::from_json(text, origin);
    return make_marian_model(c, !arch.empty()              ? arch
                                : !c.architectures.empty() ? c.architectures[0]
                                                           : "MarianModel");
  };
  register_family(std::move(reg));
}

}  // namespace lmf::models
