// Loading: tokenizer.json (HF serialization) and legacy BERT folders (vocab.txt +
// tokenizer_config.json + special_tokens_map.json); other legacy formats go to the hooks.
#include <fstream>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/tokenizers/wordpiece.h"
#include "tokenizers/factory.h"

namespace lmf::tok {

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  LMF_CHECK(f.good(), IoError, "cannot read '{}'", p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json parse(std::string_view text, std::string_view what) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail<ValueError>("{} is not valid JSON: {}", what, e.what());
  }
}

json read_json_or_empty(const std::filesystem::path& p) {
  if (!std::filesystem::exists(p)) return json::object();
  json j = parse(read_file(p), p.string());
  return j.is_object() ? j : json::object();
}

size_t get_uint(const json& j, std::string_view key, size_t dflt, std::string_view where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  LMF_CHECK(it->is_number_unsigned(), ValueError,
            "tokenizer.json: {}.{} must be an unsigned integer, got {}", where, key,
            it->type_name());
  return it->get<size_t>();
}

Direction direction_from(const json& j, std::string_view where) {
  auto it = j.find("direction");
  if (it == j.end() || it->is_null()) return Direction::Right;
  LMF_CHECK(it->is_string(), ValueError, "tokenizer.json: {}.direction must be a string", where);
  const auto s = it->get<std::string>();
  if (s == "Right" || s == "right") return Direction::Right;
  if (s == "Left" || s == "left") return Direction::Left;
  fail<ValueError>("tokenizer.json: {}.direction must be Left or Right, got '{}'", where, s);
}

std::optional<TruncationParams> truncation_from_json(const json& j) {
  if (j.is_null()) return std::nullopt;
  LMF_CHECK(j.is_object(), ValueError, "tokenizer.json: truncation must be an object or null");
  TruncationParams p;
  p.max_length = get_uint(j, "max_length", 512, "truncation");
  p.stride = get_uint(j, "stride", 0, "truncation");
  p.direction = direction_from(j, "truncation");
  if (j.contains("strategy")) {
    const std::string s = get_string(j, "strategy", "truncation");
    if (s == "LongestFirst")
      p.strategy = TruncationStrategy::LongestFirst;
    else if (s == "OnlyFirst")
      p.strategy = TruncationStrategy::OnlyFirst;
    else if (s == "OnlySecond")
      p.strategy = TruncationStrategy::OnlySecond;
    else
      fail<ValueError>(
          "tokenizer.json: truncation.strategy '{}' is not LongestFirst, OnlyFirst "
          "or OnlySecond",
          s);
  }
  return p;
}

std::optional<PaddingParams> padding_from_json(const json& j) {
  if (j.is_null()) return std::nullopt;
  LMF_CHECK(j.is_object(), ValueError, "tokenizer.json: padding must be an object or null");
  PaddingParams p;
  if (j.contains("strategy")) {
    const json& s = j["strategy"];
    if (s.is_object() && s.contains("Fixed")) {
      LMF_CHECK(s["Fixed"].is_number_unsigned(), ValueError,
                "tokenizer.json: padding.strategy.Fixed must be an unsigned integer");
      p.fixed_length = s["Fixed"].get<size_t>();
    } else {
      LMF_CHECK(s == "BatchLongest", ValueError,
                "tokenizer.json: padding.strategy must be \"BatchLongest\" or {{\"Fixed\": n}}");
    }
  }
  p.direction = direction_from(j, "padding");
  if (j.contains("pad_to_multiple_of") && !j["pad_to_multiple_of"].is_null())
    p.pad_to_multiple_of = get_uint(j, "pad_to_multiple_of", 0, "padding");
  p.pad_id = static_cast<uint32_t>(get_uint(j, "pad_id", 0, "padding"));
  p.pad_type_id = static_cast<uint32_t>(get_uint(j, "pad_type_id", 0, "padding"));
  if (j.contains("pad_token")) p.pad_token = get_string(j, "pad_token", "padding");
  return p;
}

