// GenerationConfig: reading generation_config.json / config.json as transformers does, and the
// validation that names the offending flag.
#include <cmath>
#include <fstream>

#include "lmforge/core/error.h"
#include "lmforge/io/json.h"
#include "lmforge/tasks/generate.h"

namespace lmf::tasks {

namespace {

using nlohmann::json;

// The CLI flag for a config key: max_new_tokens -> --max-new-tokens.
std::string flag(const std::string& key) {
  std::string f = "--" + key;
  for (char& c : f)
    if (c == '_') c = '-';
  return f;
}

int64_t get_int(const json& v, const std::string& key) {
  if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>())
    return static_cast<int64_t>(v.get<double>());
  fail<ValueError>("generation config: '{}' must be an integer, got {}", key, v.dump());
}

double get_num(const json& v, const std::string& key) {
  if (v.is_number()) return v.get<double>();
  fail<ValueError>("generation config: '{}' must be a number, got {}", key, v.dump());
}

bool get_bool(const json& v, const std::string& key) {
  if (v.is_boolean()) return v.get<bool>();
  fail<ValueError>("generation config: '{}' must be true or false, got {}", key, v.dump());
}

std::vector<int64_t> get_ids(const json& v, const std::string& key) {
  std::vector<int64_t> out;
  if (v.is_array()) {
    for (const auto& e : v) out.push_back(get_int(e, key));
  } else {
    out.push_back(get_int(v, key));
  }
  return out;
}

// The generation keys transformers 5.25 copies from config.json in from_model_config (checked
// with LlamaConfig, GPT2Config, Qwen2Config, MistralConfig, MarianConfig, BartConfig). The 4.x
// sampling/beam attributes (max_length, num_beams, temperature, ...) are dropped from model
// configs, except the ones a config class still declares: kDeclaredKeys.
const char* const kGenerationKeys[] = {"max_new_tokens", "min_new_tokens",        "min_p",
                                       "eos_token_id",   "pad_token_id",          "bos_token_id",
                                       "stop_strings",   "decoder_start_token_id"};
// Legacy keys a config class still declares, by model_type (kept by from_model_config).
const std::pair<const char*, const char*> kDeclaredKeys[] = {{"marian", "forced_eos_token_id"},
                                                             {"bart", "forced_eos_token_id"}};

}  // namespace

GenerationConfig GenerationConfig::from_json(const json& j) {
  return from_json(j, GenerationConfig{});
}

GenerationConfig GenerationConfig::from_json(const json& j, GenerationConfig c) {
  LMF_CHECK(j.is_object(), ValueError, "generation config: expected a JSON object, got {}",
            j.type_name());
  for (const auto& [key, v] : j.items()) {
    if (v.is_null()) continue;  // None keeps the default, as transformers
    if (key == "max_length")
      c.max_length = get_int(v, key);
    else if (key == "max_new_tokens")
      c.max_new_tokens = get_int(v, key);
    else if (key == "min_length")
      c.min_length = get_int(v, key);
    else if (key == "min_new_tokens")
      c.min_new_tokens = get_int(v, key);
    else if (key == "do_sample")
      c.do_sample = get_bool(v, key);
    else if (key == "temperature")
      c.temperature = get_num(v, key);
    else if (key == "top_k")
      c.top_k = get_int(v, key);
    else if (key == "top_p")
      c.top_p = get_num(v, key);
    else if (key == "min_p")
      c.min_p = get_num(v, key);
    else if (key == "repetition_penalty")
      c.repetition_penalty = get_num(v, key);
    else if (key == "no_repeat_ngram_size")
      c.no_repeat_ngram_size = get_int(v, key);
    else if (key == "num_beams")
      c.num_beams = get_int(v, key);
    else if (key == "length_penalty")
      c.length_penalty = get_num(v, key);
    else if (key == "num_return_sequences")
      c.num_return_sequences = get_int(v, key);
    else if (key == "eos_token_id")
      c.eos_token_id = get_ids(v, key);
    else if (key == "pad_token_id")
      c.pad_token_id = get_int(v, key);
    else if (key == "bos_token_id")
      c.bos_token_id = get_int(v, key);
    else if (key == "renormalize_logits")
      c.renormalize_logits = get_bool(v, key);
    else if (key == "decoder_start_token_id")
      c.decoder_start_token_id = get_int(v, key);
    else if (key == "forced_bos_token_id")
      c.forced_bos_token_id = get_int(v, key);
    else if (key == "forced_eos_token_id")
      c.forced_eos_token_id = get_ids(v, key);
    else if (key == "bad_words_ids") {
      LMF_CHECK(v.is_array(), ValueError,
                "generation config: 'bad_words_ids' must be a list of lists of ids, got {}",
                v.dump());
      c.bad_words_ids.clear();
      for (const auto& w : v) {
        LMF_CHECK(w.is_array() && !w.empty(), ValueError,
                  "generation config: 'bad_words_ids' must be a list of non-empty lists, got {}",
                  v.dump());
        c.bad_words_ids.push_back(get_ids(w, key));
      }
    } else if (key == "seed")
      c.seed = static_cast<uint64_t>(get_int(v, key));
    else if (key == "early_stopping") {
      if (v.is_boolean())
        c.early_stopping = v.get<bool>() ? EarlyStopping::True : EarlyStopping::False;
      else if (v.is_string() && v.get<std::string>() == "never")
        c.early_stopping = EarlyStopping::Never;
      else
        fail<ValueError>(
            "generation config: 'early_stopping' must be true, false or \"never\", got {}",
            v.dump());
    } else if (key == "stop_strings") {
      c.stop_strings.clear();
      if (v.is_string())
        c.stop_strings.push_back(v.get<std::string>());
      else if (v.is_array()) {
        for (const auto& s : v) {
          LMF_CHECK(s.is_string(), ValueError,
                    "generation config: 'stop_strings' must hold strings, got {}", s.dump());
          c.stop_strings.push_back(s.get<std::string>());
        }
      } else {
        fail<ValueError>(
            "generation config: 'stop_strings' must be a string or a list of strings, got {}",
            v.dump());
      }
    }
  }
  return c;
}

