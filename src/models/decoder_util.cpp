// Shared decoder pieces: config.json rules, position ids, masks, losses (see decoder_util.h).
#include "models/decoder_util.h"

#include <algorithm>
#include <set>

#include "lmforge/nn/init.h"

namespace lmf::models::detail {

using nlohmann::json;

const json* ConfigReader::find(const char* key) const {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}
void ConfigReader::bad(const char* key, const char* want) const {
  fail<ValueError>("{}: '{}' must be {}, got {}", origin, key, want, j.at(key).dump());
}
void ConfigReader::get(const char* key, int64_t& v) const {
  if (const json* x = find(key)) {
    if (!x->is_number_integer()) bad(key, "an integer");
    v = x->get<int64_t>();
  }
}
void ConfigReader::get_activation(const char* key, std::string& v) const {
  get(key, v);
  try {
    parse_activation(v);
  } catch (const ValueError& e) {
    fail<ValueError>("{}: '{}': {}", origin, key, e.what());
  }
}
void ConfigReader::get(const char* key, double& v) const {
  if (const json* x = find(key)) {
    if (!x->is_number()) bad(key, "a number");
    v = x->get<double>();
  }
}
void ConfigReader::get(const char* key, bool& v) const {
  if (const json* x = find(key)) {
    if (!x->is_boolean()) bad(key, "true or false");
    v = x->get<bool>();
  }
}
void ConfigReader::get(const char* key, std::string& v) const {
  if (const json* x = find(key)) {
    if (!x->is_string()) bad(key, "a string");
    v = x->get<std::string>();
  }
}
void ConfigReader::get(const char* key, std::optional<int64_t>& v) const {
  auto it = j.find(key);
  if (it == j.end()) return;
  if (it->is_null()) {
    v.reset();
    return;
  }
  if (!it->is_number_integer()) bad(key, "an integer or null");
  v = it->get<int64_t>();
}

void read_common(const json& j, const std::string& origin, const std::vector<std::string>& modelled,
                 CommonConfigFields& c) {
  ConfigReader r{j, origin};
  if (const json* a = r.find("architectures")) {
    if (!a->is_array()) r.bad("architectures", "a list of class names");
    c.architectures.clear();
    for (const auto& x : *a) {
      if (!x.is_string()) r.bad("architectures", "a list of class names");
      c.architectures.push_back(x.get<std::string>());
    }
  }
  if (auto it = j.find("eos_token_id"); it != j.end()) {
    c.eos_token_ids.clear();
    c.eos_is_list = false;
    c.eos_set = !it->is_null();
    if (it->is_array()) {
      c.eos_is_list = true;
      for (const auto& x : *it) {
        if (!x.is_number_integer()) r.bad("eos_token_id", "an integer or a list of integers");
        c.eos_token_ids.push_back(x.get<int64_t>());
      }
    } else if (it->is_number_integer()) {
      c.eos_token_ids.push_back(it->get<int64_t>());
    } else if (!it->is_null()) {
      r.bad("eos_token_id", "an integer or a list of integers");
    }
  }
  if (const json* m = r.find("id2label")) {
    if (!m->is_object()) r.bad("id2label", "an object");
    c.id2label.clear();
    for (const auto& [k, v] : m->items()) {
      if (!v.is_string()) r.bad("id2label", "an object of strings");
      try {
        c.id2label[std::stoll(k)] = v.get<std::string>();
      } catch (const std::exception&) {
        r.bad("id2label", "keyed by integers");
      }
    }
    c.num_labels = static_cast<int64_t>(c.id2label.size());
  }
  if (const json* m = r.find("label2id")) {
    if (!m->is_object()) r.bad("label2id", "an object");
    c.label2id.clear();
    for (const auto& [k, v] : m->items()) {
      if (!v.is_number_integer()) r.bad("label2id", "an object of integers");
      c.label2id[k] = v.get<int64_t>();
    }
  }
  if (c.id2label.empty()) r.get("num_labels", c.num_labels);
  LMF_CHECK(c.num_labels >= 1, ValueError, "{}: num_labels must be positive, got {}", origin,
            c.num_labels);
  r.get("problem_type", c.problem_type);
  static const std::set<std::string> kHandled = {
      "architectures", "eos_token_id", "id2label",      "label2id",
      "num_labels",    "problem_type", "_name_or_path", "transformers_version",
      "dtype",         "torch_dtype"};
  static const json kBaseDefaults = {{"chunk_size_feed_forward", 0},
                                     {"is_encoder_decoder", false},
                                     {"output_attentions", false},
                                     {"output_hidden_states", false},
                                     {"return_dict", true}};
  c.extra.clear();
  for (const auto& [k, v] : j.items()) {
    if (kHandled.count(k) || std::find(modelled.begin(), modelled.end(), k) != modelled.end())
      continue;
    if (kBaseDefaults.contains(k) && kBaseDefaults.at(k) == v) continue;
    c.extra[k] = v.dump();
  }
}

json parse_config_object(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail<ValueError>("{}: not valid JSON: {}", origin, e.what());
  }
  LMF_CHECK(j.is_object(), ValueError, "{}: config.json must be an object", origin);
  return j;
}

