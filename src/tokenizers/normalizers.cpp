// Normalizers: BertNormalizer, NFD/NFKD/NFC/NFKC, Lowercase, StripAccents, Strip, Replace,
// Prepend, Sequence (HF semantics, alignments kept).
#include "lmforge/core/error.h"
#include "lmforge/tokenizers/unicode.h"
#include "tokenizers/factory.h"

namespace lmf::tok {
namespace {

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean, bool chinese, std::optional<bool> strip, bool lower)
      : clean_(clean), chinese_(chinese), strip_(strip.value_or(lower)), lower_(lower) {}
  void normalize(NormalizedString& s) const override {
    if (clean_) {
      bool any = false;
      for (unsigned char b : s.get())
        if (b >= 0x80 || b < 0x20 || b == 0x7F) any = true;
      if (any) {
        s.filter([](char32_t c) { return !(c == 0 || c == 0xFFFD || is_bert_control(c)); });
        s.map([](char32_t c) { return is_bert_whitespace(c) ? U' ' : c; });
      }
    }
    if (chinese_ && has_non_ascii(s.get())) {
      thread_local std::vector<CharChange> changes;
      changes.clear();
      bool any = false;
      for (size_t i = 0; i < s.get().size();) {
        const char32_t c = next_char(s.get(), i);
        if (is_chinese_char(c)) {
          changes.push_back({U' ', 0});
          changes.push_back({c, 1});
          changes.push_back({U' ', 1});
          any = true;
        } else {
          changes.push_back({c, 0});
        }
      }
      if (any) s.transform(changes, 0);
    }
    if (strip_ && has_non_ascii(s.get())) {
      s.nfd();
      s.filter([](char32_t c) { return !is_bert_accent_mark(c); });
    }
    if (lower_) s.lowercase();
  }

 private:
  static bool has_non_ascii(const std::string& s) {
    for (unsigned char b : s)
      if (b >= 0x80) return true;
    return false;
  }
  bool clean_, chinese_, strip_, lower_;
};

class UnicodeNormalizer final : public Normalizer {
 public:
  enum Form { NFD, NFKD, NFC, NFKC };
  explicit UnicodeNormalizer(Form f) : f_(f) {}
  void normalize(NormalizedString& s) const override {
    switch (f_) {
      case NFD:
        s.nfd();
        break;
      case NFKD:
        s.nfkd();
        break;
      case NFC:
        s.nfc();
        break;
      case NFKC:
        s.nfkc();
        break;
    }
  }

 private:
  Form f_;
};

class Lowercase final : public Normalizer {
 public:
  void normalize(NormalizedString& s) const override { s.lowercase(); }
};

class StripAccents final : public Normalizer {
 public:
  void normalize(NormalizedString& s) const override {
    s.filter([](char32_t c) { return !is_nonspacing_mark(c); });
  }
};

class Strip final : public Normalizer {
 public:
  Strip(bool l, bool r) : l_(l), r_(r) {}
  void normalize(NormalizedString& s) const override {
    if (l_ && r_)
      s.strip();
    else if (l_)
      s.lstrip();
    else if (r_)
      s.rstrip();
  }

 private:
  bool l_, r_;
};

class Replace final : public Normalizer {
 public:
  Replace(PatternSpec p, std::string content) : p_(std::move(p)), content_(std::move(content)) {}
  void normalize(NormalizedString& s) const override {
    s.replace(p_.find_matches(s.get()), content_);
  }

 private:
  PatternSpec p_;
  std::string content_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string p) : p_(std::move(p)) {}
  void normalize(NormalizedString& s) const override { s.prepend(p_); }

 private:
  std::string p_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> v) : v_(std::move(v)) {}
  void normalize(NormalizedString& s) const override {
    for (const auto& n : v_) n->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> v_;
};

}  // namespace

std::unique_ptr<Normalizer> normalizer_from_json(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = get_string(j, "type", "normalizer");
  if (type == "BertNormalizer") {
    std::optional<bool> strip;
    if (j.contains("strip_accents") && !j["strip_accents"].is_null())
      strip = get_bool(j, "strip_accents", false);
    return std::make_unique<BertNormalizer>(get_bool(j, "clean_text", true),
                                            get_bool(j, "handle_chinese_chars", true), strip,
                                            get_bool(j, "lowercase", true));
  }
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(UnicodeNormalizer::NFD);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(UnicodeNormalizer::NFKD);
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(UnicodeNormalizer::NFC);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(UnicodeNormalizer::NFKC);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Strip")
    return std::make_unique<Strip>(get_bool(j, "strip_left", false),
                                   get_bool(j, "strip_right", false));
  if (type == "Replace")
    return std::make_unique<Replace>(
        PatternSpec(get_key(j, "pattern", "normalizer.Replace"), "normalizer.Replace"),
        get_string(j, "content", "normalizer.Replace"));
  if (type == "Prepend") return std::make_unique<Prepend>(get_string(j, "prepend", "Prepend"));
  if (type == "Sequence") {
    const json& list = get_key(j, "normalizers", "normalizer.Sequence");
    LMF_CHECK(list.is_array(), ValueError,
              "tokenizer.json: normalizer.Sequence.normalizers "
              "must be a list");
    std::vector<std::unique_ptr<Normalizer>> v;
    for (const auto& n : list)
      if (auto p = normalizer_from_json(n)) v.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(v));
  }
  if (auto p = make_normalizer_ext(type, j)) return p;
  fail<ValueError>("tokenizer.json: unsupported normalizer type '{}'", type);
}

std::unique_ptr<Normalizer> make_bert_normalizer(bool clean_text, bool handle_chinese_chars,
                                                 std::optional<bool> strip_accents,
                                                 bool lowercase) {
  return std::make_unique<BertNormalizer>(clean_text, handle_chinese_chars, strip_accents,
                                          lowercase);
}

}  // namespace lmf::tok