GenerationConfig GenerationConfig::from_pretrained(const std::filesystem::path& dir) {
  const auto gen = dir / "generation_config.json";
  if (std::filesystem::exists(gen)) return from_json(io::read_json_file(gen.string()));
  const auto cfg_path = dir / "config.json";
  if (!std::filesystem::exists(cfg_path)) return GenerationConfig{};
  const json cfg = io::read_json_file(cfg_path.string());
  LMF_CHECK(cfg.is_object(), ValueError, "{}: expected a JSON object", cfg_path.string());
  // from_model_config: the outer config's generation keys (None values dropped) ...
  json picked = json::object();
  const std::string model_type = cfg.contains("model_type") && cfg["model_type"].is_string()
                                     ? cfg["model_type"].get<std::string>()
                                     : std::string();
  for (const char* k : kGenerationKeys)
    if (cfg.contains(k) && !cfg[k].is_null()) picked[k] = cfg[k];
  for (const auto& [type, k] : kDeclaredKeys)
    if (model_type == type && cfg.contains(k) && !cfg[k].is_null()) picked[k] = cfg[k];
  GenerationConfig c = from_json(picked);
  // ... then a nested decoder config's keys where the outer left a default.
  for (const char* sub : {"decoder", "generator", "text_config"}) {
    if (!cfg.contains(sub) || !cfg[sub].is_object()) continue;
    const GenerationConfig def;
    const json& t = cfg[sub];
    json extra = json::object();
    const json cur = c.to_json(), defj = def.to_json();
    for (const char* k : kGenerationKeys)
      if (t.contains(k) && !t[k].is_null() && cur.value(k, json()) == defj.value(k, json()))
        extra[k] = t[k];
    c = from_json(extra, c);
    break;
  }
  return c;
}

json GenerationConfig::to_json() const {
  json j;
  j["max_length"] = max_length ? json(*max_length) : json();
  j["max_new_tokens"] = max_new_tokens ? json(*max_new_tokens) : json();
  j["min_length"] = min_length;
  j["min_new_tokens"] = min_new_tokens ? json(*min_new_tokens) : json();
  j["do_sample"] = do_sample;
  j["temperature"] = temperature;
  j["top_k"] = top_k;
  j["top_p"] = top_p;
  j["min_p"] = min_p ? json(*min_p) : json();
  j["repetition_penalty"] = repetition_penalty;
  j["no_repeat_ngram_size"] = no_repeat_ngram_size;
  j["num_beams"] = num_beams;
  j["length_penalty"] = length_penalty;
  j["early_stopping"] = early_stopping == EarlyStopping::Never
                            ? json("never")
                            : json(early_stopping == EarlyStopping::True);
  j["num_return_sequences"] = num_return_sequences;
  if (eos_token_id.empty())
    j["eos_token_id"] = json();
  else if (eos_token_id.size() == 1)
    j["eos_token_id"] = eos_token_id[0];
  else
    j["eos_token_id"] = eos_token_id;
  j["pad_token_id"] = pad_token_id ? json(*pad_token_id) : json();
  j["bos_token_id"] = bos_token_id ? json(*bos_token_id) : json();
  j["seed"] = seed ? json(*seed) : json();
  j["decoder_start_token_id"] = decoder_start_token_id ? json(*decoder_start_token_id) : json();
  j["forced_bos_token_id"] = forced_bos_token_id ? json(*forced_bos_token_id) : json();
  j["forced_eos_token_id"] = forced_eos_token_id.empty() ? json() : json(forced_eos_token_id);
  j["bad_words_ids"] = bad_words_ids.empty() ? json() : json(bad_words_ids);
  j["renormalize_logits"] = renormalize_logits;
  j["stop_strings"] = stop_strings.empty() ? json() : json(stop_strings);
  return j;
}

