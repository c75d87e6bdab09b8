// The LLaMA family (LLaMA, Qwen2, Mistral), top to bottom like modeling_llama.py: config, rotary
// embedding, decoder layer, model, heads, registration.
#include "lmforge/models/llama.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "lmforge/core/autograd.h"
#include "lmforge/models/registry.h"
#include "models/decoder_util.h"

namespace lmf::models {

using nlohmann::json;

const char* variant_name(LlamaVariant v) {
  switch (v) {
    case LlamaVariant::llama:
      return "llama";
    case LlamaVariant::qwen2:
      return "qwen2";
    case LlamaVariant::mistral:
      return "mistral";
  }
  return "llama";
}

// ---- config -------------------------------------------------------------------------------------

LlamaConfig LlamaConfig::defaults(LlamaVariant v) {
  LlamaConfig c;
  c.variant = v;
  if (v == LlamaVariant::qwen2) {
    c.vocab_size = 151936;
    c.intermediate_size = 22016;
    c.max_position_embeddings = 32768;
    c.bos_token_id.reset();
    c.eos_set = false;
    c.eos_token_ids.clear();
    c.sliding_window = 4096;
  } else if (v == LlamaVariant::mistral) {
    c.intermediate_size = 14336;
    c.num_key_value_heads = 8;
    c.max_position_embeddings = 4096 * 32;
    c.sliding_window = 4096;
  }
  return c;
}

namespace {

const std::vector<std::string>& modelled_keys(LlamaVariant v) {
  static const std::vector<std::string> kCommon = {
      "model_type",          "vocab_size",        "hidden_size",
      "intermediate_size",   "num_hidden_layers", "num_attention_heads",
      "num_key_value_heads", "hidden_act",        "max_position_embeddings",
      "initializer_range",   "rms_norm_eps",      "use_cache",
      "pad_token_id",        "bos_token_id",      "tie_word_embeddings",
      "rope_parameters",     "rope_scaling",      "rope_theta",
      "attention_dropout"};
  static const std::vector<std::string> kLlama = [] {
    auto k = kCommon;
    for (const char* s : {"head_dim", "pretraining_tp", "attention_bias", "mlp_bias"})
      k.push_back(s);
    return k;
  }();
  static const std::vector<std::string> kQwen2 = [] {
    auto k = kCommon;
    for (const char* s :
         {"use_sliding_window", "sliding_window", "max_window_layers", "layer_types"})
      k.push_back(s);
    return k;
  }();
  static const std::vector<std::string> kMistral = [] {
    auto k = kCommon;
    for (const char* s : {"head_dim", "sliding_window"}) k.push_back(s);
    return k;
  }();
  return v == LlamaVariant::qwen2 ? kQwen2 : v == LlamaVariant::mistral ? kMistral : kLlama;
}

// rope_parameters as transformers 5.x standardises it: the given object (or legacy rope_scaling),
// with rope_theta (from the top level when absent) and rope_type (from a legacy "type").
RopeParameters read_rope(const json& j, const std::string& origin) {
  RopeParameters r;
  json obj = json::object();
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    LMF_CHECK(it->is_object(), ValueError, "{}: '{}' must be an object, got {}", origin, key,
              it->dump());
    obj = *it;
    break;
  }
  if (!obj.contains("rope_theta")) {
    double theta = 10000.0;
    if (auto it = j.find("rope_theta"); it != j.end() && !it->is_null()) {
      LMF_CHECK(it->is_number(), ValueError, "{}: 'rope_theta' must be a number, got {}", origin,
                it->dump());
      theta = it->get<double>();
    }
    obj["rope_theta"] = theta;
  }
  if (!obj.contains("rope_type")) obj["rope_type"] = obj.contains("type") ? obj["type"] : "default";
  const std::string where = origin + ": rope_parameters";
  detail::ConfigReader rr{obj, where};
  rr.get("rope_type", r.rope_type);
  rr.get("rope_theta", r.rope_theta);
  static const std::vector<std::string> kTypes = {"default", "linear", "dynamic", "llama3"};
  LMF_CHECK(std::find(kTypes.begin(), kTypes.end(), r.rope_type) != kTypes.end(), ValueError,
            "{}: rope type '{}' is not supported; supported: default, linear, dynamic, llama3",
            where, r.rope_type);
  LMF_CHECK(r.rope_theta > 0, ValueError, "{}: rope_theta must be positive, got {}", where,
            r.rope_theta);
  if (r.rope_type != "default") {
    LMF_CHECK(obj.contains("factor"), ValueError, "{}: rope type '{}' needs 'factor'", where,
              r.rope_type);
    rr.get("factor", r.factor);
    LMF_CHECK(r.factor >= 1.0, ValueError, "{}: factor must be >= 1, got {}", where, r.factor);
  }
  if (r.rope_type == "llama3") {
    for (const char* k :
         {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
      LMF_CHECK(obj.contains(k), ValueError, "{}: rope type 'llama3' needs '{}'", where, k);
    rr.get("low_freq_factor", r.low_freq_factor);
    rr.get("high_freq_factor", r.high_freq_factor);
    rr.get("original_max_position_embeddings", r.original_max_position_embeddings);
    LMF_CHECK(r.high_freq_factor > r.low_freq_factor, ValueError,
              "{}: high_freq_factor {} must exceed low_freq_factor {}", where, r.high_freq_factor,
              r.low_freq_factor);
  }
  r.raw = obj.dump();
  return r;
}

json rope_json(const RopeParameters& r) {
  json obj = r.raw.empty() ? json::object() : json::parse(r.raw);
  obj["rope_type"] = r.rope_type;
  obj["rope_theta"] = r.rope_theta;
  if (r.rope_type != "default") obj["factor"] = r.factor;
  if (r.rope_type == "llama3") {
    obj["low_freq_factor"] = r.low_freq_factor;
    obj["high_freq_factor"] = r.high_freq_factor;
    obj["original_max_position_embeddings"] = r.original_max_position_embeddings;
  }
  return obj;
}

LlamaVariant variant_from(const std::string& mt, const std::string& origin) {
  for (LlamaVariant v : {LlamaVariant::llama, LlamaVariant::qwen2, LlamaVariant::mistral})
    if (mt == variant_name(v)) return v;
  fail<ValueError>(
      "{}: model_type '{}' is not of the LLaMA family; supported: llama, qwen2, mistral", origin,
      mt);
}

}  // namespace

LlamaConfig LlamaConfig::from_json(const std::string& text, const std::string& origin) {
  json j = detail::parse_config_object(text, origin);
  std::string mt = "llama";
  detail::ConfigReader r{j, origin};
  r.get("model_type", mt);
  LlamaConfig c = defaults(variant_from(mt, origin));
  r.get("vocab_size", c.vocab_size);
  r.get("hidden_size", c.hidden_size);
  r.get("intermediate_size", c.intermediate_size);
  r.get("num_hidden_layers", c.num_hidden_layers);
  r.get("num_attention_heads", c.num_attention_heads);
  LMF_CHECK(c.hidden_size > 0 && c.num_attention_heads > 0 && c.num_hidden_layers > 0 &&
                c.vocab_size > 0 && c.intermediate_size > 0,
            ValueError,
            "{}: vocab_size, hidden_size, intermediate_size, num_hidden_layers and "
            "num_attention_heads must be positive",
            origin);
  // num_key_value_heads: null/absent means num_attention_heads (llama, mistral's post_init).
  c.num_key_value_heads = c.variant == LlamaVariant::mistral && !j.contains("num_key_value_heads")
                              ? c.num_key_value_heads
                              : c.num_attention_heads;
  r.get("num_key_value_heads", c.num_key_value_heads);
  if (c.variant == LlamaVariant::qwen2 && !j.contains("num_key_value_heads"))
    c.num_key_value_heads = 32;  // Qwen2Config's default is a number, not None
  c.head_dim = c.hidden_size / c.num_attention_heads;
  if (c.variant != LlamaVariant::qwen2) r.get("head_dim", c.head_dim);
  LMF_CHECK(c.num_key_value_heads > 0 && c.num_attention_heads % c.num_key_value_heads == 0,
            ValueError, "{}: num_key_value_heads {} must divide num_attention_heads {}", origin,
            c.num_key_value_heads, c.num_attention_heads);
  LMF_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0, ValueError,
            "{}: head_dim {} must be positive and even (rotary embedding)", origin, c.head_dim);
  r.get_activation("hidden_act", c.hidden_act);
  r.get("max_position_embeddings", c.max_position_embeddings);
  r.get("initializer_range", c.initializer_range);
  r.get("rms_norm_eps", c.rms_norm_eps);
  r.get("use_cache", c.use_cache);
  r.get("pad_token_id", c.pad_token_id);
  r.get("bos_token_id", c.bos_token_id);
  r.get("tie_word_embeddings", c.tie_word_embeddings);
  r.get("attention_dropout", c.attention_dropout);
  c.rope = read_rope(j, origin);
  if (c.variant == LlamaVariant::llama) {
    r.get("pretraining_tp", c.pretraining_tp);
    r.get("attention_bias", c.attention_bias);
    r.get("mlp_bias", c.mlp_bias);
  }
  if (c.variant == LlamaVariant::mistral) r.get("sliding_window", c.sliding_window);
  if (c.variant == LlamaVariant::qwen2) {
    r.get("use_sliding_window", c.use_sliding_window);
    r.get("sliding_window", c.sliding_window);
    r.get("max_window_layers", c.max_window_layers);
    if (!c.use_sliding_window) c.sliding_window.reset();
    if (const json* lt = r.find("layer_types")) {
      if (!lt->is_array() || static_cast<int64_t>(lt->size()) != c.num_hidden_layers)
        r.bad("layer_types", "a list with one entry per layer");
      for (const auto& x : *lt) {
        if (!x.is_string() || (x != "full_attention" && x != "sliding_attention"))
          r.bad("layer_types", "a list of \"full_attention\" / \"sliding_attention\"");
        c.layer_types.push_back(x.get<std::string>());
      }
    } else {
      for (int64_t i = 0; i < c.num_hidden_layers; ++i)
        c.layer_types.push_back(c.sliding_window && i >= c.max_window_layers ? "sliding_attention"
                                                                             : "full_attention");
    }
  }
  if (c.sliding_window)
    LMF_CHECK(*c.sliding_window > 0, ValueError, "{}: sliding_window must be positive, got {}",
              origin, *c.sliding_window);
  detail::read_common_into(j, origin, modelled_keys(c.variant), c);
  return c;
}

std::string LlamaConfig::to_json(const std::string& architecture) const {
  json j;
  j["model_type"] = variant_name(variant);
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["hidden_act"] = hidden_act;
  j["max_position_embeddings"] = max_position_embeddings;
  j["initializer_range"] = initializer_range;
  j["rms_norm_eps"] = rms_norm_eps;
  j["use_cache"] = use_cache;
  j["pad_token_id"] = detail::optional_json(pad_token_id);
  j["bos_token_id"] = detail::optional_json(bos_token_id);
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["rope_parameters"] = rope_json(rope);
  j["attention_dropout"] = attention_dropout;
  if (variant != LlamaVariant::qwen2) j["head_dim"] = head_dim;
  if (variant == LlamaVariant::llama) {
    j["pretraining_tp"] = pretraining_tp;
    j["attention_bias"] = attention_bias;
    j["mlp_bias"] = mlp_bias;
  }
  if (variant != LlamaVariant::llama) j["sliding_window"] = detail::optional_json(sliding_window);
  if (variant == LlamaVariant::qwen2) {
    j["use_sliding_window"] = use_sliding_window;
    j["max_window_layers"] = max_window_layers;
    j["layer_types"] = layer_types;
  }
  return detail::finish_config_json_of(std::move(j), *this, architecture);
}

int64_t LlamaConfig::layer_window(int64_t i) const {
  if (!sliding_window) return 0;
  if (variant == LlamaVariant::mistral) return *sliding_window;
  if (variant == LlamaVariant::qwen2 && i < static_cast<int64_t>(layer_types.size()) &&
      layer_types[i] == "sliding_attention")
    return *sliding_window;
  return 0;
}

// ---- rotary embedding ---------------------------------------------------------------------------

LlamaRotaryEmbedding::LlamaRotaryEmbedding(const LlamaConfig& c)
    : cfg_(c), dim_(c.head_dim), max_seq_len_cached_(c.max_position_embeddings) {
  const std::vector<float> f = compute(c.max_position_embeddings);
  original_.inv_freq = Tensor::from_vector(f, {static_cast<int64_t>(f.size())});
  original_.attention_scaling = 1.0;  // every supported type leaves cos/sin unscaled
  current_ = original_;
}

// inv_freq as transformers computes it in f32: 1 / base^(arange(0, dim, 2) / dim), then the
// rope type's rule.
std::vector<float> LlamaRotaryEmbedding::compute(int64_t seq_len) const {
  const RopeParameters& r = cfg_.rope;
  double base = r.rope_theta;
  if (r.rope_type == "dynamic") {
    const double sl = static_cast<double>(std::max<int64_t>(seq_len, cfg_.max_position_embeddings));
    base = base * std::pow(r.factor * sl / static_cast<double>(cfg_.max_position_embeddings) -
                               (r.factor - 1.0),
                           static_cast<double>(dim_) / static_cast<double>(dim_ - 2));
  }
  const int64_t half = dim_ / 2;
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(dim_);
    inv[i] = 1.0f / std::pow(static_cast<float>(base), e);
  }
  if (r.rope_type == "linear")
    for (float& f : inv) f /= static_cast<float>(r.factor);
  if (r.rope_type == "llama3") {
    const float factor = static_cast<float>(r.factor);
    const float lo = static_cast<float>(r.low_freq_factor),
                hi = static_cast<float>(r.high_freq_factor);
    const float old_ctx = static_cast<float>(r.original_max_position_embeddings);
    const float low_wavelen =
        static_cast<float>(r.original_max_position_embeddings / r.low_freq_factor);
    const float high_wavelen =
        static_cast<float>(r.original_max_position_embeddings / r.high_freq_factor);
    for (float& f : inv) {
      const float wavelen = static_cast<float>(2.0 * M_PI) / f;
      float v = wavelen > low_wavelen ? f / factor : f;
      const float smooth = (old_ctx / wavelen - lo) / (hi - lo);
      const float smoothed = (1.0f - smooth) * v / factor + smooth * v;
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      f = medium ? smoothed : v;
    }
  }
  return inv;
}