// "forced_eos_token_id": an integer, a list of integers or null.
void read_id_list(const ConfigReader& r, const char* key, std::vector<int64_t>& ids,
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

json optional_json(const std::optional<int64_t>& v) {
  return v ? json(*v) : json(nullptr);
}

std::string finish_config_json(json j, const CommonConfigFields& c,
                               const std::string& architecture) {
  j["architectures"] = std::vector<std::string>{architecture};
  j["transformers_version"] = kDecoderTransformersVersion;
  j["dtype"] = "float32";
  if (!c.eos_set)
    j["eos_token_id"] = nullptr;
  else if (c.eos_is_list)
    j["eos_token_id"] = c.eos_token_ids;
  else
    j["eos_token_id"] = c.eos_token_ids.at(0);
  // Labels: HF leaves out its default {0: LABEL_0, 1: LABEL_1} and the matching label2id.
  std::map<int64_t, std::string> id2 = c.id2label;
  if (id2.empty())
    for (int64_t i = 0; i < c.num_labels; ++i) id2[i] = "LABEL_" + std::to_string(i);
  std::map<std::string, int64_t> l2i = c.label2id;
  if (l2i.empty())
    for (const auto& [id, name] : id2) l2i[name] = id;
  const std::map<int64_t, std::string> default_id2 = {{0, "LABEL_0"}, {1, "LABEL_1"}};
  const std::map<std::string, int64_t> default_l2i = {{"LABEL_0", 0}, {"LABEL_1", 1}};
  if (id2 != default_id2) {
    json m = json::object();
    for (const auto& [id, name] : id2) m[std::to_string(id)] = name;
    j["id2label"] = m;
  }
  if (l2i != default_l2i) j["label2id"] = l2i;
  if (!c.problem_type.empty()) j["problem_type"] = c.problem_type;
  for (const auto& [k, raw] : c.extra)
    if (!j.contains(k)) j[k] = json::parse(raw);
  // Python's json.dumps(indent=2, sort_keys=True, ensure_ascii=True) + "\n".
  return j.dump(2, ' ', true) + "\n";
}

Tensor key_padding_from(const Tensor& attention_mask) {
  if (!attention_mask.defined()) return Tensor();
  const Tensor m = attention_mask.to(DType::boolean).contiguous();
  const bool* p = m.data<bool>();
  if (std::all_of(p, p + m.numel(), [](bool b) { return b; })) return Tensor();
  return m;
}

Tensor default_position_ids(const Tensor& attention_mask, int64_t past, int64_t T) {
  if (!attention_mask.defined()) {
    std::vector<int64_t> pos(T);
    for (int64_t t = 0; t < T; ++t) pos[t] = past + t;
    return Tensor::from_vector(pos, {T});
  }
  const Tensor m = attention_mask.to(DType::i64).contiguous();
  const int64_t B = m.size(0), L = m.size(1);
  const int64_t* mp = m.data<int64_t>();
  std::vector<int64_t> pos(B * T);
  for (int64_t b = 0; b < B; ++b) {
    int64_t run = 0;
    for (int64_t j = 0; j < L; ++j) {
      run += mp[b * L + j] != 0;
      if (j >= L - T) pos[b * T + (j - (L - T))] = mp[b * L + j] != 0 ? run - 1 : 1;
    }
  }
  return Tensor::from_vector(pos, {B, T});
}

int64_t check_decoder_inputs(const char* who, const DecoderInputs& in) {
  LMF_CHECK(in.input_ids.defined() && in.input_ids.dim() == 2 && in.input_ids.size(1) > 0 &&
                !is_floating(in.input_ids.dtype()),
            ShapeError, "{}: input_ids must be integer [B, T] with T > 0, got {}", who,
            in.input_ids.defined() ? in.input_ids.describe() : "undefined");
  const int64_t B = in.input_ids.size(0), T = in.input_ids.size(1);
  const int64_t past = in.cache ? in.cache->length() : 0;
  if (in.cache)
    LMF_CHECK(in.cache->batch() == B, ShapeError,
              "{}: the KV cache holds {} rows but input_ids has {} (reorder or remake the cache)",
              who, in.cache->batch(), B);
  if (in.attention_mask.defined())
    LMF_CHECK(in.attention_mask.dim() == 2 && in.attention_mask.size(0) == B &&
                  in.attention_mask.size(1) == past + T,
              ShapeError,
              "{}: attention_mask must be [B, past + T] = [{}, {}] (cached and new positions), "
              "got {}",
              who, B, past + T, in.attention_mask.describe());
  if (in.position_ids.defined())
    LMF_CHECK((in.position_ids.dim() == 2 && in.position_ids.size(0) == B &&
               in.position_ids.size(1) == T) ||
                  (in.position_ids.dim() == 1 && in.position_ids.size(0) == T),
              ShapeError, "{}: position_ids must be [B, T] = [{}, {}] or [T], got {}", who, B, T,
              in.position_ids.describe());
  LMF_CHECK(in.logits_to_keep >= 0, ValueError, "{}: logits_to_keep must be >= 0, got {}", who,
            in.logits_to_keep);
  return past;
}

AttentionOptions decoder_attention_options(const Tensor& key_padding, int64_t past, int64_t T,
                                           int64_t sliding_window) {
  AttentionOptions o;
  o.causal = true;
  o.key_padding_mask = key_padding;
  const int64_t Tk = past + T;
  if (sliding_window > 0 && Tk > sliding_window) {
    // transformers' sliding_window_overlay: key j is kept for query i when j > i - window.
    Tensor allow = Tensor::empty({1, 1, T, Tk}, DType::boolean);
    bool* a = allow.data<bool>();
    for (int64_t t = 0; t < T; ++t) {
      const int64_t i = past + t;
      for (int64_t j = 0; j < Tk; ++j) a[t * Tk + j] = j <= i && j > i - sliding_window;
    }
    o.attn_mask = allow;
  }
  return o;
}

void init_missing_decoder_weights(nn::Module& m, const std::vector<std::string>& keys,
                                  double initializer_range, double c_proj_std, int64_t pad_row) {
  for (const std::string& key : keys) {
    Tensor& t = m.parameter(key);
    const auto ends_with = [&](std::string_view suffix) {
      return key.size() >= suffix.size() &&
             key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends_with("bias"))
      nn::init::zeros_(t);
    else if (key.find("norm") != std::string::npos || key.find("ln_") != std::string::npos)
      nn::init::ones_(t);
    else if (c_proj_std > 0 && ends_with("c_proj.weight"))
      nn::init::normal_(t, 0.0, c_proj_std);
    else
      nn::init::normal_(t, 0.0, initializer_range);
    if (pad_row >= 0 && ends_with("embed_tokens.weight") && t.dim() == 2 && pad_row < t.size(0) &&
        !nn::init::random_init_skipped())
      t.narrow(0, pad_row, 1).fill_(0.0);
  }
}

Tensor causal_lm_loss(const Tensor& logits, const Tensor& labels) {
  const int64_t B = logits.size(0), T = logits.size(1), V = logits.size(2);
  LMF_CHECK(labels.defined() && labels.dim() == 2 && labels.size(0) == B && labels.size(1) == T &&
                !is_floating(labels.dtype()),
            ShapeError, "causal LM loss: labels must be integer [B, T] = [{}, {}], got {}", B, T,
            labels.defined() ? labels.describe() : "undefined");
  // Position t predicts labels[t + 1]; the last position's target is -100.
  std::vector<int64_t> l = labels.to_vector<int64_t>(), shifted(B * T, -100);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t) shifted[b * T + t] = l[b * T + t + 1];
  return cross_entropy(logits.reshape({B * T, V}), Tensor::from_vector(shifted, {B * T}), -100);
}

