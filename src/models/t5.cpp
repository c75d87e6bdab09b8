// The T5 family, top to bottom like modeling_t5.py: config, relative position buckets, attention
// and FF sub-layers, the stack, T5Model / T5ForConditionalGeneration / T5EncoderModel,
// registration.
#include "lmforge/models/t5.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "lmforge/core/autograd.h"
#include "lmforge/models/registry.h"
#include "lmforge/nn/init.h"
#include "models/decoder_util.h"
#include "models/seq2seq_util.h"

namespace lmf::models {

using nlohmann::json;

// ---- config -------------------------------------------------------------------------------------

namespace {
// Keys T5Config models (dense_act_fn and is_gated_act are recomputed from feed_forward_proj and
// tie_word_embeddings is always true, as __post_init__ does).
const std::vector<std::string> kT5Fields = {"model_type",
                                            "vocab_size",
                                            "d_model",
                                            "d_kv",
                                            "d_ff",
                                            "num_layers",
                                            "num_decoder_layers",
                                            "num_heads",
                                            "relative_attention_num_buckets",
                                            "relative_attention_max_distance",
                                            "dropout_rate",
                                            "layer_norm_epsilon",
                                            "initializer_factor",
                                            "feed_forward_proj",
                                            "is_encoder_decoder",
                                            "use_cache",
                                            "pad_token_id",
                                            "classifier_dropout",
                                            "is_decoder",
                                            "dense_act_fn",
                                            "is_gated_act",
                                            "scale_decoder_outputs",
                                            "tie_word_embeddings"};

// feed_forward_proj split at '-' as T5Config: "ACT" or "gated-ACT"; ValueError otherwise.
std::vector<std::string> split_proj(const std::string& p) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= p.size(); ++i)
    if (i == p.size() || p[i] == '-') {
      parts.push_back(p.substr(start, i - start));
      start = i + 1;
    }
  return parts;
}
}  // namespace

std::string T5Config::dense_act_fn() const {
  if (feed_forward_proj == "gated-gelu") return "gelu_new";
  return split_proj(feed_forward_proj).back();
}

bool T5Config::is_gated_act() const {
  return split_proj(feed_forward_proj)[0] == "gated";
}