std::unique_ptr<Model> wordpiece_from_json(const json& j) {
  const json& vocab = get_key(j, "vocab", "model");
  LMF_CHECK(vocab.is_object(), ValueError,
            "tokenizer.json: model.vocab of a WordPiece model must be an object token -> id");
  std::vector<std::pair<std::string, uint32_t>> v;
  v.reserve(vocab.size());
  for (const auto& [tok, id] : vocab.items()) {
    LMF_CHECK(id.is_number_unsigned() && id.get<uint64_t>() <= UINT32_MAX, ValueError,
              "tokenizer.json: model.vocab['{}'] must be an unsigned 32-bit id", tok);
    v.emplace_back(tok, id.get<uint32_t>());
  }
  std::string unk = "[UNK]", prefix = "##";
  if (j.contains("unk_token")) unk = get_string(j, "unk_token", "model");
  if (j.contains("continuing_subword_prefix"))
    prefix = get_string(j, "continuing_subword_prefix", "model");
  return std::make_unique<WordPiece>(v, unk, prefix,
                                     get_uint(j, "max_input_chars_per_word", 100, "model"));
}

AddedToken added_token_from_json(const json& t) {
  LMF_CHECK(t.is_object(), ValueError, "tokenizer.json: added_tokens items must be objects");
  AddedToken a;
  a.content = get_string(t, "content", "added_tokens[]");
  a.single_word = get_bool(t, "single_word", false);
  a.lstrip = get_bool(t, "lstrip", false);
  a.rstrip = get_bool(t, "rstrip", false);
  a.special = get_bool(t, "special", false);
  a.normalized = get_bool(t, "normalized", !a.special);
  if (t.contains("id")) {
    LMF_CHECK(t["id"].is_number_unsigned() && t["id"].get<uint64_t>() <= UINT32_MAX, ValueError,
              "tokenizer.json: added token '{}' has a bad id", a.content);
    a.id = t["id"].get<uint32_t>();
  }
  return a;
}

}  // namespace

std::unique_ptr<Model> model_from_json(const json& j) {
  LMF_CHECK(j.is_object(), ValueError, "tokenizer.json: model must be an object");
  std::string type;
  if (j.contains("type")) {
    type = get_string(j, "type", "model");
  } else if (j.contains("merges")) {
    type = "BPE";
  } else if (j.contains("vocab") && j["vocab"].is_array()) {
    type = "Unigram";
  } else {
    type = "WordPiece";
  }
  if (type == "WordPiece") return wordpiece_from_json(j);
  if (auto m = make_model_ext(type, j)) return m;
  fail<ValueError>("tokenizer.json: unsupported model type '{}'", type);
}

Tokenizer Tokenizer::from_json(std::string_view text) {
  const json j = parse(text, "tokenizer.json");
  LMF_CHECK(j.is_object(), ValueError, "tokenizer.json must be a JSON object");
  Tokenizer t;
  t.set_model(model_from_json(get_key(j, "model", "tokenizer.json")));
  auto opt = [&](const char* k) -> const json& {
    static const json null_json;
    auto it = j.find(k);
    return it == j.end() ? null_json : *it;
  };
  t.set_normalizer(normalizer_from_json(opt("normalizer")));
  t.set_pre_tokenizer(pre_tokenizer_from_json(opt("pre_tokenizer")));
  t.set_post_processor(post_processor_from_json(opt("post_processor")));
  t.set_decoder(decoder_from_json(opt("decoder")));
  t.set_truncation(truncation_from_json(opt("truncation")));
  t.set_padding(padding_from_json(opt("padding")));
  const json& added = opt("added_tokens");
  if (!added.is_null()) {
    LMF_CHECK(added.is_array(), ValueError, "tokenizer.json: added_tokens must be a list");
    for (const auto& a : added) {
      AddedToken tok = added_token_from_json(a);
      if (tok.special)
        t.add_special_tokens({tok});
      else
        t.add_tokens({tok});
    }
  }
  return t;
}

Tokenizer Tokenizer::from_file(const std::filesystem::path& path) {
  try {
    return from_json(read_file(path));
  } catch (const ValueError& e) {
    fail<ValueError>("{}: {}", path.string(), e.what());
  }
}