void GenerationConfig::validate() const {
  auto bad = [](const std::string& key, const std::string& what, const std::string& got) {
    fail<ValueError>("invalid {} ({}): {}, got {}", key, flag(key), what, got);
  };
  if (max_new_tokens && *max_new_tokens < 1)
    bad("max_new_tokens", "must be at least 1", std::to_string(*max_new_tokens));
  if (max_length && *max_length < 1)
    bad("max_length", "must be at least 1", std::to_string(*max_length));
  if (min_length < 0) bad("min_length", "must be >= 0", std::to_string(min_length));
  if (min_new_tokens && *min_new_tokens < 0)
    bad("min_new_tokens", "must be >= 0", std::to_string(*min_new_tokens));
  if (!(temperature >= 0.0) || !std::isfinite(temperature))
    bad("temperature", "must be a finite number >= 0 (0 means greedy)",
        fmt::format("{}", temperature));
  if (top_k < 0) bad("top_k", "must be >= 0 (0 turns it off)", std::to_string(top_k));
  if (!(top_p > 0.0 && top_p <= 1.0)) bad("top_p", "must be in (0, 1]", fmt::format("{}", top_p));
  if (min_p && !(*min_p >= 0.0 && *min_p <= 1.0))
    bad("min_p", "must be in [0, 1]", fmt::format("{}", *min_p));
  if (!(repetition_penalty > 0.0) || !std::isfinite(repetition_penalty))
    bad("repetition_penalty", "must be a finite number > 0 (1 turns it off)",
        fmt::format("{}", repetition_penalty));
  if (no_repeat_ngram_size < 0)
    bad("no_repeat_ngram_size", "must be >= 0 (0 turns it off)",
        std::to_string(no_repeat_ngram_size));
  if (num_beams < 1) bad("num_beams", "must be at least 1", std::to_string(num_beams));
  if (!std::isfinite(length_penalty))
    bad("length_penalty", "must be finite", fmt::format("{}", length_penalty));
  if (num_return_sequences < 1)
    bad("num_return_sequences", "must be at least 1", std::to_string(num_return_sequences));
  if (num_beams > 1 && num_return_sequences > num_beams)
    bad("num_return_sequences",
        fmt::format("must be <= num_beams ({}) with beam search", num_beams),
        std::to_string(num_return_sequences));
  if (num_beams == 1 && num_return_sequences > 1 && !sampling())
    bad("num_return_sequences",
        "greater than 1 needs sampling (do_sample with temperature > 0) or beam search",
        std::to_string(num_return_sequences));
  for (int64_t e : eos_token_id)
    if (e < 0) bad("eos_token_id", "must be >= 0", std::to_string(e));
  if (pad_token_id && *pad_token_id < 0)
    bad("pad_token_id", "must be >= 0", std::to_string(*pad_token_id));
  for (const auto& w : bad_words_ids)
    for (int64_t t : w)
      if (t < 0) bad("bad_words_ids", "must hold ids >= 0", std::to_string(t));
  if (forced_bos_token_id && *forced_bos_token_id < 0)
    bad("forced_bos_token_id", "must be >= 0", std::to_string(*forced_bos_token_id));
  for (int64_t e : forced_eos_token_id)
    if (e < 0) bad("forced_eos_token_id", "must be >= 0", std::to_string(e));
  for (const auto& s : stop_strings)
    if (s.empty()) bad("stop_strings", "must not hold an empty string", "\"\"");
}

}  // namespace lmf::tasks