T5Config T5Config::from_json(const std::string& text, const std::string& origin) {
  json j = detail::parse_config_object(text, origin);
  detail::ConfigReader r{j, origin};
  std::string mt = "t5";
  r.get("model_type", mt);
  LMF_CHECK(mt == "t5", ValueError, "{}: model_type '{}' is not t5", origin, mt);
  T5Config c;
  r.get("vocab_size", c.vocab_size);
  r.get("d_model", c.d_model);
  r.get("d_kv", c.d_kv);
  r.get("d_ff", c.d_ff);
  r.get("num_layers", c.num_layers);
  c.num_decoder_layers = c.num_layers;
  r.get("num_decoder_layers", c.num_decoder_layers);
  r.get("num_heads", c.num_heads);
  r.get("relative_attention_num_buckets", c.relative_attention_num_buckets);
  r.get("relative_attention_max_distance", c.relative_attention_max_distance);
  LMF_CHECK(
      c.vocab_size > 0 && c.d_model > 0 && c.d_kv > 0 && c.d_ff > 0 && c.num_layers > 0 &&
          c.num_decoder_layers > 0 && c.num_heads > 0,
      ValueError,
      "{}: vocab_size, d_model, d_kv, d_ff, num_layers, num_decoder_layers and num_heads must "
      "be positive (got {}, {}, {}, {}, {}, {}, {})",
      origin, c.vocab_size, c.d_model, c.d_kv, c.d_ff, c.num_layers, c.num_decoder_layers,
      c.num_heads);
  LMF_CHECK(c.relative_attention_num_buckets >= 4 && c.relative_attention_max_distance > 0,
            ValueError,
            "{}: relative_attention_num_buckets must be >= 4 and relative_attention_max_distance "
            "positive (got {} and {})",
            origin, c.relative_attention_num_buckets, c.relative_attention_max_distance);
  r.get("dropout_rate", c.dropout_rate);
  r.get("classifier_dropout", c.classifier_dropout);
  for (double p : {c.dropout_rate, c.classifier_dropout})
    LMF_CHECK(p >= 0 && p < 1, ValueError,
              "{}: dropout_rate and classifier_dropout must lie in [0, 1), got {}", origin, p);
  r.get("layer_norm_epsilon", c.layer_norm_epsilon);
  LMF_CHECK(c.layer_norm_epsilon >= 0, ValueError, "{}: layer_norm_epsilon must be >= 0, got {}",
            origin, c.layer_norm_epsilon);
  r.get("initializer_factor", c.initializer_factor);
  r.get("feed_forward_proj", c.feed_forward_proj);
  const std::vector<std::string> parts = split_proj(c.feed_forward_proj);
  LMF_CHECK(parts.size() <= 2 && (parts.size() == 1 || parts[0] == "gated"), ValueError,
            "{}: feed_forward_proj '{}' is not a valid activation of the dense layer; use "
            "'gated-ACT' or 'ACT', e.g. 'gated-gelu' or 'relu'",
            origin, c.feed_forward_proj);
  try {
    parse_activation(c.dense_act_fn());
  } catch (const ValueError& e) {
    fail<ValueError>("{}: feed_forward_proj '{}': {}", origin, c.feed_forward_proj, e.what());
  }
  r.get("is_encoder_decoder", c.is_encoder_decoder);
  r.get("use_cache", c.use_cache);
  r.get("pad_token_id", c.pad_token_id);
  if (c.pad_token_id)
    LMF_CHECK(*c.pad_token_id >= 0 && *c.pad_token_id < c.vocab_size, ValueError,
              "{}: pad_token_id {} must lie in [0, vocab_size = {})", origin, *c.pad_token_id,
              c.vocab_size);
  r.get("is_decoder", c.is_decoder);
  // __post_init__: scale_decoder_outputs = tie_word_embeddings is not False, unless the file
  // states scale_decoder_outputs itself (transformers 5.25 writes it).
  bool tie = true;
  r.get("tie_word_embeddings", tie);
  c.scale_decoder_outputs = tie;
  r.get("scale_decoder_outputs", c.scale_decoder_outputs);
  r.get("decoder_start_token_id", c.decoder_start_token_id);
  r.get("bos_token_id", c.bos_token_id);
  detail::read_common_into(j, origin, kT5Fields, c);
  return c;
}

std::string T5Config::to_json(const std::string& architecture) const {
  json j;
  j["model_type"] = "t5";
  j["vocab_size"] = vocab_size;
  j["d_model"] = d_model;
  j["d_kv"] = d_kv;
  j["d_ff"] = d_ff;
  j["num_layers"] = num_layers;
  j["num_decoder_layers"] = num_decoder_layers;
  j["num_heads"] = num_heads;
  j["relative_attention_num_buckets"] = relative_attention_num_buckets;
  j["relative_attention_max_distance"] = relative_attention_max_distance;
  j["dropout_rate"] = dropout_rate;
  j["layer_norm_epsilon"] = layer_norm_epsilon;
  j["initializer_factor"] = initializer_factor;
  j["feed_forward_proj"] = feed_forward_proj;
  j["dense_act_fn"] = dense_act_fn();
  j["is_gated_act"] = is_gated_act();
  j["is_encoder_decoder"] = is_encoder_decoder;
  j["use_cache"] = use_cache;
  j["pad_token_id"] = detail::optional_json(pad_token_id);
  j["classifier_dropout"] = classifier_dropout;
  j["is_decoder"] = is_decoder;
  j["scale_decoder_outputs"] = scale_decoder_outputs;
  j["tie_word_embeddings"] = true;
  return detail::finish_config_json_of(std::move(j), *this, architecture);
}

// ---- relative positions -------------------------------------------------------------------------

