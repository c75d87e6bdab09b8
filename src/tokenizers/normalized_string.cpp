// NormalizedString: every normalized byte keeps the original byte range it came from, so token
// offsets map back to the original text exactly (same alignment rules as HF tokenizers).
#include "lmforge/tokenizers/normalized_string.h"

#include <utf8proc.h>

#include <algorithm>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::tok {

NormalizedString::NormalizedString(std::string_view original)
    : original_(original), normalized_(original) {
  alignments_.reserve(original.size());
  size_t i = 0;
  while (i < original.size()) {
    const size_t b = i;
    size_t n = std::min(utf8_len(static_cast<unsigned char>(original[i])), original.size() - i);
    for (size_t k = 0; k < n; ++k) alignments_.emplace_back(b, b + n);
    i += n;
  }
}

std::optional<Offsets> NormalizedString::convert_normalized(size_t b, size_t e) const {
  if (b == e) return Offsets{b, e};
  if (b > e) return std::nullopt;
  if (e > alignments_.size()) return std::nullopt;
  return Offsets{alignments_[b].first, alignments_[e - 1].second};
}

std::optional<Offsets> NormalizedString::original_to_normalized(size_t b, size_t e) const {
  if (b == e) return Offsets{b, e};
  if (b > e) return std::nullopt;
  if (original_.empty() && b == 0 && e == 0) return Offsets{0, normalized_.size()};
  std::optional<size_t> start, end;
  for (size_t i = 0; i < alignments_.size(); ++i) {
    const auto& a = alignments_[i];
    if (e < a.second) break;
    if (!start && b <= a.first && a.first != a.second) start = i;
    end = i + 1;
  }
  if (start && end) return Offsets{*start, *end};
  if (start) return Offsets{*start, *start};
  if (end) return Offsets{*end, *end};
  return std::nullopt;
}

namespace {
size_t encoded_len(char32_t c) {
  return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}
bool is_ascii(std::string_view s) {
  for (unsigned char b : s)
    if (b >= 0x80) return false;
  return true;
}
}  // namespace

bool NormalizedString::rewrite_in_place(size_t b, size_t e, const std::vector<CharChange>& changes) {
  size_t off = b, k = 0;
  for (; off < e && k < changes.size(); ++k) {
    const size_t n = utf8_len(static_cast<unsigned char>(normalized_[off]));
    if (changes[k].change != 0 || off + n > e || encoded_len(changes[k].c) != n) return false;
    off += n;
  }
  if (off != e || k != changes.size()) return false;
  off = b;
  for (const CharChange& ch : changes) {
    const size_t n = utf8_len(static_cast<unsigned char>(normalized_[off]));
    char* p = normalized_.data() + off;
    const char32_t c = ch.c;
    if (n == 1) {
      p[0] = static_cast<char>(c);
    } else {
      if (n == 2) {
        p[0] = static_cast<char>(0xC0 | (c >> 6));
      } else if (n == 3) {
        p[0] = static_cast<char>(0xE0 | (c >> 12));
        p[1] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      } else {
        p[0] = static_cast<char>(0xF0 | (c >> 18));
        p[1] = static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        p[2] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      }
      p[n - 1] = static_cast<char>(0x80 | (c & 0x3F));
      for (size_t j = 1; j < n; ++j) alignments_[off + j] = alignments_[off];
    }
    off += n;
  }
  return true;
}

void NormalizedString::transform_range(size_t b, size_t e, const std::vector<CharChange>& changes,
                                       size_t initial_offset) {
  // Every change replaces one char by one of the same byte length: same result, in place.
  if (initial_offset == 0 && rewrite_in_place(b, e, changes)) return;
  // Sizes of the input chars being replaced, consumed in order by the changes.
  thread_local std::vector<uint8_t> old_sizes;
  old_sizes.clear();
  for (size_t i = b; i < e;) {
    const size_t n = utf8_len(static_cast<unsigned char>(normalized_[i]));
    old_sizes.push_back(static_cast<uint8_t>(n));
    i += n;
  }
  size_t next_old = 0, offset = b;
  for (; next_old < initial_offset && next_old < old_sizes.size(); ++next_old)
    offset += old_sizes[next_old];
  std::string out;
  std::vector<Offsets> aligns;
  out.reserve(e - b + changes.size());
  aligns.reserve(e - b + changes.size());
  for (const CharChange& ch : changes) {
    Offsets align{0, 0};
    if (ch.change > 0) {
      if (offset >= 1 && offset - 1 < alignments_.size()) align = alignments_[offset - 1];
    } else if (offset < alignments_.size()) {
      align = alignments_[offset];
    } else if (!alignments_.empty()) {
      align = alignments_.back();
    }
    if (ch.change <= 0 && next_old < old_sizes.size()) offset += old_sizes[next_old++];
    for (int k = 0; k < -ch.change && next_old < old_sizes.size(); ++k)
      offset += old_sizes[next_old++];
    const size_t before = out.size();
    append_utf8(out, ch.c);
    aligns.insert(aligns.end(), out.size() - before, align);
  }
  if (b == 0 && e == normalized_.size()) {
    normalized_ = std::move(out);
    alignments_ = std::move(aligns);
    return;
  }
  normalized_.replace(b, e - b, out);
  alignments_.erase(alignments_.begin() + static_cast<ptrdiff_t>(b),
                    alignments_.begin() + static_cast<ptrdiff_t>(e));
  alignments_.insert(alignments_.begin() + static_cast<ptrdiff_t>(b), aligns.begin(), aligns.end());
}

