// String, predicate and PCRE2 regex patterns returning HF-style match lists.
#include "lmforge/tokenizers/pattern.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::tok {

namespace {
// Turns a list of matched ranges into the full covering list.
std::vector<Match> cover(size_t size, const std::vector<Offsets>& hits) {
  std::vector<Match> out;
  out.reserve(hits.size() * 2 + 1);
  size_t prev = 0;
  for (const auto& [b, e] : hits) {
    if (b > prev) out.push_back({prev, b, false});
    out.push_back({b, e, true});
    prev = e;
  }
  if (prev < size) out.push_back({prev, size, false});
  return out;
}
}  // namespace

std::vector<Match> find_matches(std::string_view text, std::string_view needle) {
  if (needle.empty()) return {{0, text.size(), false}};
  std::vector<Offsets> hits;
  for (size_t pos = text.find(needle); pos != std::string_view::npos;
       pos = text.find(needle, pos + needle.size()))
    hits.emplace_back(pos, pos + needle.size());
  if (text.empty()) return {};
  return cover(text.size(), hits);
}

std::vector<Match> find_matches(std::string_view text, const std::function<bool(char32_t)>& pred) {
  std::vector<Match> out;
  size_t last = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t b = i;
    const char32_t c = next_char(text, i);
    if (pred(c)) {
      if (last < b) out.push_back({last, b, false});
      out.push_back({b, i, true});
      last = i;
    }
  }
  if (last < text.size()) out.push_back({last, text.size(), false});
  return out;
}

namespace {
// Rewrites \w \s \d (and \W \S \D outside classes) into Oniguruma's classes, so a pattern
// from tokenizer.json matches what HF's Oniguruma matches.
std::string to_onig_semantics(std::string_view p) {
  std::string out;
  out.reserve(p.size());
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      const char lower = static_cast<char>(n | 0x20);
      if ((lower == 'w' || lower == 's' || lower == 'd') && !(in_class && n != lower)) {
        const std::string& body = onig_class_ranges(lower);
        if (in_class)
          out += body;
        else
          out += (n == lower ? "[" : "[^") + body + "]";
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}
}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  ~Impl() { pcre2_code_free(code); }
};

Regex::Regex(std::string_view pattern) : pattern_(pattern), impl_(std::make_unique<Impl>()) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  const std::string translated = to_onig_semantics(pattern);
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &err_off, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail<ValueError>("regex '{}' does not compile at offset {}: {}", pattern, err_off,
                     reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);
}
Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

std::vector<Match> Regex::find_matches(std::string_view text) const {
  if (text.empty()) return {};
  std::vector<Offsets> hits;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc =
        pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail<ValueError>("regex '{}' failed on a {}-byte input: {}", pattern_, text.size(),
                       reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      hits.emplace_back(b, e);
      start = e;
    } else {  // empty match: step over one char
      if (b >= text.size()) break;
      start = b + utf8_len(static_cast<unsigned char>(text[b]));
    }
  }
  pcre2_match_data_free(md);
  return cover(text.size(), hits);
}

}  // namespace lmf::tok