int64_t t5_relative_position_bucket(int64_t relative_position, bool bidirectional,
                                    int64_t num_buckets, int64_t max_distance) {
  int64_t bucket = 0;
  int64_t n = num_buckets;
  int64_t rp = relative_position;
  if (bidirectional) {
    n /= 2;
    if (rp > 0) bucket += n;
    rp = rp < 0 ? -rp : rp;
  } else {
    rp = rp < 0 ? -rp : 0;
  }
  const int64_t max_exact = n / 2;
  if (rp < max_exact) return bucket + rp;
  // torch: log(rp.float() / max_exact) / math.log(max_distance / max_exact) * (n - max_exact),
  // every step in f32 (the Python float scalars rounded to f32), truncated to an integer.
  const float ratio = static_cast<float>(rp) / static_cast<float>(max_exact);
  const float denom = static_cast<float>(
      std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float v = std::log(ratio) / denom * static_cast<float>(n - max_exact);
  const int64_t large = std::min<int64_t>(max_exact + static_cast<int64_t>(v), n - 1);
  return bucket + large;
}

// ---- sub-layers ---------------------------------------------------------------------------------

T5LayerAttention::T5LayerAttention(const T5Config& c, bool cross, bool has_relative_attention_bias)
    : dropout_(c.dropout_rate),
      num_buckets_(c.relative_attention_num_buckets),
      max_distance_(c.relative_attention_max_distance) {
  nn::AttentionConfig a;
  a.dim = c.d_model;
  a.n_heads = c.num_heads;
  a.head_dim = c.d_kv;
  a.qkv_bias = false;
  a.out_bias = false;
  a.dropout = c.dropout_rate;
  a.q_name = "q";
  a.k_name = "k";
  a.v_name = "v";
  a.o_name = "o";
  attn_ = register_module(cross ? "EncDecAttention" : "SelfAttention",
                          std::make_shared<nn::MultiHeadAttention>(a));
  if (has_relative_attention_bias)
    relative_attention_bias_ = attn_->register_module(
        "relative_attention_bias", std::make_shared<nn::Embedding>(num_buckets_, c.num_heads));
  layer_norm_ =
      register_module("layer_norm", std::make_shared<nn::RMSNorm>(c.d_model, c.layer_norm_epsilon));
}

Tensor T5LayerAttention::compute_bias(int64_t Tq, int64_t Tk, int64_t past,
                                      bool bidirectional) const {
  std::vector<int64_t> buckets(Tq * Tk);
  for (int64_t i = 0; i < Tq; ++i)
    for (int64_t j = 0; j < Tk; ++j)
      buckets[i * Tk + j] =
          t5_relative_position_bucket(j - (past + i), bidirectional, num_buckets_, max_distance_);
  const Tensor values = relative_attention_bias_->forward(Tensor::from_vector(buckets, {Tq, Tk}));
  return values.permute({2, 0, 1}).unsqueeze(0);  // [1, H, Tq, Tk]
}

Tensor T5LayerAttention::forward(const Tensor& x, const nn::AttentionInputs& in,
                                 std::vector<Tensor>* probs) const {
  AttentionResult r = attn_->forward(layer_norm_->forward(x), in);
  if (probs) probs->push_back(r.probs);
  return x + dropout(r.out, dropout_, is_training());
}

T5LayerFF::T5LayerFF(const T5Config& c)
    : dropout_(c.dropout_rate), act_(parse_activation(c.dense_act_fn())) {
  auto dense = register_module("DenseReluDense", std::make_shared<nn::Module>());
  if (c.is_gated_act()) {
    wi_0_ = dense->register_module("wi_0", std::make_shared<nn::Linear>(c.d_model, c.d_ff, false));
    wi_1_ = dense->register_module("wi_1", std::make_shared<nn::Linear>(c.d_model, c.d_ff, false));
  } else {
    wi_ = dense->register_module("wi", std::make_shared<nn::Linear>(c.d_model, c.d_ff, false));
  }
  wo_ = dense->register_module("wo", std::make_shared<nn::Linear>(c.d_ff, c.d_model, false));
  layer_norm_ =
      register_module("layer_norm", std::make_shared<nn::RMSNorm>(c.d_model, c.layer_norm_epsilon));
}

Tensor T5LayerFF::forward(const Tensor& x) const {
  const bool tr = is_training();
  const Tensor h = layer_norm_->forward(x);
  const Tensor a = wi_ ? wi_->forward(h, act_) : wi_0_->forward(h, act_) * wi_1_->forward(h);
  return x + dropout(wo_->forward(dropout(a, dropout_, tr)), dropout_, tr);
}

// ---- stack --------------------------------------------------------------------------------------

T5Stack::T5Stack(const T5Config& c, bool decoder) : decoder_(decoder), dropout_(c.dropout_rate) {
  embed_tokens_ =
      register_module("embed_tokens", std::make_shared<nn::Embedding>(c.vocab_size, c.d_model));
  auto block = register_module("block", std::make_shared<nn::ModuleList>());
  const int64_t n = decoder ? c.num_decoder_layers : c.num_layers;
  for (int64_t i = 0; i < n; ++i) {
    auto b = std::make_shared<nn::Module>();
    auto layer = b->register_module("layer", std::make_shared<nn::ModuleList>());
    Block bl;
    bl.self = std::make_shared<T5LayerAttention>(c, false, i == 0);
    layer->push_back(bl.self);
    if (decoder) {
      bl.cross = std::make_shared<T5LayerAttention>(c, true, false);
      layer->push_back(bl.cross);
    }
    bl.ff = std::make_shared<T5LayerFF>(c);
    layer->push_back(bl.ff);
    block->push_back(b);
    blocks_.push_back(bl);
  }
  final_layer_norm_ = register_module(
      "final_layer_norm", std::make_shared<nn::RMSNorm>(c.d_model, c.layer_norm_epsilon));
}

Tensor T5Stack::forward(const Tensor& ids, const Inputs& in) const {
  const int64_t T = ids.size(1);
  const int64_t past = in.cache ? in.cache->length() : 0;
  Tensor h = dropout(embed_tokens_->forward(ids), dropout_, is_training());
  nn::AttentionInputs self;
  if (decoder_)
    self.options = detail::decoder_attention_options(in.key_padding, past, T, 0);
  else
    self.options.key_padding_mask = in.key_padding;
  self.options.scale = 1.0;  // T5 folds 1/sqrt(d_kv) into its initialisation
  self.options.return_probs = in.self_probs != nullptr;
  // The first block's bias serves every block (the later ones have none).
  self.options.attn_mask = blocks_.at(0).self->compute_bias(T, past + T, past, !decoder_);
  nn::AttentionInputs cross;
  cross.context = in.encoder_hidden_states;
  cross.options.key_padding_mask = in.encoder_key_padding;
  cross.options.scale = 1.0;
  cross.options.return_probs = in.cross_probs != nullptr;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    nn::KVCache self_cache;
    if (in.cache) {
      self_cache = in.cache->layer(static_cast<int64_t>(i));
      self.cache = &self_cache;
    }
    h = b.self->forward(h, self, in.self_probs);
    if (decoder_) {
      cross.cache = in.cross ? &(*in.cross)[i] : nullptr;
      h = b.cross->forward(h, cross, in.cross_probs);
    }
    h = b.ff->forward(h);
  }
  if (in.cache) in.cache->advance(T);
  return dropout(final_layer_norm_->forward(h), dropout_, is_training());
}

