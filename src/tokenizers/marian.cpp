// MarianTokenizer: transformers' slow MarianTokenizer (tokenization_marian.py + the
// PreTrainedTokenizer added-token split and decode) over libsentencepiece.
#include "lmforge/tokenizers/marian.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/sentencepiece.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/tokenizers/unicode.h"
#include "tokenizers/factory.h"

namespace lmf::tok {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  LMF_CHECK(f.good(), IoError, "Marian tokenizer: cannot read '{}'", p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ojson read_json(const fs::path& p) {
  std::string text = read_text(p);
  try {
    return ojson::parse(text);
  } catch (const ojson::exception& e) {
    fail<ValueError>("Marian tokenizer: '{}' is not valid JSON: {}", p.string(), e.what());
  }
}

ojson read_json_object_or_empty(const fs::path& p) {
  if (!fs::exists(p)) return ojson::object();
  ojson j = read_json(p);
  LMF_CHECK(j.is_object(), ValueError, "Marian tokenizer: '{}' must hold a JSON object, got {}",
            p.string(), j.type_name());
  return j;
}

// vocab.json: {"piece": id, ...} in file order (Python's dict keeps the last of duplicates).
struct Vocab {
  std::unordered_map<std::string, int64_t> encoder;
  std::unordered_map<int64_t, std::string> decoder;
  std::vector<std::string> keys;  // file order
};

Vocab read_vocab(const fs::path& p) {
  ojson j = read_json(p);
  LMF_CHECK(j.is_object(), ValueError,
            "Marian tokenizer: '{}' must be a JSON object {{\"piece\": id, ...}}, got {}",
            p.string(), j.type_name());
  Vocab v;
  for (auto it = j.begin(); it != j.end(); ++it) {
    LMF_CHECK(it.value().is_number_integer(), ValueError,
              "Marian tokenizer: '{}': the id of '{}' must be an integer, got {}", p.string(),
              it.key(), it.value().type_name());
    int64_t id = it.value().get<int64_t>();
    LMF_CHECK(id >= 0, ValueError, "Marian tokenizer: '{}': the id of '{}' is negative ({})",
              p.string(), it.key(), id);
    if (!v.encoder.count(it.key())) v.keys.push_back(it.key());
    v.encoder[it.key()] = id;
  }
  for (const auto& k : v.keys) v.decoder[v.encoder[k]] = k;  // later keys win, as {v: k for ...}
  return v;
}

// A special token given as "text" or as an AddedToken object {"content": "text", ...}.
std::optional<std::string> token_content(const ojson& j, std::string_view key,
                                         std::string_view file) {
  if (j.is_null()) return std::nullopt;
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string())
    return j["content"].get<std::string>();
  fail<ValueError>("Marian tokenizer: {}: '{}' must be a string or {{\"content\": ...}}", file,
                   key);
}

// Python's str.isspace (White_Space plus the separators U+001C..U+001F).
bool py_isspace(char32_t c) {
  return is_whitespace(c) || (c >= 0x1C && c <= 0x1F);
}

std::string py_strip(std::string_view s) {
  size_t b = 0;
  while (b < s.size()) {
    size_t i = b;
    if (!py_isspace(next_char(s, i))) break;
    b = i;
  }
  size_t e = s.size();
  while (e > b) {
    size_t start = e - 1;
    while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t i = start;
    if (!py_isspace(next_char(s, i))) break;
    e = start;
  }
  return std::string(s.substr(b, e - b));
}

constexpr std::string_view kUnderline = "\xE2\x96\x81";  // U+2581, SentencePiece's space

}  // namespace

