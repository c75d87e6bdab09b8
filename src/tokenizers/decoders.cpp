// Decoders: WordPiece (with cleanup), Fuse, Strip, Replace, ByteFallback, Sequence.
#include "lmforge/core/error.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/tokenizers/unicode.h"
#include "tokenizers/factory.h"

namespace lmf::tok {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  out.append(s, pos);
  s = std::move(out);
}

namespace {

// HF decoders::wordpiece::cleanup: transformers' clean_up_tokenization plus " do not" ->
// " don't" (no replacement can create or break another's match, so the order is free).
std::string wordpiece_cleanup(std::string s) {
  s = clean_up_tokenization(std::move(s));
  replace_all(s, " do not", " don't");
  return s;
}

class WordPieceDecoder final : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup)
      : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto& t = tokens[i];
      if (i != 0) {
        if (t.compare(0, prefix_.size(), prefix_) == 0 && t.size() >= prefix_.size())
          t.erase(0, prefix_.size());
        else
          t.insert(0, " ");
      }
      if (cleanup_) t = wordpiece_cleanup(std::move(t));
    }
    return tokens;
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class Fuse final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    return {all};
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t c, size_t start, size_t stop) : c_(c), start_(start), stop_(stop) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) {
      std::vector<std::pair<size_t, char32_t>> chars;  // byte start, char
      for (size_t i = 0; i < t.size();) {
        const size_t b = i;
        chars.emplace_back(b, next_char(t, i));
      }
      size_t cut_start = 0, cut_stop = chars.size();
      for (size_t i = 0; i < start_ && i < chars.size() && chars[i].second == c_; ++i)
        cut_start = i + 1;
      for (size_t i = 0; i < stop_ && i < chars.size(); ++i) {
        const size_t idx = chars.size() - i - 1;
        if (chars[idx].second != c_) break;
        cut_stop = idx;
      }
      if (cut_stop < cut_start) cut_stop = cut_start;
      const size_t bs = cut_start < chars.size() ? chars[cut_start].first : t.size();
      const size_t be = cut_stop < chars.size() ? chars[cut_stop].first : t.size();
      t = t.substr(bs, be - bs);
    }
    return tokens;
  }

 private:
  char32_t c_;
  size_t start_, stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(PatternSpec p, std::string content)
      : p_(std::move(p)), content_(std::move(content)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) {
      std::string out;
      for (const auto& m : p_.find_matches(t)) {
        if (m.is_match)
          out += content_;
        else
          out.append(t, m.begin, m.end - m.begin);
      }
      t = std::move(out);
    }
    return tokens;
  }

 private:
  PatternSpec p_;
  std::string content_;
};

class ByteFallback final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t nbytes = 0;
    auto flush = [&] {
      if (nbytes == 0) return;
      if (is_valid_utf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t k = 0; k < nbytes; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      nbytes = 0;
    };
    for (auto& t : tokens) {
      int v = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') v = hex2(t[3], t[4]);
      if (v >= 0) {
        bytes.push_back(static_cast<char>(v));
        ++nbytes;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    return out;
  }

 private:
  static int hex1(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  static int hex2(char a, char b) {
    const int x = hex1(a), y = hex1(b);
    return x < 0 || y < 0 ? -1 : x * 16 + y;
  }
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> v) : v_(std::move(v)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& d : v_) tokens = d->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> v_;
};

size_t get_size(const json& j, const char* key, size_t dflt) {
  if (!j.contains(key)) return dflt;
  LMF_CHECK(j[key].is_number_unsigned(), ValueError,
            "tokenizer.json: decoder.{} must be an unsigned integer", key);
  return j[key].get<size_t>();
}

}  // namespace

std::unique_ptr<Decoder> decoder_from_json(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = get_string(j, "type", "decoder");
  if (type == "WordPiece") {
    std::string prefix = "##";
    if (j.contains("prefix")) prefix = get_string(j, "prefix", "decoder.WordPiece");
    return std::make_unique<WordPieceDecoder>(prefix, get_bool(j, "cleanup", true));
  }
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") {
    const std::string c = get_string(j, "content", "decoder.Strip");
    size_t i = 0;
    LMF_CHECK(!c.empty(), ValueError, "tokenizer.json: decoder.Strip.content must be one char");
    const char32_t ch = next_char(c, i);
    return std::make_unique<StripDecoder>(ch, get_size(j, "start", 0), get_size(j, "stop", 0));
  }
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(
        PatternSpec(get_key(j, "pattern", "decoder.Replace"), "decoder.Replace"),
        get_string(j, "content", "decoder.Replace"));
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Sequence") {
    const json& list = get_key(j, "decoders", "decoder.Sequence");
    LMF_CHECK(list.is_array(), ValueError,
              "tokenizer.json: decoder.Sequence.decoders must be a list");
    std::vector<std::unique_ptr<Decoder>> v;
    for (const auto& d : list)
      if (auto p = decoder_from_json(d)) v.push_back(std::move(p));
    return std::make_unique<SequenceDecoder>(std::move(v));
  }
  if (auto p = make_decoder_ext(type, j)) return p;
  fail<ValueError>("tokenizer.json: unsupported decoder type '{}'", type);
}

std::unique_ptr<Decoder> make_wordpiece_decoder(std::string prefix, bool cleanup) {
  return std::make_unique<WordPieceDecoder>(std::move(prefix), cleanup);
}

std::string clean_up_tokenization(std::string s) {
  replace_all(s, " .", ".");
  replace_all(s, " ?", "?");
  replace_all(s, " !", "!");
  replace_all(s, " ,", ",");
  replace_all(s, " ' ", "'");
  replace_all(s, " n't", "n't");
  replace_all(s, " 'm", "'m");
  replace_all(s, " 's", "'s");
  replace_all(s, " 've", "'ve");
  replace_all(s, " 're", "'re");
  return s;
}

}  // namespace lmf::tok