// ---- T5Model / T5ForConditionalGeneration / T5EncoderModel --------------------------------------

T5Model::T5Model(const T5Config& c, Kind kind) : cfg_(c), kind_(kind) {
  shared_ = register_module("shared", std::make_shared<nn::Embedding>(c.vocab_size, c.d_model));
  encoder_ = register_module("encoder", std::make_shared<T5Stack>(c, false));
  if (kind != Kind::encoder)
    decoder_ = register_module("decoder", std::make_shared<T5Stack>(c, true));
  if (kind == Kind::conditional_generation)
    lm_head_ =
        register_module("lm_head", std::make_shared<nn::Linear>(c.d_model, c.vocab_size, false));
  tie_weights();
}

std::string T5Model::architecture() const {
  switch (kind_) {
    case Kind::model:
      return "T5Model";
    case Kind::conditional_generation:
      return "T5ForConditionalGeneration";
    case Kind::encoder:
      return "T5EncoderModel";
  }
  return "T5Model";
}

void T5Model::tie_weights() {
  encoder_->embed_tokens().weight() = shared_->weight();
  if (decoder_) decoder_->embed_tokens().weight() = shared_->weight();
  if (lm_head_ && lm_tied_) lm_head_->weight() = shared_->weight();
}

LoadSpec T5Model::load_spec() const {
  LoadSpec s;
  // Never weights: the decoder's cross-attention has no bias (old checkpoints saved one).
  s.ignored_suffixes = {"decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"};
  s.tied = {{"encoder.embed_tokens.weight", "shared.weight"}};
  if (decoder_) s.tied.push_back({"decoder.embed_tokens.weight", "shared.weight"});
  if (lm_head_tied()) s.tied.push_back({"lm_head.weight", "shared.weight"});
  return s;
}