struct MarianTokenizer::Impl {
  std::shared_ptr<SentencePiece> spm_source, spm_target;
  Vocab source, target;  // target is used only when separate
  bool separate = false;
  bool clean_up_spaces = false;
  std::string source_lang, target_lang;
  std::string unk_token = "<unk>", eos_token = "</s>", pad_token = "<pad>";
  std::vector<std::string> special_tokens;  // all_special_tokens, in transformers' order
  std::unordered_set<std::string> special_set;
  std::unordered_map<std::string, int64_t> added_encoder;
  std::unordered_map<int64_t, std::string> added_decoder;
  std::vector<std::string> added_by_length;  // added token contents, longest first
  std::unordered_set<int64_t> special_ids;
  std::vector<std::string> language_codes;
  int64_t unk_id = 0, eos_id = 0, pad_id = 0, target_unk_id = 0;
  size_t len = 0;

  int64_t lookup(const std::string& token, bool target_mode) const {
    if (auto it = added_encoder.find(token); it != added_encoder.end()) return it->second;
    const Vocab& v = (target_mode && separate) ? target : source;
    if (auto it = v.encoder.find(token); it != v.encoder.end()) return it->second;
    return (target_mode && separate) ? target_unk_id : unk_id;
  }

  // PreTrainedTokenizer.tokenize: split on added tokens (leftmost, longest), then Marian's
  // _tokenize on each other chunk (language code, then SentencePiece pieces).
  std::vector<std::string> tokenize(std::string_view text, bool target_mode) const {
    LMF_CHECK(is_valid_utf8(text), ValueError,
              "Marian tokenizer: the text is not valid UTF-8 (at most 40 bytes: '{}'); decode or "
              "clean the input first",
              sanitize_utf8(text.substr(0, 40)));
    std::vector<std::string> out;
    const SentencePiece& sp = target_mode ? *spm_target : *spm_source;
    auto tokenize_chunk = [&](std::string_view chunk) {
      if (chunk.empty()) return;
      if (chunk.starts_with(">>")) {
        if (size_t end = chunk.find("<<"); end != std::string_view::npos) {
          out.emplace_back(chunk.substr(0, end + 2));
          chunk.remove_prefix(end + 2);
        }
      }
      for (auto& t : sp.encode(chunk)) out.push_back(std::move(t.value));
    };
    size_t start = 0, i = 0;
    while (i < text.size()) {
      const std::string* hit = nullptr;
      for (const auto& a : added_by_length) {
        if (text.compare(i, a.size(), a) == 0) {
          hit = &a;
          break;
        }
      }
      if (!hit) {
        i += utf8_len(static_cast<unsigned char>(text[i]));
        continue;
      }
      tokenize_chunk(text.substr(start, i - start));
      out.push_back(*hit);
      i += hit->size();
      start = i;
    }
    tokenize_chunk(text.substr(start));
    return out;
  }

  std::vector<int64_t> encode(std::string_view text, bool target_mode) const {
    std::vector<int64_t> ids;
    for (const auto& t : tokenize(text, target_mode)) ids.push_back(lookup(t, target_mode));
    ids.push_back(eos_id);
    return ids;
  }

  MarianBatch encode_batch(const std::vector<std::string>& texts, bool target_mode) const {
    MarianBatch b;
    size_t longest = 0;
    for (const auto& t : texts) {
      b.input_ids.push_back(encode(t, target_mode));
      longest = std::max(longest, b.input_ids.back().size());
    }
    for (auto& ids : b.input_ids) {
      std::vector<int64_t> mask(ids.size(), 1);
      mask.resize(longest, 0);
      ids.resize(longest, pad_id);
      b.attention_mask.push_back(std::move(mask));
    }
    return b;
  }

