// Pre-tokenizers: BertPreTokenizer, Whitespace, WhitespaceSplit, Punctuation, Digits, Split,
// CharDelimiterSplit, Sequence (HF semantics; ByteLevel / Metaspace come through the hooks).
#include "lmforge/core/error.h"
#include "lmforge/tokenizers/pattern.h"
#include "lmforge/tokenizers/unicode.h"
#include "tokenizers/factory.h"

namespace lmf::tok {
namespace {

bool is_bert_punct(char32_t c) {
  return is_bert_punctuation(c);
}
// Splits on a char predicate with a delimiter behaviour.
void split_pred(PreTokenizedString& pts, bool (*pred)(char32_t), SplitBehavior b) {
  pts.split([&](size_t, NormalizedString&& s, std::vector<NormalizedString>& out) {
    auto pieces = s.split(find_matches(s.get(), std::function<bool(char32_t)>(pred)), b);
    for (auto& p : pieces) out.push_back(std::move(p));
  });
}

class BertPreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(PreTokenizedString& pts) const override {
    // One pass: drop whitespace, isolate punctuation (same pieces as the two HF splits).
    pts.split([](size_t, NormalizedString&& s, std::vector<NormalizedString>& out) {
      const std::string& t = s.get();
      size_t start = 0;
      bool in_word = false;
      for (size_t i = 0; i < t.size();) {
        const size_t b = i;
        const char32_t c = next_char(t, i);
        const bool ws = c < 0x80 ? (c == ' ' || (c >= 9 && c <= 13)) : is_whitespace(c);
        if (ws || is_bert_punct(c)) {
          if (in_word) out.push_back(s.slice(start, b));
          in_word = false;
          if (!ws) out.push_back(s.slice(b, i));
        } else if (!in_word) {
          start = b;
          in_word = true;
        }
      }
      if (in_word) out.push_back(s.slice(start, t.size()));
    });
  }
};

class Whitespace final : public PreTokenizer {
 public:
  // Runs of \w and runs of [^\w\s]; whitespace removed.
  void pre_tokenize(PreTokenizedString& pts) const override {
    pts.split([](size_t, NormalizedString&& s, std::vector<NormalizedString>& out) {
      const std::string& t = s.get();
      size_t start = 0;
      int cls = 0;  // 0 none, 1 word, 2 other
      for (size_t i = 0; i < t.size();) {
        const size_t b = i;
        const char32_t c = next_char(t, i);
        const int k = is_whitespace(c) ? 0 : is_word_char(c) ? 1 : 2;
        if (k != cls) {
          if (cls) out.push_back(s.slice(start, b));
          start = b;
          cls = k;
        }
      }
      if (cls) out.push_back(s.slice(start, t.size()));
    });
  }
};

class WhitespaceSplit final : public PreTokenizer {
 public:
  void pre_tokenize(PreTokenizedString& pts) const override {
    split_pred(pts, is_whitespace, SplitBehavior::Removed);
  }
};

class Punctuation final : public PreTokenizer {
 public:
  explicit Punctuation(SplitBehavior b) : b_(b) {}
  void pre_tokenize(PreTokenizedString& pts) const override { split_pred(pts, is_bert_punct, b_); }

 private:
  SplitBehavior b_;
};

class Digits final : public PreTokenizer {
 public:
  explicit Digits(bool individual) : individual_(individual) {}
  void pre_tokenize(PreTokenizedString& pts) const override {
    split_pred(pts, is_numeric, individual_ ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
  }

 private:
  bool individual_;
};

class SplitPre final : public PreTokenizer {
 public:
  SplitPre(PatternSpec p, SplitBehavior b, bool invert)
      : p_(std::move(p)), b_(b), invert_(invert) {}
  void pre_tokenize(PreTokenizedString& pts) const override {
    pts.split([&](size_t, NormalizedString&& s, std::vector<NormalizedString>& out) {
      auto m = p_.find_matches(s.get());
      if (invert_)
        for (auto& x : m) x.is_match = !x.is_match;
      for (auto& piece : s.split(m, b_)) out.push_back(std::move(piece));
    });
  }

 private:
  PatternSpec p_;
  SplitBehavior b_;
  bool invert_;
};

class CharDelimiterSplit final : public PreTokenizer {
 public:
  explicit CharDelimiterSplit(char32_t d) : d_(d) {}
  void pre_tokenize(PreTokenizedString& pts) const override {
    pts.split([&](size_t, NormalizedString&& s, std::vector<NormalizedString>& out) {
      auto m =
          find_matches(s.get(), std::function<bool(char32_t)>([&](char32_t c) { return c == d_; }));
      for (auto& piece : s.split(m, SplitBehavior::Removed)) out.push_back(std::move(piece));
    });
  }

 private:
  char32_t d_;
};

class SequencePre final : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> v) : v_(std::move(v)) {}
  void pre_tokenize(PreTokenizedString& pts) const override {
    for (const auto& p : v_) p->pre_tokenize(pts);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> v_;
};

}  // namespace

std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = get_string(j, "type", "pre_tokenizer");
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "Punctuation") {
    SplitBehavior b = SplitBehavior::Isolated;
    if (j.contains("behavior")) b = split_behavior_from_json(j["behavior"], "Punctuation");
    return std::make_unique<Punctuation>(b);
  }
  if (type == "Digits") return std::make_unique<Digits>(get_bool(j, "individual_digits", false));
  if (type == "Split")
    return std::make_unique<SplitPre>(
        PatternSpec(get_key(j, "pattern", "pre_tokenizer.Split"), "pre_tokenizer.Split"),
        split_behavior_from_json(get_key(j, "behavior", "pre_tokenizer.Split"),
                                 "pre_tokenizer.Split"),
        get_bool(j, "invert", false));
  if (type == "CharDelimiterSplit") {
    const std::string d = get_string(j, "delimiter", "pre_tokenizer.CharDelimiterSplit");
    size_t i = 0;
    LMF_CHECK(!d.empty() && (i = 0, next_char(d, i), i == d.size()), ValueError,
              "tokenizer.json: CharDelimiterSplit.delimiter must be one character");
    i = 0;
    return std::make_unique<CharDelimiterSplit>(next_char(d, i));
  }
  if (type == "Sequence") {
    const json& list = get_key(j, "pretokenizers", "pre_tokenizer.Sequence");
    LMF_CHECK(list.is_array(), ValueError,
              "tokenizer.json: pre_tokenizer.Sequence.pretokenizers must be a list");
    std::vector<std::unique_ptr<PreTokenizer>> v;
    for (const auto& p : list)
      if (auto q = pre_tokenizer_from_json(p)) v.push_back(std::move(q));
    return std::make_unique<SequencePre>(std::move(v));
  }
  if (auto p = make_pre_tokenizer_ext(type, j)) return p;
  fail<ValueError>("tokenizer.json: unsupported pre_tokenizer type '{}'", type);
}

std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer() {
  return std::make_unique<BertPreTokenizer>();
}

}  // namespace lmf::tok