namespace {
bool same_values(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  const std::vector<float> x = a.to(DType::f32).contiguous().to_vector<float>();
  const std::vector<float> y = b.to(DType::f32).contiguous().to_vector<float>();
  return x == y;
}
}  // namespace

LoadReport T5Model::load(const nn::StateDict& state, const LoadOptions& opt,
                         const std::string& origin) {
  if (lm_head_) {
    auto head = state.find("lm_head.weight");
    auto shared = state.find("shared.weight");
    const bool untie =
        head != state.end() && shared != state.end() && !same_values(head->second, shared->second);
    if (untie && lm_tied_) {
      NoGradGuard ng;
      lm_head_->weight() = shared_->weight().detach().clone();
      lm_head_->weight().set_requires_grad(true);
    } else if (!untie && !lm_tied_) {
      lm_head_->weight() = shared_->weight();
    }
    lm_tied_ = !untie;
  }
  if (kind_ != Kind::encoder) return PretrainedModel::load(state, opt, origin);
  // T5EncoderModel: the decoder and the LM head of a full checkpoint are not its keys.
  nn::StateDict enc;
  for (const auto& [k, t] : state)
    if (k.rfind("decoder.", 0) != 0 && k != "lm_head.weight") enc[k] = t;
  return PretrainedModel::load(enc, opt, origin);
}

void T5Model::init_missing(const std::vector<std::string>& keys) {
  const double f = cfg_.initializer_factor;
  const auto ends = [](const std::string& k, std::string_view s) {
    return k.size() >= s.size() && k.compare(k.size() - s.size(), s.size(), s) == 0;
  };
  const double dm = static_cast<double>(cfg_.d_model);
  for (const std::string& k : keys) {
    Tensor& t = parameter(k);
    double std = f;  // shared, lm_head
    if (k.find("layer_norm") != std::string::npos) {
      nn::init::constant_(t, f);
      continue;
    }
    if (ends(k, ".q.weight"))
      std = f / std::sqrt(dm * cfg_.d_kv);
    else if (ends(k, ".k.weight") || ends(k, ".v.weight") || ends(k, "wi.weight") ||
             ends(k, "wi_0.weight") || ends(k, "wi_1.weight") ||
             ends(k, "relative_attention_bias.weight"))
      std = f / std::sqrt(dm);
    else if (ends(k, ".o.weight"))
      std = f / std::sqrt(static_cast<double>(cfg_.inner_dim()));
    else if (ends(k, "wo.weight"))
      std = f / std::sqrt(static_cast<double>(cfg_.d_ff));
    nn::init::normal_(t, 0.0, std);
  }
}

Seq2SeqSpec T5Model::spec() const {
  Seq2SeqSpec s;
  s.vocab_size = cfg_.vocab_size;
  s.source_vocab_size = cfg_.vocab_size;
  s.num_decoder_layers = decoder_ ? cfg_.num_decoder_layers : 0;
  s.decoder_heads = cfg_.num_heads;
  s.head_dim = cfg_.d_kv;
  s.max_source_positions = 0;  // relative positions: no hard limit
  s.max_target_positions = 0;
  // generate(): decoder_start_token_id, else bos_token_id.
  s.decoder_start_token_id = cfg_.decoder_start_token_id.value_or(cfg_.bos_token_id.value_or(-1));
  s.pad_token_id = cfg_.pad_token_id.value_or(-1);
  s.bos_token_id = cfg_.bos_token_id.value_or(-1);
  if (cfg_.eos_set) s.eos_token_ids = cfg_.eos_token_ids;
  return s;
}

EncoderOutput T5Model::encode(const Tensor& input_ids, const Tensor& attention_mask,
                              bool output_attentions) const {
  const std::string who = architecture();
  detail::check_seq2seq_ids(who, "input_ids", input_ids);
  detail::check_seq2seq_mask(who, "attention_mask", attention_mask, input_ids.size(0),
                             input_ids.size(1));
  EncoderOutput out;
  T5Stack::Inputs si;
  si.key_padding = detail::key_padding_from(attention_mask);
  if (output_attentions) si.self_probs = &out.attentions;
  out.last_hidden_state = encoder_->forward(input_ids, si);
  return out;
}

