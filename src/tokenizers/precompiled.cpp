// The Precompiled normalizer (see lmforge/tokenizers/precompiled.h): darts-clone prefix search
// over the charsmap's trie and tokenizers' grapheme-then-char replacement with alignments.
#include "lmforge/tokenizers/precompiled.h"

#include <cstring>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::tok {

namespace {

std::string base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    const int v = val(c);
    LMF_CHECK(v >= 0, ValueError,
              "tokenizer.json: normalizer Precompiled: precompiled_charsmap is not base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// darts-clone unit fields.
bool has_leaf(uint32_t u) {
  return ((u >> 8) & 1) == 1;
}
uint32_t value(uint32_t u) {
  return u & ((1u << 31) - 1);
}
uint32_t label(uint32_t u) {
  return u & ((1u << 31) | 0xFF);
}
uint32_t offset(uint32_t u) {
  return (u >> 10) << ((u & (1u << 9)) >> 6);
}

// Chars a grapheme cluster continues with (an approximation of Unicode's extended grapheme
// clusters that covers what can fit the < 6-byte grapheme rule: combining marks, ZWJ
// sequences, variation selectors, emoji modifiers, CR LF).
bool extends(char32_t c) {
  return is_nonspacing_mark(c) || (c >= 0x20D0 && c <= 0x20FF) || c == 0x200D ||
         (c >= 0xFE00 && c <= 0xFE0F) || (c >= 0x1F3FB && c <= 0x1F3FF) ||
         (c >= 0xE0100 && c <= 0xE01EF);
}

std::vector<std::string_view> graphemes(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    const size_t start = i;
    char32_t c = next_char(s, i);
    if (c == '\r' && i < s.size() && s[i] == '\n') ++i;
    while (i < s.size()) {
      size_t j = i;
      const char32_t n = next_char(s, j);
      if (!extends(n) && c != 0x200D) break;
      c = n;
      i = j;
    }
    out.push_back(s.substr(start, i - start));
  }
  return out;
}

// tokenizers' replace(): the new chars, the last ones marked as insertions (+1) or the last
// one carrying the removed count.
void replace(std::vector<CharChange>& t, std::string_view old_part, std::string_view new_part) {
  const int old_count = static_cast<int>(utf8_char_count(old_part));
  const int new_count = static_cast<int>(utf8_char_count(new_part));
  const int diff = new_count - old_count;
  size_t i = 0;
  while (i < new_part.size()) t.push_back({next_char(new_part, i), 0});
  if (diff > 0) {
    for (int k = 0; k < diff && k < static_cast<int>(t.size()); ++k) t[t.size() - 1 - k].change = 1;
  } else if (diff < 0 && !t.empty()) {
    t.back().change += diff;
  }
}

}  // namespace

PrecompiledNormalizer::PrecompiledNormalizer(std::string charsmap) : blob_(std::move(charsmap)) {
  if (blob_.empty()) return;
  LMF_CHECK(blob_.size() >= 4, ValueError,
            "tokenizer.json: normalizer Precompiled: precompiled_charsmap is too short");
  uint32_t trie_bytes = 0;
  std::memcpy(&trie_bytes, blob_.data(), 4);
  LMF_CHECK(trie_bytes % 4 == 0 && 4 + static_cast<size_t>(trie_bytes) <= blob_.size(), ValueError,
            "tokenizer.json: normalizer Precompiled: the charsmap's trie size {} does not fit its "
            "{} bytes",
            trie_bytes, blob_.size());
  trie_.resize(trie_bytes / 4);
  std::memcpy(trie_.data(), blob_.data() + 4, trie_bytes);
  normalized_ = std::string_view(blob_).substr(4 + trie_bytes);
}

std::unique_ptr<PrecompiledNormalizer> PrecompiledNormalizer::from_base64(std::string_view b64) {
  return std::make_unique<PrecompiledNormalizer>(base64_decode(b64));
}

std::optional<std::string_view> PrecompiledNormalizer::transform(std::string_view chunk) const {
  if (trie_.empty()) return std::nullopt;
  // darts-clone commonPrefixSearch: the first (shortest) match decides.
  size_t pos = 0;
  uint32_t unit = trie_[0];
  pos ^= offset(unit);
  for (unsigned char c : chunk) {
    if (c == 0) break;
    pos ^= c;
    if (pos >= trie_.size()) return std::nullopt;
    unit = trie_[pos];
    if (label(unit) != c) return std::nullopt;
    pos ^= offset(unit);
    if (has_leaf(unit)) {
      if (pos >= trie_.size()) return std::nullopt;
      const size_t index = value(trie_[pos]);
      if (index >= normalized_.size()) return std::nullopt;
      const size_t end = normalized_.find('\0', index);
      return normalized_.substr(index,
                                (end == std::string_view::npos ? normalized_.size() : end) - index);
    }
  }
  return std::nullopt;
}

void PrecompiledNormalizer::normalize(NormalizedString& s) const {
  if (trie_.empty()) return;
  const std::string text = s.get();
  std::vector<CharChange> t;
  t.reserve(text.size());
  bool modified = false;
  for (std::string_view g : graphemes(text)) {
    if (g.size() < 6) {
      if (auto n = transform(g)) {
        modified = true;
        replace(t, g, *n);
        continue;
      }
    }
    size_t i = 0;
    while (i < g.size()) {
      const size_t b = i;
      const char32_t c = next_char(g, i);
      const std::string_view part = g.substr(b, i - b);
      if (auto n = transform(part)) {
        modified = true;
        replace(t, part, *n);
      } else {
        t.push_back({c, 0});
      }
    }
  }
  if (modified) s.transform(t, 0);
}

}  // namespace lmf::tok