  std::string id_to_token(int64_t id, const SentencePiece& sp) const {
    if (auto it = added_decoder.find(id); it != added_decoder.end()) return it->second;
    const Vocab& v = separate ? target : source;
    if (auto it = v.decoder.find(id); it != v.decoder.end()) return it->second;
    auto piece = id >= 0 ? sp.id_to_token(static_cast<uint32_t>(id)) : std::nullopt;
    LMF_CHECK(piece.has_value(), IndexError,
              "Marian decode: id {} is neither in the vocabulary ({} entries) nor in the "
              "SentencePiece model ({} pieces)",
              id, v.encoder.size(), sp.vocab_size());
    return piece->empty() ? unk_token : *piece;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const {
    // transformers decodes with the source model unless the vocabularies are separate.
    const SentencePiece& sp = separate ? *spm_target : *spm_source;
    std::vector<std::string> pending;
    std::string out;
    for (int64_t id : ids) {
      if (skip_special && special_ids.count(id)) continue;
      std::string token = id_to_token(id, sp);
      if (special_set.count(token)) {
        out += sp.decode_pieces(pending);
        out += token;
        out += ' ';
        pending.clear();
      } else {
        pending.push_back(std::move(token));
      }
    }
    out += sp.decode_pieces(pending);
    replace_all(out, kUnderline, " ");
    out = py_strip(out);
    if (clean_up_spaces) out = clean_up_tokenization(std::move(out));
    return out;
  }
};

MarianTokenizer::MarianTokenizer() : impl_(std::make_unique<Impl>()) {}
MarianTokenizer::MarianTokenizer(MarianTokenizer&&) noexcept = default;
MarianTokenizer& MarianTokenizer::operator=(MarianTokenizer&&) noexcept = default;
MarianTokenizer::~MarianTokenizer() = default;

MarianTokenizer MarianTokenizer::from_folder(const std::string& dir_str) {
  const fs::path dir(dir_str);
  LMF_CHECK(fs::is_directory(dir), IoError,
            "Marian tokenizer: '{}' is not a directory (expected source.spm, target.spm, "
            "vocab.json)",
            dir_str);
  auto require = [&](const char* name) {
    fs::path p = dir / name;
    LMF_CHECK(fs::exists(p), IoError,
              "Marian tokenizer: '{}' has no {} (a Marian folder holds source.spm, target.spm, "
              "vocab.json and tokenizer_config.json)",
              dir_str, name);
    return p;
  };
  const fs::path src_spm = require("source.spm"), tgt_spm = require("target.spm"),
                 vocab = require("vocab.json");
  const ojson cfg = read_json_object_or_empty(dir / "tokenizer_config.json");
  const ojson stm = read_json_object_or_empty(dir / "special_tokens_map.json");

  MarianTokenizer t;
  Impl& m = *t.impl_;
  m.spm_source = std::shared_ptr<SentencePiece>(SentencePiece::from_file(src_spm.string()));
  m.spm_target = std::shared_ptr<SentencePiece>(SentencePiece::from_file(tgt_spm.string()));
  m.source = read_vocab(vocab);

  auto cfg_bool = [&](const char* key) {
    auto it = cfg.find(key);
    if (it == cfg.end() || it->is_null()) return false;
    LMF_CHECK(it->is_boolean(), ValueError,
              "Marian tokenizer: tokenizer_config.json: '{}' must be true or false, got {}", key,
              it->type_name());
    return it->get<bool>();
  };
  auto cfg_string = [&](const char* key) -> std::string {
    auto it = cfg.find(key);
    return it != cfg.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  m.separate = cfg_bool("separate_vocabs");
  m.clean_up_spaces = cfg_bool("clean_up_tokenization_spaces");
  m.source_lang = cfg_string("source_lang");
  m.target_lang = cfg_string("target_lang");

  // Named special tokens (transformers' SPECIAL_TOKENS_ATTRIBUTES order), then extras.
  std::vector<std::pair<std::string, std::string>> named = {
      {"bos_token", ""}, {"eos_token", m.eos_token}, {"unk_token", m.unk_token},
      {"sep_token", ""}, {"pad_token", m.pad_token}, {"cls_token", ""},
      {"mask_token", ""}};
  for (auto& [key, value] : named) {
    const ojson* src = cfg.contains(key) ? &cfg : stm.contains(key) ? &stm : nullptr;
    if (src) value = token_content((*src)[key], key, "tokenizer_config.json").value_or("");
    if (!value.empty() && !m.special_set.count(value)) {
      m.special_tokens.push_back(value);
      m.special_set.insert(value);
    }
  }
  m.eos_token = named[1].second;
  m.unk_token = named[2].second;
  m.pad_token = named[4].second;
  LMF_CHECK(!m.eos_token.empty() && !m.unk_token.empty() && !m.pad_token.empty(), ValueError,
            "Marian tokenizer: tokenizer_config.json sets eos_token, unk_token or pad_token to "
            "null; Marian needs all three");
  for (const char* key : {"extra_special_tokens", "additional_special_tokens"}) {
    const ojson* src = cfg.contains(key) ? &cfg : stm.contains(key) ? &stm : nullptr;
    if (!src || (*src)[key].is_null()) continue;
    const ojson& list = (*src)[key];
    LMF_CHECK(list.is_array(), ValueError, "Marian tokenizer: '{}' must be a list of tokens", key);
    for (const auto& e : list) {
      auto c = token_content(e, key, "tokenizer_config.json");
      if (c && !c->empty() && !m.special_set.count(*c)) {
        m.special_tokens.push_back(*c);
        m.special_set.insert(*c);
      }
    }
    break;  // additional_special_tokens is the deprecated spelling of extra_special_tokens
  }

  LMF_CHECK(m.source.encoder.count(m.unk_token), ValueError,
            "Marian tokenizer: '{}' has no entry for the unknown token '{}' (transformers "
            "requires it)",
            vocab.string(), m.unk_token);
  m.unk_id = m.source.encoder.at(m.unk_token);
  if (m.separate) {
    fs::path tv = dir / "target_vocab.json";
    if (!fs::exists(tv)) {
      std::string named_file = cfg_string("target_vocab_file");
      if (!named_file.empty())
        tv = fs::path(named_file).is_absolute() ? fs::path(named_file) : dir / named_file;
    }
    LMF_CHECK(fs::exists(tv), IoError,
              "Marian tokenizer: '{}' has separate_vocabs=true but no target_vocab.json", dir_str);
    m.target = read_vocab(tv);
    LMF_CHECK(m.target.encoder.count(m.unk_token), ValueError,
              "Marian tokenizer: '{}' has no entry for the unknown token '{}'", tv.string(),
              m.unk_token);
    m.target_unk_id = m.target.encoder.at(m.unk_token);
  } else {
    for (const auto& k : m.source.keys)
      if (k.size() >= 4 && k.starts_with(">>") && k.ends_with("<<")) m.language_codes.push_back(k);
  }

  // Added tokens: a saved added_tokens_decoder first, then every special token, at its vocab.json
  // id or appended after the vocabulary (PreTrainedTokenizer._add_tokens).
  if (auto it = cfg.find("added_tokens_decoder"); it != cfg.end() && it->is_object()) {
    for (auto e = it->begin(); e != it->end(); ++e) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(e.key(), &used);
        if (used != e.key().size()) id = -1;
      } catch (const std::exception&) {
      }
      LMF_CHECK(id >= 0, ValueError,
                "Marian tokenizer: tokenizer_config.json: added_tokens_decoder key '{}' is not a "
                "token id",
                e.key());
      auto c = token_content(e.value(), "added_tokens_decoder", "tokenizer_config.json");
      if (!c) continue;
      m.added_decoder[id] = *c;
      m.added_encoder[*c] = id;
    }
  }
  std::unordered_set<std::string> current;  // get_vocab(): vocab.json keys + added tokens
  for (const auto& k : m.source.keys) current.insert(k);
  for (const auto& [k, v] : m.added_encoder) current.insert(k);
  const int64_t new_idx = static_cast<int64_t>(current.size());
  int64_t n_new = 0;
  for (const auto& s : m.special_tokens) {
    if (m.added_encoder.count(s)) continue;
    int64_t id;
    if (auto it = m.source.encoder.find(s); it != m.source.encoder.end()) {
      id = it->second;
    } else {
      id = new_idx + n_new++;
    }
    m.added_decoder[id] = s;
    m.added_encoder[s] = id;
    current.insert(s);
  }
  m.len = current.size();
  for (const auto& [k, v] : m.added_encoder)
    if (!k.empty()) m.added_by_length.push_back(k);
  std::sort(m.added_by_length.begin(), m.added_by_length.end(),
            [](const std::string& a, const std::string& b) {
              return a.size() != b.size() ? a.size() > b.size() : a < b;
            });
  m.eos_id = m.added_encoder.at(m.eos_token);
  m.pad_id = m.added_encoder.at(m.pad_token);
  m.unk_id = m.added_encoder.at(m.unk_token);
  for (const auto& s : m.special_tokens) m.special_ids.insert(m.lookup(s, false));
  return t;
}