std::vector<AddedToken> special_tokens_from_config(const json& cfg, const json& map) {
  std::vector<AddedToken> out;
  auto take = [&](const json& v) {
    if (v.is_string()) {
      out.push_back({v.get<std::string>(), false, false, false, false, true, std::nullopt});
    } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
      AddedToken a = added_token_from_json(v);
      a.special = true;
      out.push_back(a);
    }
  };
  for (const json* src : {&map, &cfg}) {
    if (!src->is_object()) continue;
    for (const char* key : {"unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
                            "bos_token", "eos_token"})
      if (src->contains(key)) take((*src)[key]);
    if (src->contains("additional_special_tokens") &&
        (*src)["additional_special_tokens"].is_array())
      for (const auto& v : (*src)["additional_special_tokens"]) take(v);
  }
  return out;
}

Tokenizer Tokenizer::from_pretrained(const std::filesystem::path& dir) {
  LMF_CHECK(std::filesystem::is_directory(dir), IoError,
            "tokenizer folder '{}' does not exist (expected tokenizer.json or vocab.txt in it)",
            dir.string());
  const json cfg = read_json_or_empty(dir / "tokenizer_config.json");
  const json stm = read_json_or_empty(dir / "special_tokens_map.json");
  Tokenizer t;
  if (std::filesystem::exists(dir / "tokenizer.json")) {
    t = from_file(dir / "tokenizer.json");
    // transformers sets truncation/padding per call: a loaded folder starts without them.
    t.set_truncation(std::nullopt);
    t.set_padding(std::nullopt);
  } else if (std::filesystem::exists(dir / "vocab.txt")) {
    auto str = [&](const char* key, const char* dflt) {
      for (const json* src : {&stm, &cfg}) {
        if (!src->contains(key)) continue;
        const json& v = (*src)[key];
        if (v.is_string()) return v.get<std::string>();
        if (v.is_object() && v.contains("content") && v["content"].is_string())
          return v["content"].get<std::string>();
      }
      return std::string(dflt);
    };
    const bool lower = get_bool(cfg, "do_lower_case", true);
    std::optional<bool> strip;
    if (cfg.contains("strip_accents") && cfg["strip_accents"].is_boolean())
      strip = cfg["strip_accents"].get<bool>();
    t.set_model(WordPiece::from_vocab_file(dir / "vocab.txt", str("unk_token", "[UNK]")));
    t.set_normalizer(
        make_bert_normalizer(true, get_bool(cfg, "tokenize_chinese_chars", true), strip, lower));
    t.set_pre_tokenizer(make_bert_pre_tokenizer());
    t.set_decoder(make_wordpiece_decoder("##", true));
    std::vector<AddedToken> specials;
    for (const char* k : {"pad_token", "unk_token", "cls_token", "sep_token", "mask_token"})
      specials.push_back({str(k, ""), false, false, false, false, true, std::nullopt});
    for (auto& a : special_tokens_from_config(cfg, stm)) specials.push_back(a);
    t.add_special_tokens(specials);
    // never_split (slow BertTokenizer): kept whole when the vocabulary has them.
    if (cfg.contains("never_split") && cfg["never_split"].is_array()) {
      std::vector<AddedToken> keep;
      for (const auto& v : cfg["never_split"])
        if (v.is_string() && t.model().token_to_id(v.get<std::string>()))
          keep.push_back({v.get<std::string>(), false, false, false, false, false, std::nullopt});
      t.add_tokens(keep);
    }
    const std::string cls = str("cls_token", "[CLS]"), sep = str("sep_token", "[SEP]");
    t.set_post_processor(make_bert_processing({cls, t.token_to_id(cls).value_or(2)},
                                              {sep, t.token_to_id(sep).value_or(3)}));
  } else if (!load_legacy_ext(dir, cfg, stm, t)) {
    fail<IoError>(
        "'{}' has no tokenizer.json, vocab.txt, vocab.json + merges.txt or "
        "SentencePiece .model file",
        dir.string());
  }
  t.set_clean_up_tokenization_spaces(get_bool(cfg, "clean_up_tokenization_spaces", false));
  return t;
}

}  // namespace lmf::tok
