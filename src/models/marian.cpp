// The Marian family, top to bottom like modeling_marian.py: config, sinusoidal positions, layer,
// encoder/decoder stack, MarianModel / MarianMTModel (encode, decode, loss), registration.
#include "lmforge/models/marian.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/models/registry.h"
#include "models/decoder_util.h"
#include "models/encoder_decoder_util.h"

namespace lmf::models {

using nlohmann::json;

// ---- config -------------------------------------------------------------------------------------

namespace {
const std::vector<std::string> kMarianFields = {"model_type",
                                                "vocab_size",
                                                "decoder_vocab_size",
                                                "max_position_embeddings",
                                                "encoder_layers",
                                                "encoder_ffn_dim",
                                                "encoder_attention_heads",
                                                "decoder_layers",
                                                "decoder_ffn_dim",
                                                "decoder_attention_heads",
                                                "encoder_layerdrop",
                                                "decoder_layerdrop",
                                                "use_cache",
                                                "is_encoder_decoder",
                                                "activation_function",
                                                "d_model",
                                                "dropout",
                                                "attention_dropout",
                                                "activation_dropout",
                                                "init_std",
                                                "decoder_start_token_id",
                                                "scale_embedding",
                                                "pad_token_id",
                                                "bos_token_id",
                                                "forced_eos_token_id",
                                                "share_encoder_decoder_embeddings",
                                                "is_decoder",
                                                "tie_word_embeddings"};

// "forced_eos_token_id": an integer, a list of integers or null.
void read_id_list(const detail::ConfigReader& r, const char* key, std::vector<int64_t>& ids,
                  bool& is_list) {
  auto it = r.j.find(key);
  if (it == r.j.end()) return;
  ids.clear();
  is_list = it->is_array();
  if (it->is_null()) return;
  if (it->is_number_integer()) {
    ids.push_back(it->get<int64_t>());
    return;
  }
  if (!it->is_array()) r.bad(key, "an integer, a list of integers or null");
  for (const auto& x : *it) {
    if (!x.is_number_integer()) r.bad(key, "an integer, a list of integers or null");
    ids.push_back(x.get<int64_t>());
  }
}

json id_list_json(const std::vector<int64_t>& ids, bool is_list) {
  if (is_list) return ids;
  return ids.empty() ? json(nullptr) : json(ids[0]);
}
}  // namespace

MarianConfig MarianConfig::from_json(const std::string& text, const std::string& origin) {
  json j = detail::parse_config_object(text, origin);
  detail::ConfigReader r{j, origin};
  std::string mt = "marian";
  r.get("model_type", mt);
  LMF_CHECK(mt == "marian", ValueError, "{}: model_type '{}' is not marian", origin, mt);
  MarianConfig c;
  r.get("vocab_size", c.vocab_size);
  r.get("decoder_vocab_size", c.decoder_vocab_size);
  r.get("max_position_embeddings", c.max_position_embeddings);
  r.get("encoder_layers", c.encoder_layers);
  r.get("encoder_ffn_dim", c.encoder_ffn_dim);
  r.get("encoder_attention_heads", c.encoder_attention_heads);
  r.get("decoder_layers", c.decoder_layers);
  r.get("decoder_ffn_dim", c.decoder_ffn_dim);
  r.get("decoder_attention_heads", c.decoder_attention_heads);
  r.get("d_model", c.d_model);
  LMF_CHECK(c.vocab_size > 0 && c.target_vocab_size() > 0 && c.max_position_embeddings > 0 &&
                c.encoder_layers > 0 && c.decoder_layers > 0 && c.encoder_ffn_dim > 0 &&
                c.decoder_ffn_dim > 0 && c.d_model > 0 && c.encoder_attention_heads > 0 &&
                c.decoder_attention_heads > 0 && c.d_model % c.encoder_attention_heads == 0 &&
                c.d_model % c.decoder_attention_heads == 0,
            ValueError,
            "{}: vocab sizes, max_position_embeddings, layer counts, FFN widths, d_model and "
            "attention heads must be positive and d_model a multiple of both head counts (got "
            "d_model {}, encoder_attention_heads {}, decoder_attention_heads {})",
            origin, c.d_model, c.encoder_attention_heads, c.decoder_attention_heads);
  r.get("encoder_layerdrop", c.encoder_layerdrop);
  r.get("decoder_layerdrop", c.decoder_layerdrop);
  r.get("use_cache", c.use_cache);
  r.get("is_encoder_decoder", c.is_encoder_decoder);
  r.get_activation("activation_function", c.activation_function);
  r.get("dropout", c.dropout);
  r.get("attention_dropout", c.attention_dropout);
  r.get("activation_dropout", c.activation_dropout);
  for (double p : {c.dropout, c.attention_dropout, c.activation_dropout, c.encoder_layerdrop,
                   c.decoder_layerdrop})
    LMF_CHECK(p >= 0 && p < 1, ValueError,
              "{}: dropout, attention_dropout, activation_dropout and the layerdrops must lie in "
              "[0, 1), got {}",
              origin, p);
  r.get("init_std", c.init_std);
  r.get("decoder_start_token_id", c.decoder_start_token_id);
  r.get("scale_embedding", c.scale_embedding);
  r.get("pad_token_id", c.pad_token_id);
  r.get("bos_token_id", c.bos_token_id);
  read_id_list(r, "forced_eos_token_id", c.forced_eos_token_ids, c.forced_eos_is_list);
  r.get("share_encoder_decoder_embeddings", c.share_encoder_decoder_embeddings);
  r.get("is_decoder", c.is_decoder);
  r.get("tie_word_embeddings", c.tie_word_embeddings);
  LMF_CHECK(!c.share_encoder_decoder_embeddings || c.target_vocab_size() == c.vocab_size,
            ValueError,
            "{}: share_encoder_decoder_embeddings needs decoder_vocab_size == vocab_size (got {} "
            "and {})",
            origin, c.target_vocab_size(), c.vocab_size);
  if (c.pad_token_id)
    LMF_CHECK(*c.pad_token_id >= 0 && *c.pad_token_id < c.vocab_size &&
                  *c.pad_token_id < c.target_vocab_size(),
              ValueError,
              "{}: pad_token_id {} must lie in [0, {}) (vocab_size and decoder_vocab_size)", origin,
              *c.pad_token_id, std::min(c.vocab_size, c.target_vocab_size()));
  detail::read_common_into(j, origin, kMarianFields, c);
  return c;
}

std::string MarianConfig::to_json(const std::string& architecture) const {
  json j;
  j["model_type"] = "marian";
  j["vocab_size"] = vocab_size;
  j["decoder_vocab_size"] = target_vocab_size();  // transformers writes the resolved size
  j["max_position_embeddings"] = max_position_embeddings;
  j["encoder_layers"] = encoder_layers;
  j["encoder_ffn_dim"] = encoder_ffn_dim;
  j["encoder_attention_heads"] = encoder_attention_heads;
  j["decoder_layers"] = decoder_layers;
  j["decoder_ffn_dim"] = decoder_ffn_dim;
  j["decoder_attention_heads"] = decoder_attention_heads;
  j["encoder_layerdrop"] = encoder_layerdrop;
  j["decoder_layerdrop"] = decoder_layerdrop;
  j["use_cache"] = use_cache;
  j["is_encoder_decoder"] = is_encoder_decoder;
  j["activation_function"] = activation_function;
  j["d_model"] = d_model;
  j["dropout"] = dropout;
  j["attention_dropout"] = attention_dropout;
  j["activation_dropout"] = activation_dropout;
  j["init_std"] = init_std;
  j["decoder_start_token_id"] = decoder_start_token_id;
  j["scale_embedding"] = scale_embedding;
  j["pad_token_id"] = detail::optional_json(pad_token_id);
  j["bos_token_id"] = detail::optional_json(bos_token_id);
  j["forced_eos_token_id"] = id_list_json(forced_eos_token_ids, forced_eos_is_list);
  j["share_encoder_decoder_embeddings"] = share_encoder_decoder_embeddings;
  j["is_decoder"] = is_decoder;
  j["tie_word_embeddings"] = tie_word_embeddings;
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

namespace {
nn::AttentionConfig marian_attention(const MarianConfig& c, int64_t heads) {
  nn::AttentionConfig a;
  a.dim = c.d_model;
  a.n_heads = heads;
  a.dropout = c.attention_dropout;
  a.q_name = "q_proj";
  a.k_name = "k_proj";
  a.v_name = "v_proj";
  a.o_name = "out_proj";
  return a;
}

}  // namespace

MarianLayer::MarianLayer(const MarianConfig& c, bool decoder)
    : decoder_(decoder),
      dropout_(c.dropout),
      activation_dropout_(c.activation_dropout),
      act_(parse_activation(c.activation_function)) {
  const int64_t heads = decoder ? c.decoder_attention_heads : c.encoder_attention_heads;
  const int64_t ffn = decoder ? c.decoder_ffn_dim : c.encoder_ffn_dim;
  self_attn_ = register_module(
      "self_attn", std::make_shared<nn::MultiHeadAttention>(marian_attention(c, heads)));
  self_attn_layer_norm_ =
      register_module("self_attn_layer_norm", std::make_shared<nn::LayerNorm>(c.d_model));
  if (decoder) {
    encoder_attn_ = register_module(
        "encoder_attn", std::make_shared<nn::MultiHeadAttention>(marian_attention(c, heads)));
    encoder_attn_layer_norm_ =
        register_module("encoder_attn_layer_norm", std::make_shared<nn::LayerNorm>(c.d_model));
  }
  fc1_ = register_module("fc1", std::make_shared<nn::Linear>(c.d_model, ffn));
  fc2_ = register_module("fc2", std::make_shared<nn::Linear>(ffn, c.d_model));
  final_layer_norm_ =
      register_module("final_layer_norm", std::make_shared<nn::LayerNorm>(c.d_model));
}

Tensor MarianLayer::forward(const Tensor& x, const Inputs& in) const {
  const bool tr = is_training();
  nn::AttentionInputs sa;
  sa.options = in.self_options;
  sa.cache = in.self_cache;
  AttentionResult r = self_attn_->forward(x, sa);
  if (in.self_probs) in.self_probs->push_back(r.probs);
  Tensor h = self_attn_layer_norm_->forward(dropout(r.out, dropout_, tr), x);
  if (decoder_) {
    nn::AttentionInputs ca;
    ca.context = in.encoder_hidden_states;
    ca.options = in.cross_options;
    ca.cache = in.cross_cache;
    r = encoder_attn_->forward(h, ca);
    if (in.cross_probs) in.cross_probs->push_back(r.probs);
    h = encoder_attn_layer_norm_->forward(dropout(r.out, dropout_, tr), h);
  }
  const Tensor f = fc2_->forward(dropout(fc1_->forward(h, act_), activation_dropout_, tr));
  return final_layer_norm_->forward(dropout(f, dropout_, tr), h);
}

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
  for (int64_t i = 0; i < n; ++i) layers_->push_back(std::make_shared<MarianLayer>(c, decoder));
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
  LoadOptions lenient = opt;
  lenient.strict = false;
  LoadReport rep = PretrainedModel::load(state, lenient, origin);
  std::erase_if(rep.missing_keys, [](const std::string& k) {
    return k.find("embed_positions.weight") != std::string::npos;
  });
  LMF_CHECK(!opt.strict || (rep.missing_keys.empty() && rep.unexpected_keys.empty()), ValueError,
            "{} does not match {} (strict load): missing keys [{}]; unexpected keys [{}]", origin,
            architecture(), fmt::join(rep.missing_keys, ", "),
            fmt::join(rep.unexpected_keys, ", "));
  return rep;
}

void MarianModel::init_missing(const std::vector<std::string>& keys) {
  std::vector<std::string> params;
  for (const std::string& k : keys)
    if (k == "final_logits_bias")
      final_logits_bias_->zero_();  // HF: zeros
    else
      params.push_back(k);
  detail::init_missing_decoder_weights(*this, params, cfg_.init_std);
  // HF's _init_weights zeroes an embedding's padding row.
  if (cfg_.pad_token_id)
    for (const std::string& k : params)
      if (k.find("embed_tokens") != std::string::npos || k.find("shared") != std::string::npos)
        parameter(k).select(0, *cfg_.pad_token_id).zero_();
}

Seq2SeqSpec MarianModel::spec() const {
  Seq2SeqSpec s;
  s.vocab_size = cfg_.target_vocab_size();
  s.source_vocab_size = cfg_.vocab_size;
  s.num_decoder_layers = cfg_.decoder_layers;
  s.decoder_heads = cfg_.decoder_attention_heads;
  s.head_dim = cfg_.d_model / cfg_.decoder_attention_heads;
  s.max_source_positions = cfg_.max_position_embeddings;
  s.max_target_positions = cfg_.max_position_embeddings;
  s.decoder_start_token_id = cfg_.decoder_start_token_id;
  s.pad_token_id = cfg_.pad_token_id.value_or(-1);
  s.bos_token_id = cfg_.bos_token_id.value_or(-1);
  s.eos_token_ids = cfg_.eos_token_ids;
  s.forced_eos_token_ids = cfg_.forced_eos_token_ids;
  return s;
}

namespace {
// Runs the layers of a stack, skipping each with probability `layerdrop` in training (LayerDrop).
bool drop_layer(double layerdrop, bool training) {
  return training && layerdrop > 0 && default_generator().uniform() < layerdrop;
}
}  // namespace

EncoderOutput MarianModel::encode(const Tensor& input_ids, const Tensor& attention_mask,
                                  bool output_attentions) const {
  const std::string who = architecture();
  detail::check_seq2seq_ids(who, "input_ids", input_ids);
  const int64_t B = input_ids.size(0), S = input_ids.size(1);
  detail::check_seq2seq_mask(who, "attention_mask", attention_mask, B, S);
  LMF_CHECK(S <= cfg_.max_position_embeddings, ValueError,
            "{}: the source has {} tokens but the model has max_position_embeddings = {} "
            "(truncate the source)",
            who, S, cfg_.max_position_embeddings);
  MarianLayer::Inputs li;
  li.self_options.key_padding_mask = detail::key_padding_from(attention_mask);
  li.self_options.return_probs = output_attentions;
  EncoderOutput out;
  if (output_attentions) li.self_probs = &out.attentions;
  Tensor h = encoder_->embed(input_ids, 0);
  const nn::ModuleList& layers = encoder_->layers();
  for (size_t i = 0; i < layers.size(); ++i)
    if (!drop_layer(cfg_.encoder_layerdrop, is_training()))
      h = layers.at<MarianLayer>(i)->forward(h, li);
  out.last_hidden_state = h;
  return out;
}

Tensor MarianModel::decode(const Seq2SeqInputs& in, const Tensor& ids, const Tensor& enc,
                           Seq2SeqOutput& out) const {
  const std::string who = architecture();
  const int64_t past =
      detail::check_decoder_call(who, in, ids, enc, cfg_.d_model, cfg_.decoder_layers);
  const int64_t T = ids.size(1);
  Seq2SeqCache* cache = in.cache;
  LMF_CHECK(past + T <= cfg_.max_position_embeddings, ValueError,
            "{}: {} target positions ({} cached + {} new) exceed max_position_embeddings = {} "
            "(shorten the target or the generation)",
            who, past + T, past, T, cfg_.max_position_embeddings);
  MarianLayer::Inputs li;
  li.self_options = detail::decoder_attention_options(
      detail::key_padding_from(in.decoder_attention_mask), past, T, 0);
  li.self_options.return_probs = in.output_attentions;
  li.encoder_hidden_states = enc;
  li.cross_options.key_padding_mask = detail::key_padding_from(in.attention_mask);
  li.cross_options.return_probs = in.output_attentions;
  if (in.output_attentions) {
    li.self_probs = &out.decoder_attentions;
    li.cross_probs = &out.cross_attentions;
  }
  Tensor h = decoder_->embed(ids, past);
  const nn::ModuleList& layers = decoder_->layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    nn::KVCache self_cache;
    if (cache) {
      self_cache = cache->self.layer(static_cast<int64_t>(i));
      li.self_cache = &self_cache;
      li.cross_cache = &cache->cross[i];
    }
    // LayerDrop skips a layer only in training, where no cache is used.
    if (!drop_layer(cfg_.decoder_layerdrop, is_training()))
      h = layers.at<MarianLayer>(i)->forward(h, li);
  }
  if (cache) cache->self.advance(T);
  return h;
}

Seq2SeqOutput MarianModel::forward(const Seq2SeqInputs& in, const Seq2SeqLabels& labels) const {
  const std::string who = architecture();
  Seq2SeqOutput out = detail::seq2seq_encoder_output(*this, in);
  const Tensor dec_ids = detail::seq2seq_decoder_ids(
      who, in, labels, cfg_.pad_token_id.value_or(-1), cfg_.decoder_start_token_id);
  out.last_hidden_state = decode(in, dec_ids, out.encoder_last_hidden_state, out);
  if (!lm_head_) {
    LMF_CHECK(!labels.labels.defined(), ValueError,
              "MarianModel has no LM head to compute a loss (load it as MarianMTModel)");
    return out;
  }
  const Tensor& h = out.last_hidden_state;
  const int64_t keep = in.logits_to_keep;
  LMF_CHECK(keep >= 0, ValueError, "{}: logits_to_keep must be >= 0, got {}", who, keep);
  out.logits =
      lm_head_->forward(keep > 0 && keep < h.size(1) ? h.narrow(1, h.size(1) - keep, keep) : h) +
      *final_logits_bias_;
  if (labels.labels.defined())
    out.loss = detail::seq2seq_lm_loss(who, out.logits, labels.labels, keep, h.size(1));
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