std::vector<int64_t> MarianTokenizer::encode_source(std::string_view text) const {
  return impl_->encode(text, false);
}
std::vector<int64_t> MarianTokenizer::encode_target(std::string_view text) const {
  return impl_->encode(text, true);
}
std::vector<std::string> MarianTokenizer::tokenize_source(std::string_view text) const {
  return impl_->tokenize(text, false);
}
std::vector<std::string> MarianTokenizer::tokenize_target(std::string_view text) const {
  return impl_->tokenize(text, true);
}
MarianBatch MarianTokenizer::encode_source_batch(const std::vector<std::string>& texts) const {
  return impl_->encode_batch(texts, false);
}
MarianBatch MarianTokenizer::encode_target_batch(const std::vector<std::string>& texts) const {
  return impl_->encode_batch(texts, true);
}
std::string MarianTokenizer::decode(const std::vector<int64_t>& ids,
                                    bool skip_special_tokens) const {
  return impl_->decode(ids, skip_special_tokens);
}
std::vector<std::string> MarianTokenizer::decode_batch(const std::vector<std::vector<int64_t>>& ids,
                                                       bool skip_special_tokens) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const auto& v : ids) out.push_back(impl_->decode(v, skip_special_tokens));
  return out;
}
int64_t MarianTokenizer::pad_token_id() const {
  return impl_->pad_id;
}
int64_t MarianTokenizer::eos_token_id() const {
  return impl_->eos_id;
}
int64_t MarianTokenizer::unk_token_id() const {
  return impl_->unk_id;
}
size_t MarianTokenizer::vocab_size() const {
  return impl_->source.encoder.size();
}
size_t MarianTokenizer::size() const {
  return impl_->len;
}
bool MarianTokenizer::separate_vocabs() const {
  return impl_->separate;
}
const std::vector<std::string>& MarianTokenizer::supported_language_codes() const {
  return impl_->language_codes;
}
const std::string& MarianTokenizer::source_lang() const {
  return impl_->source_lang;
}
const std::string& MarianTokenizer::target_lang() const {
  return impl_->target_lang;
}
std::optional<int64_t> MarianTokenizer::token_to_id(std::string_view token) const {
  std::string t(token);
  if (auto it = impl_->added_encoder.find(t); it != impl_->added_encoder.end()) return it->second;
  if (auto it = impl_->source.encoder.find(t); it != impl_->source.encoder.end()) return it->second;
  return std::nullopt;
}
std::optional<std::string> MarianTokenizer::id_to_token(int64_t id) const {
  if (auto it = impl_->added_decoder.find(id); it != impl_->added_decoder.end()) return it->second;
  const Vocab& v = impl_->separate ? impl_->target : impl_->source;
  if (auto it = v.decoder.find(id); it != v.decoder.end()) return it->second;
  return std::nullopt;
}

}  // namespace lmf::tok