void NormalizedString::transform(const std::vector<CharChange>& changes, size_t initial_offset) {
  transform_range(0, normalized_.size(), changes, initial_offset);
}

void NormalizedString::filter(const std::function<bool(char32_t)>& keep) {
  thread_local std::vector<CharChange> changes;
  changes.clear();
  changes.reserve(normalized_.size());
  int removed = 0;
  size_t removed_start = 0;
  std::optional<char32_t> last;
  for (size_t i = 0; i < normalized_.size();) {
    const char32_t c = next_char(normalized_, i);
    if (keep(c)) {
      if (last)
        changes.push_back({*last, -removed});
      else
        removed_start = static_cast<size_t>(removed);
      last = c;
      removed = 0;
    } else {
      ++removed;
    }
  }
  if (last) changes.push_back({*last, -removed});
  transform(changes, last ? removed_start : static_cast<size_t>(removed));
}

void NormalizedString::map(const std::function<char32_t(char32_t)>& f) {
  thread_local std::vector<CharChange> changes;
  changes.clear();
  changes.reserve(normalized_.size());
  for (size_t i = 0; i < normalized_.size();) changes.push_back({f(next_char(normalized_, i)), 0});
  transform(changes, 0);
}

void NormalizedString::prepend(std::string_view s) {
  if (normalized_.empty()) return;
  size_t i = 0;
  const char32_t first = next_char(normalized_, i);
  std::vector<CharChange> changes;
  size_t j = 0;
  for (bool head = true; j < s.size(); head = false) changes.push_back({next_char(s, j), !head});
  changes.push_back({first, 1});
  transform_range(0, i, changes, 0);
}

void NormalizedString::append(std::string_view s) {
  std::vector<CharChange> changes;
  size_t b = 0;
  if (!normalized_.empty()) {
    b = normalized_.size() - 1;
    while (b > 0 && (static_cast<unsigned char>(normalized_[b]) & 0xC0) == 0x80) --b;
    size_t i = b;
    changes.push_back({next_char(normalized_, i), 0});
  }
  for (size_t j = 0; j < s.size();) changes.push_back({next_char(s, j), 1});
  transform_range(b, normalized_.size(), changes, 0);
}

void NormalizedString::lowercase() {
  if (is_ascii(normalized_)) {  // 1:1 bytes: alignments unchanged
    for (char& ch : normalized_)
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
    return;
  }
  thread_local std::vector<CharChange> changes;
  changes.clear();
  changes.reserve(normalized_.size());
  for (size_t i = 0; i < normalized_.size();) {
    const char32_t c = next_char(normalized_, i);
    if (c < 0x80) {
      changes.push_back({(c >= 'A' && c <= 'Z') ? c + 32 : c, 0});
    } else if (c == 0x130) {  // the one unconditional multi-char lowercase mapping
      changes.push_back({'i', 0});
      changes.push_back({0x307, 1});
    } else {
      changes.push_back({static_cast<char32_t>(utf8proc_tolower(static_cast<int32_t>(c))), 0});
    }
  }
  transform(changes, 0);
}

void NormalizedString::uppercase() {
  std::vector<CharChange> changes;
  changes.reserve(normalized_.size());
  for (size_t i = 0; i < normalized_.size();) {
    const char32_t c = next_char(normalized_, i);
    if (c == 0xDF) {
      changes.push_back({'S', 0});
      changes.push_back({'S', 1});
    } else {
      changes.push_back({static_cast<char32_t>(utf8proc_toupper(static_cast<int32_t>(c))), 0});
    }
  }
  transform(changes, 0);
}