nn::RopeFrequencies LlamaRotaryEmbedding::frequencies(int64_t max_position) const {
  nn::RopeFrequencies r = dynamic_frequencies(max_position);
  r.interleaved = interleaved_;
  return r;
}

nn::RopeFrequencies LlamaRotaryEmbedding::dynamic_frequencies(int64_t max_position) const {
  if (cfg_.rope.rope_type != "dynamic") return original_;
  // transformers' dynamic_frequency_update, with its state.
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t seq_len = max_position + 1;
  if (seq_len > max_seq_len_cached_) {  // growth
    const std::vector<float> f = compute(seq_len);
    current_.inv_freq = Tensor::from_vector(f, {static_cast<int64_t>(f.size())});
    max_seq_len_cached_ = seq_len;
  }
  if (seq_len < cfg_.max_position_embeddings &&
      max_seq_len_cached_ > cfg_.max_position_embeddings) {  // reset
    current_ = original_;
    max_seq_len_cached_ = cfg_.max_position_embeddings;
  }
  return current_;
}

// ---- decoder layer ------------------------------------------------------------------------------

LlamaDecoderLayer::LlamaDecoderLayer(const LlamaConfig& c, int64_t) {
  nn::AttentionConfig a =
      nn::AttentionConfig::llama(c.hidden_size, c.num_attention_heads, c.num_key_value_heads, 0.0);
  a.head_dim = c.head_dim;
  a.dropout = c.attention_dropout;
  a.qkv_bias = c.variant == LlamaVariant::qwen2 || c.attention_bias;
  a.out_bias = c.variant == LlamaVariant::llama && c.attention_bias;
  self_attn_ = register_module("self_attn", std::make_shared<nn::MultiHeadAttention>(a));
  nn::FeedForwardConfig f = nn::FeedForwardConfig::swiglu(c.hidden_size, c.intermediate_size);
  f.act = parse_activation(c.hidden_act);
  f.bias = c.variant == LlamaVariant::llama && c.mlp_bias;
  mlp_ = register_module("mlp", std::make_shared<nn::FeedForward>(f));
  input_layernorm_ = register_module("input_layernorm",
                                     std::make_shared<nn::RMSNorm>(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm_ = register_module(
      "post_attention_layernorm", std::make_shared<nn::RMSNorm>(c.hidden_size, c.rms_norm_eps));
}

Tensor LlamaDecoderLayer::forward(const Tensor& x, const nn::AttentionInputs& in) const {
  const Tensor a = self_attn_->forward(input_layernorm_->forward(x), in).out;
  // in.q_keep: the attention returned the last positions only; so does the rest of the layer.
  const Tensor xr = a.size(1) < x.size(1) ? x.narrow(1, x.size(1) - a.size(1), a.size(1)) : x;
  // h = x + a and its norm in one pass (ops::add_rms_norm; add then norm where grads flow).
  Tensor h;
  const Tensor n = add_rms_norm(xr, a, post_attention_layernorm_->weight(),
                                post_attention_layernorm_->eps(), &h);
  return h + mlp_->forward(n);
}

// ---- model --------------------------------------------------------------------------------------

LlamaModel::LlamaModel(const LlamaConfig& c) : cfg_(c), rotary_emb_(c) {
  embed_tokens_ = register_module(
      "embed_tokens",
      std::make_shared<nn::Embedding>(c.vocab_size, c.hidden_size, c.pad_token_id.value_or(-1)));
  layers_ = register_module("layers", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    layers_->push_back(std::make_shared<LlamaDecoderLayer>(c, i));
  norm_ = register_module("norm", std::make_shared<nn::RMSNorm>(c.hidden_size, c.rms_norm_eps));
}

namespace {
std::string arch_name(LlamaVariant v, const char* suffix) {
  const char* prefix = v == LlamaVariant::qwen2     ? "Qwen2"
                       : v == LlamaVariant::mistral ? "Mistral"
                                                    : "Llama";
  return std::string(prefix) + suffix;
}
}  // namespace

std::string LlamaModel::architecture() const {
  return arch_name(cfg_.variant, "Model");
}

LoadSpec LlamaModel::load_spec() const {
  LoadSpec s;
  s.base_prefix = "model";
  s.keys_have_prefix = false;
  return s;
}

DecoderSpec LlamaModel::spec() const {
  DecoderSpec s;
  s.vocab_size = cfg_.vocab_size;
  s.num_layers = cfg_.num_hidden_layers;
  s.n_kv_heads = cfg_.num_key_value_heads;
  s.head_dim = cfg_.head_dim;
  // Rotary positions have no hard limit; dynamic/linear scaling exist to go past the trained one.
  s.max_positions = cfg_.rope.rope_type == "default" || cfg_.rope.rope_type == "llama3"
                        ? cfg_.max_position_embeddings
                        : 0;
  s.trained_positions = cfg_.max_position_embeddings;
  s.eos_token_ids = cfg_.eos_token_ids;
  s.bos_token_id = cfg_.bos_token_id.value_or(-1);
  s.pad_token_id = cfg_.pad_token_id.value_or(-1);
  return s;
}

DecoderOutput LlamaModel::forward(const DecoderInputs& in, const DecoderLabels&) const {
  const std::string who = architecture();
  const int64_t past = detail::check_decoder_inputs(who.c_str(), in);
  const int64_t T = in.input_ids.size(1);
  const Tensor pos = in.position_ids.defined()
                         ? in.position_ids
                         : detail::default_position_ids(in.attention_mask, past, T);
  int64_t max_pos = 0;
  for (int64_t p : pos.to_vector<int64_t>()) max_pos = std::max(max_pos, p);
  const nn::RopeFrequencies rope = rotary_emb_.frequencies(max_pos);
  const Tensor key_padding = detail::key_padding_from(in.attention_mask);

  DecoderOutput out;
  const bool prune = in.prune_last_layer && in.cache && in.logits_to_keep > 0 &&
                     in.logits_to_keep < T && !in.output_hidden_states && !grad_enabled();
  Tensor h = embed_tokens_->forward(in.input_ids);
  if (in.output_hidden_states) out.hidden_states.push_back(h);
  for (size_t i = 0; i < layers_->size(); ++i) {
    nn::AttentionInputs ai;
    ai.options = detail::decoder_attention_options(key_padding, past, T,
                                                   cfg_.layer_window(static_cast<int64_t>(i)));
    ai.positions = pos;
    ai.rope = &rope;
    nn::KVCache layer_cache;
    if (in.cache) {
      layer_cache = in.cache->layer(static_cast<int64_t>(i));
      ai.cache = &layer_cache;
      if (prune && i + 1 == layers_->size()) ai.q_keep = in.logits_to_keep;
    }
    h = layers_->at<LlamaDecoderLayer>(i)->forward(h, ai);
    if (in.output_hidden_states) out.hidden_states.push_back(h);
  }
  if (in.cache) in.cache->advance(T);
  out.last_hidden_state = norm_->forward(h);
  // transformers 5.x replaces the last layer's entry by the normed last hidden state.
  if (in.output_hidden_states) out.hidden_states.back() = out.last_hidden_state;
  return out;
}

// ---- heads --------------------------------------------------------------------------------------

namespace {
// The last `keep` positions of h [B, T, H] (all when 0).
Tensor keep_last(const Tensor& h, int64_t keep) {
  return keep > 0 && keep < h.size(1) ? h.narrow(1, h.size(1) - keep, keep) : h;
}
}  // namespace

LlamaForCausalLM::LlamaForCausalLM(const LlamaConfig& c) {
  model_ = register_module("model", std::make_shared<LlamaModel>(c));
  lm_head_ =
      register_module("lm_head", std::make_shared<nn::Linear>(c.hidden_size, c.vocab_size, false));
  tie_weights();
}

void LlamaForCausalLM::tie_weights() {
  if (config().tie_word_embeddings) lm_head_->weight() = model_->embed_tokens().weight();
}

std::string LlamaForCausalLM::architecture() const {
  return arch_name(config().variant, "ForCausalLM");
}

LoadSpec LlamaForCausalLM::load_spec() const {
  LoadSpec s = model_->load_spec();
  s.keys_have_prefix = true;
  if (config().tie_word_embeddings) s.tied = {{"lm_head.weight", "model.embed_tokens.weight"}};
  return s;
}

DecoderOutput LlamaForCausalLM::forward(const DecoderInputs& in,
                                        const DecoderLabels& labels) const {
  DecoderOutput out = model_->forward(in);
  out.logits = lm_head_->forward(keep_last(out.last_hidden_state, in.logits_to_keep));
  if (labels.labels.defined()) {
    LMF_CHECK(in.logits_to_keep == 0, ValueError,
              "{}: labels need the logits of every position (logits_to_keep = 0)", architecture());
    out.loss = detail::causal_lm_loss(out.logits, labels.labels);
  }
  return out;
}

LlamaForSequenceClassification::LlamaForSequenceClassification(const LlamaConfig& c) {
  model_ = register_module("model", std::make_shared<LlamaModel>(c));
  score_ =
      register_module("score", std::make_shared<nn::Linear>(c.hidden_size, c.num_labels, false));
}

std::string LlamaForSequenceClassification::architecture() const {
  return arch_name(config().variant, "ForSequenceClassification");
}

LoadSpec LlamaForSequenceClassification::load_spec() const {
  LoadSpec s = model_->load_spec();
  s.keys_have_prefix = true;
  return s;
}

DecoderOutput LlamaForSequenceClassification::forward(const DecoderInputs& in,
                                                      const DecoderLabels& labels) const {
  DecoderOutput out = model_->forward(in);
  const Tensor logits = score_->forward(out.last_hidden_state);
  if (in.score_every_position) {
    LMF_CHECK(!labels.labels.defined(), ValueError,
              "{}: labels need the pooled logits (score_every_position off)", architecture());
    out.logits = logits;
    return out;
  }
  out.logits = detail::pool_last_token(logits, in.input_ids, config().pad_token_id, architecture());
  if (labels.labels.defined())
    out.loss = detail::sequence_classification_loss(out.logits, labels.labels, config().num_labels,
                                                    config().problem_type);
  return out;
}

void LlamaModel::init_missing(const std::vector<std::string>& keys) {
  detail::init_missing_decoder_weights(*this, keys, cfg_.initializer_range, 0.0,
                                       cfg_.pad_token_id.value_or(-1));
}
void LlamaForCausalLM::init_missing(const std::vector<std::string>& keys) {
  detail::init_missing_decoder_weights(*this, keys, config().initializer_range, 0.0,
                                       config().pad_token_id.value_or(-1));
}
void LlamaForSequenceClassification::init_missing(const std::vector<std::string>& keys) {
  detail::init_missing_decoder_weights(*this, keys, config().initializer_range, 0.0,
                                       config().pad_token_id.value_or(-1));
}

// ---- registration -------------------------------------------------------------------------------

// ---- llama.cpp's rotary row layout (GGUF)
// ---------------------------------------------------------

Tensor llama_permute_rotary_rows(const Tensor& w, int64_t n_head, bool to_hf,
                                 const std::string& name) {
  const Tensor c = w.to(DType::f32).contiguous();
  LMF_CHECK(c.dim() >= 1, ShapeError, "{}: a rotary projection must have rows, got {}", name,
            c.describe());
  const int64_t rows = c.size(0);
  LMF_CHECK(n_head > 0 && rows % (2 * n_head) == 0, ValueError,
            "{}: {} rows cannot be split into {} heads of rotary pairs", name, rows, n_head);
  const int64_t dim = rows / n_head / 2;
  const int64_t row_len = c.numel() / std::max<int64_t>(rows, 1);
  Tensor out = Tensor::empty(c.shape(), DType::f32);
  const float* src = c.data<float>();
  float* dst = out.data<float>();
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < dim; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t gguf_row = h * 2 * dim + i * 2 + j;  // llama.cpp: (n_head, dim, 2)
        const int64_t hf_row = h * 2 * dim + j * dim + i;  // HF: (n_head, 2, dim)
        const int64_t from = to_hf ? gguf_row : hf_row, to = to_hf ? hf_row : gguf_row;
        std::memcpy(dst + to * row_len, src + from * row_len, static_cast<size_t>(row_len) * 4);
      }
  return out;
}

namespace {
// q/k rows kept in llama.cpp's order go back to HF's in what save_pretrained writes.
void rotary_rows_to_hf(const LlamaModel& m, const std::string& prefix, nn::StateDict& t) {
  if (!m.gguf_rotary_layout()) return;
  const LlamaConfig& c = m.config();
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    for (const auto& [proj, heads] :
         {std::pair<std::string, int64_t>{"q_proj", c.num_attention_heads},
          {"k_proj", c.num_key_value_heads}})
      for (const char* what : {"weight", "bias"}) {
        const std::string key =
            prefix + "layers." + std::to_string(i) + ".self_attn." + proj + "." + what;
        if (auto it = t.find(key); it != t.end())
          it->second = llama_permute_rotary_rows(it->second, heads, true, key);
      }
}
}  // namespace

void LlamaModel::to_saved_layout(nn::StateDict& t) const {
  rotary_rows_to_hf(*this, "", t);
}
void LlamaForCausalLM::to_saved_layout(nn::StateDict& t) const {
  rotary_rows_to_hf(*model_, "model.", t);
}
void LlamaForSequenceClassification::to_saved_layout(nn::StateDict& t) const {
  rotary_rows_to_hf(*model_, "model.", t);
}

LlamaModel* llama_base_model(PretrainedModel& m) {
  if (auto* base = dynamic_cast<LlamaModel*>(&m)) return base;
  if (auto* lm = dynamic_cast<LlamaForCausalLM*>(&m)) return &lm->model();
  if (auto* sc = dynamic_cast<LlamaForSequenceClassification*>(&m)) return &sc->model();
  return nullptr;
}

std::unique_ptr<DecoderModel> make_llama_model(const LlamaConfig& c, const std::string& arch) {
  if (arch == arch_name(c.variant, "Model")) return std::make_unique<LlamaModel>(c);
  if (arch == arch_name(c.variant, "ForCausalLM")) return std::make_unique<LlamaForCausalLM>(c);
  if (arch == arch_name(c.variant, "ForSequenceClassification"))
    return std::make_unique<LlamaForSequenceClassification>(c);
  fail<ValueError>(
      "architecture '{}' is not one lmforge implements for model_type '{}'; supported: "
      "{}, {}, {}",
      arch, variant_name(c.variant), arch_name(c.variant, "Model"),
      arch_name(c.variant, "ForCausalLM"), arch_name(c.variant, "ForSequenceClassification"));
}

void register_llama_family() {
  for (LlamaVariant v : {LlamaVariant::llama, LlamaVariant::qwen2, LlamaVariant::mistral}) {
    FamilyRegistration reg;
    reg.model_types = {variant_name(v)};
    for (const char* s : {"Model", "ForCausalLM", "ForSequenceClassification"})
      reg.architectures.push_back(arch_name(v, s));
    reg.default_architecture = arch_name(v, "Model");
    reg.create = [](const std::string& text, const std::string& arch,
                    const std::string& origin) -> std::unique_ptr<PretrainedModel> {
      const LlamaConfig c = LlamaConfig::from_json(text, origin);
      // No override: the checkpoint's class, else the base model.
      const std::string a = !arch.empty()              ? arch
                            : !c.architectures.empty() ? c.architectures[0]
                                                       : arch_name(c.variant, "Model");
      return make_llama_model(c, a);
    };
    register_family(std::move(reg));
  }
}

}  // namespace lmf::models