Seq2SeqOutput T5Model::forward(const Seq2SeqInputs& in, const Seq2SeqLabels& labels) const {
  const std::string who = architecture();
  Seq2SeqOutput out = detail::seq2seq_encoder_output(*this, in);
  if (!decoder_) {
    LMF_CHECK(!labels.labels.defined() && !in.decoder_input_ids.defined(), ValueError,
              "T5EncoderModel has no decoder (load the folder as T5ForConditionalGeneration or "
              "T5Model for decoder inputs and labels)");
    out.last_hidden_state = out.encoder_last_hidden_state;
    return out;
  }
  // T5 configs set decoder_start_token_id (0, the pad token); transformers' _shift_right needs it.
  const Tensor ids = detail::seq2seq_decoder_ids(who, in, labels, cfg_.pad_token_id.value_or(-1),
                                                 cfg_.decoder_start_token_id.value_or(-1));
  const Tensor& enc = out.encoder_last_hidden_state;
  detail::check_decoder_call(who, in, ids, enc, cfg_.d_model, cfg_.num_decoder_layers);
  const int64_t T = ids.size(1);
  Seq2SeqCache* cache = in.cache;
  T5Stack::Inputs si;
  si.key_padding = detail::key_padding_from(in.decoder_attention_mask);
  si.encoder_hidden_states = enc;
  si.encoder_key_padding = detail::key_padding_from(in.attention_mask);
  if (cache) {
    si.cache = &cache->self;
    si.cross = &cache->cross;
  }
  if (in.output_attentions) {
    si.self_probs = &out.decoder_attentions;
    si.cross_probs = &out.cross_attentions;
  }
  out.last_hidden_state = decoder_->forward(ids, si);
  if (!lm_head_) {
    LMF_CHECK(!labels.labels.defined(), ValueError,
              "T5Model has no LM head to compute a loss (load it as T5ForConditionalGeneration)");
    return out;
  }
  const int64_t keep = in.logits_to_keep;
  LMF_CHECK(keep >= 0, ValueError, "{}: logits_to_keep must be >= 0, got {}", who, keep);
  Tensor h = out.last_hidden_state;
  if (keep > 0 && keep < T) h = h.narrow(1, T - keep, keep);
  if (cfg_.scale_decoder_outputs) h = h * std::pow(static_cast<double>(cfg_.d_model), -0.5);
  out.logits = lm_head_->forward(h);
  if (labels.labels.defined())
    out.loss = detail::seq2seq_lm_loss(who, out.logits, labels.labels, keep, T);
  return out;
}

// ---- registration -------------------------------------------------------------------------------

std::unique_ptr<EncoderDecoderModel> make_t5_model(const T5Config& c, const std::string& arch) {
  if (arch == "T5ForConditionalGeneration")
    return std::make_unique<T5Model>(c, T5Model::Kind::conditional_generation);
  if (arch == "T5Model") return std::make_unique<T5Model>(c, T5Model::Kind::model);
  if (arch == "T5EncoderModel") return std::make_unique<T5Model>(c, T5Model::Kind::encoder);
  fail<ValueError>(
      "architecture '{}' is not one lmforge implements for model_type 't5'; supported: T5Model, "
      "T5ForConditionalGeneration, T5EncoderModel",
      arch);
}

void register_t5_family() {
  FamilyRegistration reg;
  reg.model_types = {"t5"};
  reg.architectures = {"T5Model", "T5ForConditionalGeneration", "T5EncoderModel"};
  reg.default_architecture = "T5Model";
  reg.create = [](const std::string& text, const std::string& arch,
                  const std::string& origin) -> std::unique_ptr<PretrainedModel> {
    const T5Config c = T5Config::from_json(text, origin);
    return make_t5_model(c, !arch.empty()              ? arch
                            : !c.architectures.empty() ? c.architectures[0]
                                                       : "T5Model");
  };
  register_family(std::move(reg));
}

}  // namespace lmf::models