namespace {

int ccc(char32_t c) {
  return c < 0x300 ? 0 : utf8proc_get_property(static_cast<int32_t>(c))->combining_class;
}

// Canonical or compatibility decomposition, char by char: the first char of each
// decomposition replaces the input char (0), the others are insertions (+1); then canonical
// ordering of combining marks (stable sort by class within each run of non-starters).
std::vector<CharChange> decompose(const std::string& s, bool compat) {
  std::vector<CharChange> out;
  out.reserve(s.size());
  utf8proc_int32_t buf[32];
  const int opts = UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0);
  for (size_t i = 0; i < s.size();) {
    const char32_t c = next_char(s, i);
    if (c < 0xA0) {
      out.push_back({c, 0});
      continue;
    }
    int last_boundclass = 0;
    const auto n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, 32,
                                           static_cast<utf8proc_option_t>(opts), &last_boundclass);
    if (n <= 0 || n > 32) {
      out.push_back({c, 0});
      continue;
    }
    for (utf8proc_ssize_t k = 0; k < n; ++k)
      out.push_back({static_cast<char32_t>(buf[k]), k == 0 ? 0 : 1});
  }
  for (size_t i = 0; i < out.size();) {
    if (ccc(out[i].c) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < out.size() && ccc(out[j].c) != 0) ++j;
    std::stable_sort(out.begin() + static_cast<ptrdiff_t>(i),
                     out.begin() + static_cast<ptrdiff_t>(j),
                     [](const CharChange& a, const CharChange& b) { return ccc(a.c) < ccc(b.c); });
    i = j;
  }
  return out;
}

// Primary composite of (a, b), if any.
std::optional<char32_t> compose_pair(char32_t a, char32_t b) {
  utf8proc_int32_t buf[2] = {static_cast<utf8proc_int32_t>(a), static_cast<utf8proc_int32_t>(b)};
  const auto n = utf8proc_normalize_utf32(buf, 2, UTF8PROC_COMPOSE);
  if (n == 1) return static_cast<char32_t>(buf[0]);
  return std::nullopt;
}

// Canonical composition of a decomposed sequence; an absorbed char folds into its starter's
// change (each input char is consumed exactly once: new change = sum of changes - absorbed).
std::vector<CharChange> compose(std::vector<CharChange> d) {
  std::vector<CharChange> out;
  out.reserve(d.size());
  std::optional<size_t> starter;
  int last_class = -1;
  for (const CharChange& ch : d) {
    const int cc = ccc(ch.c);
    if (starter && (out.size() == *starter + 1 || last_class < cc)) {
      if (auto comp = compose_pair(out[*starter].c, ch.c)) {
        out[*starter].c = *comp;
        out[*starter].change += ch.change - 1;
        continue;
      }
    }
    if (cc == 0) {
      starter = out.size();
      last_class = 0;
    } else {
      last_class = cc;
    }
    out.push_back(ch);
  }
  return out;
}

bool all_below(const std::string& s, unsigned char limit) {
  for (unsigned char b : s)
    if (b >= limit) return false;
  return true;
}

}  // namespace

void NormalizedString::nfd() {
  if (all_below(normalized_, 0x80)) return;
  transform(decompose(normalized_, false), 0);
}
void NormalizedString::nfkd() {
  if (all_below(normalized_, 0x80)) return;
  transform(decompose(normalized_, true), 0);
}
void NormalizedString::nfc() {
  if (all_below(normalized_, 0x80)) return;
  transform(compose(decompose(normalized_, false)), 0);
}
void NormalizedString::nfkc() {
  if (all_below(normalized_, 0x80)) return;
  transform(compose(decompose(normalized_, true)), 0);
}

namespace {
void lrstrip(NormalizedString& s, bool left, bool right) {
  std::vector<char32_t> chars;
  for (size_t i = 0; i < s.get().size();) chars.push_back(next_char(s.get(), i));
  size_t lead = 0, trail = 0;
  if (left)
    while (lead < chars.size() && is_whitespace(chars[lead])) ++lead;
  if (right)
    while (trail < chars.size() - lead && is_whitespace(chars[chars.size() - 1 - trail])) ++trail;
  if (lead == 0 && trail == 0) return;
  std::vector<CharChange> changes;
  for (size_t i = lead; i + trail < chars.size(); ++i)
    changes.push_back({chars[i], i + trail + 1 == chars.size() ? -static_cast<int>(trail) : 0});
  s.transform(changes, lead);
}
}  // namespace

void NormalizedString::lstrip() {
  lrstrip(*this, true, false);
}
void NormalizedString::rstrip() {
  lrstrip(*this, false, true);
}
void NormalizedString::strip() {
  lrstrip(*this, true, true);
}