Tensor pool_last_token(const Tensor& logits, const Tensor& input_ids,
                       std::optional<int64_t> pad_token_id, const std::string& who) {
  const int64_t B = logits.size(0), T = logits.size(1);
  LMF_CHECK(pad_token_id.has_value() || B == 1, ValueError,
            "{}: cannot handle batch sizes > 1 if no padding token is defined (set pad_token_id "
            "in config.json)",
            who);
  std::vector<int64_t> last(B, T - 1);
  if (pad_token_id) {
    const std::vector<int64_t> ids = input_ids.to_vector<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      int64_t idx = 0;  // argmax of arange * non_pad: the rightmost non-pad token, else 0
      for (int64_t t = 0; t < T; ++t)
        if (ids[b * T + t] != *pad_token_id) idx = t;
      last[b] = idx;
    }
  }
  std::vector<Tensor> rows;
  for (int64_t b = 0; b < B; ++b) rows.push_back(logits.select(0, b).select(0, last[b]));
  return stack(rows, 0);
}

Tensor sequence_classification_loss(const Tensor& logits, const Tensor& labels, int64_t num_labels,
                                    const std::string& problem_type) {
  std::string pt = problem_type;
  if (pt.empty())
    pt = num_labels == 1                ? "regression"
         : !is_floating(labels.dtype()) ? "single_label_classification"
                                        : "multi_label_classification";
  if (pt == "regression") {
    const Tensor lf = labels.to(DType::f32);
    return num_labels == 1 ? mse_loss(logits.reshape({-1}), lf.reshape({-1}))
                           : mse_loss(logits, lf);
  }
  if (pt == "single_label_classification")
    return cross_entropy(logits.reshape({-1, num_labels}), labels.reshape({-1}).to(DType::i64));
  LMF_CHECK(pt == "multi_label_classification", ValueError,
            "unknown problem_type '{}' (regression, single_label_classification, "
            "multi_label_classification)",
            pt);
  return binary_cross_entropy_with_logits(logits, labels.to(DType::f32));
}

}  // namespace lmf::models::detail