void NormalizedString::replace(const std::vector<Match>& matches, std::string_view content) {
  std::string out;
  std::vector<Offsets> aligns;
  out.reserve(normalized_.size());
  aligns.reserve(normalized_.size());
  size_t last = 0;
  for (const Match& m : matches) {
    if (!m.is_match) continue;
    out.append(normalized_, last, m.begin - last);
    aligns.insert(aligns.end(), alignments_.begin() + static_cast<ptrdiff_t>(last),
                  alignments_.begin() + static_cast<ptrdiff_t>(m.begin));
    // Every char of `content` is an insertion placed after the whole match: it takes the
    // alignment of the match's last byte (HF replace).
    Offsets align{0, 0};
    if (m.end >= 1) align = alignments_[m.end - 1];
    for (size_t j = 0; j < content.size();) {
      const size_t before = out.size();
      append_utf8(out, next_char(content, j));
      aligns.insert(aligns.end(), out.size() - before, align);
    }
    last = m.end;
  }
  out.append(normalized_, last);
  aligns.insert(aligns.end(), alignments_.begin() + static_cast<ptrdiff_t>(last),
                alignments_.end());
  normalized_ = std::move(out);
  alignments_ = std::move(aligns);
}

NormalizedString NormalizedString::slice(size_t b, size_t e) const {
  NormalizedString r;
  Offsets orig{b, e};
  if (b != e) {
    orig = {alignments_[b].first, alignments_[e - 1].second};
  } else if (normalized_.empty() && b == 0) {
    orig = {0, original_.size()};
  }
  orig.second = std::min(std::max(orig.second, orig.first), original_.size());
  orig.first = std::min(orig.first, orig.second);
  r.original_ = original_.substr(orig.first, orig.second - orig.first);
  r.normalized_ = normalized_.substr(b, e - b);
  r.alignments_.reserve(e - b);
  for (size_t i = b; i < e; ++i) {
    const auto& a = alignments_[i];
    r.alignments_.emplace_back(a.first >= orig.first ? a.first - orig.first : 0,
                               a.second >= orig.first ? a.second - orig.first : 0);
  }
  r.shift_ = shift_ + orig.first;
  return r;
}

std::vector<NormalizedString> NormalizedString::split(const std::vector<Match>& matches,
                                                      SplitBehavior behavior) const {
  struct Piece {
    size_t b, e;
    bool remove;
  };
  std::vector<Piece> pieces;
  pieces.reserve(matches.size());
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const auto& m : matches) pieces.push_back({m.begin, m.end, false});
      break;
    case SplitBehavior::Removed:
      for (const auto& m : matches) pieces.push_back({m.begin, m.end, m.is_match});
      break;
    case SplitBehavior::Contiguous: {
      bool prev = false;
      for (const auto& m : matches) {
        if (m.is_match == prev && !pieces.empty())
          pieces.back().e = m.end;
        else
          pieces.push_back({m.begin, m.end, false});
        prev = m.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithPrevious: {
      bool prev = false;
      for (const auto& m : matches) {
        if (m.is_match && !prev && !pieces.empty())
          pieces.back().e = m.end;
        else
          pieces.push_back({m.begin, m.end, false});
        prev = m.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool prev = false;
      for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
        if (it->is_match && !prev && !pieces.empty())
          pieces.back().b = it->begin;
        else
          pieces.push_back({it->begin, it->end, false});
        prev = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    }
  }
  std::vector<NormalizedString> out;
  out.reserve(pieces.size());
  for (const auto& p : pieces)
    if (!p.remove) out.push_back(slice(p.b, p.e));
  return out;
}

PreTokenizedString::PreTokenizedString(NormalizedString s) : original_(s.original()) {
  splits_.push_back({std::move(s), std::nullopt});
}

void PreTokenizedString::split(
    const std::function<void(size_t, NormalizedString&&, std::vector<NormalizedString>&)>& fn) {
  std::vector<Split> next;
  next.reserve(splits_.size() * 2);
  thread_local std::vector<NormalizedString> t_pieces;  // keeps its capacity across calls
  std::vector<NormalizedString> pieces = std::move(t_pieces);
  for (size_t i = 0; i < splits_.size(); ++i) {
    if (splits_[i].tokens) {
      next.push_back(std::move(splits_[i]));
      continue;
    }
    pieces.clear();
    fn(i, std::move(splits_[i].normalized), pieces);
    if (next.size() + pieces.size() > next.capacity())
      next.reserve(std::max(next.size() + pieces.size(), next.capacity() * 2));
    for (auto& p : pieces)
      if (!p.empty()) next.push_back({std::move(p), std::nullopt});
  }
  pieces.clear();
  t_pieces = std::move(pieces);
  splits_ = std::move(next);
}

void PreTokenizedString::normalize(const std::function<void(NormalizedString&)>& fn) {
  for (auto& s : splits_)
    if (!s.tokens) fn(s.normalized);
}

void PreTokenizedString::tokenize(const Model& model) {
  for (auto& s : splits_)
    if (!s.tokens) s.tokens = model.tokenize(s.normalized.get());
}

}  // namespace lmf::tok
