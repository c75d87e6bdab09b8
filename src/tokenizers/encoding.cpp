// Encoding operations with HF semantics: truncation into overlapping windows, merging of two
// sequences (combining their overflowing windows), padding.
#include "lmforge/tokenizers/encoding.h"

#include <algorithm>

#include "lmforge/core/error.h"

namespace lmf::tok {

std::vector<std::optional<size_t>> Encoding::sequence_ids() const {
  std::vector<std::optional<size_t>> out(size());
  if (sequence_ranges.empty()) {
    for (size_t i = 0; i < out.size(); ++i)
      if (!special_tokens_mask.empty() && special_tokens_mask[i] == 0) out[i] = 0;
    return out;
  }
  for (const auto& r : sequence_ranges)
    for (size_t i = r.begin; i < r.end && i < out.size(); ++i) out[i] = r.id;
  return out;
}

void Encoding::set_sequence_id(size_t id) {
  for (auto& r : sequence_ranges)
    if (r.id == id) {
      r.begin = 0;
      r.end = size();
      return;
    }
  sequence_ranges.push_back({id, 0, size()});
}

void Encoding::push_back(uint32_t id, std::string token, Offsets off, std::optional<uint32_t> word,
                         uint32_t type_id, uint32_t special) {
  ids.push_back(id);
  tokens.push_back(std::move(token));
  offsets.push_back(off);
  word_ids.push_back(word);
  type_ids.push_back(type_id);
  special_tokens_mask.push_back(special);
  attention_mask.push_back(1);
}

namespace {
Encoding slice_of(const Encoding& e, size_t b, size_t s) {
  Encoding r;
  auto cut = [&](const auto& v) { return std::vector(v.begin() + b, v.begin() + s); };
  r.ids = cut(e.ids);
  r.type_ids = cut(e.type_ids);
  r.tokens = cut(e.tokens);
  r.word_ids = cut(e.word_ids);
  r.offsets = cut(e.offsets);
  r.special_tokens_mask = cut(e.special_tokens_mask);
  r.attention_mask = cut(e.attention_mask);
  return r;
}
}  // namespace

void Encoding::truncate(size_t max_len, size_t stride, Direction direction) {
  const size_t n = size();
  if (max_len >= n) return;
  if (max_len == 0) {
    Encoding whole = std::move(*this);
    *this = Encoding{};
    overflowing.push_back(std::move(whole));
    return;
  }
  LMF_CHECK(stride < max_len, ValueError,
            "truncation stride ({}) must be smaller than the length kept per window ({}; the "
            "max_length minus the special tokens)",
            stride, max_len);
  const size_t step = max_len - stride;
  std::vector<Offsets> parts;
  if (direction == Direction::Right) {
    for (size_t start = 0; start < n; start += step) {
      const size_t stop = std::min(start + max_len, n);
      parts.emplace_back(start, stop);
      if (stop == n) break;
    }
  } else {
    for (size_t k = 0;; k += step) {
      if (k >= n) break;
      const size_t stop = n - k;
      const size_t start = stop > max_len ? stop - max_len : 0;
      parts.emplace_back(start, stop);
      if (start == 0) break;
    }
  }
  Encoding first = slice_of(*this, parts[0].first, parts[0].second);
  for (size_t i = 1; i < parts.size(); ++i)
    first.overflowing.push_back(slice_of(*this, parts[i].first, parts[i].second));
  *this = std::move(first);
}

void Encoding::merge_with(Encoding pair, bool growing_offsets) {
  std::vector<Encoding> over;
  for (const Encoding& so : overflowing) {
    Encoding a = so;
    a.merge_with(pair, growing_offsets);
    over.push_back(std::move(a));
    for (const Encoding& po : pair.overflowing) {
      Encoding b = so;
      b.merge_with(po, growing_offsets);
      over.push_back(std::move(b));
    }
  }
  for (const Encoding& po : pair.overflowing) {
    Encoding b = *this;
    b.merge_with(po, growing_offsets);
    over.push_back(std::move(b));
  }
  const size_t n0 = size();
  for (const auto& r : pair.sequence_ranges) {
    SequenceRange nr{r.id, r.begin + n0, r.end + n0};
    bool replaced = false;
    for (auto& mine : sequence_ranges)
      if (mine.id == r.id) {
        mine = nr;
        replaced = true;
      }
    if (!replaced) sequence_ranges.push_back(nr);
  }
  auto append = [](auto& dst, auto& src) {
    dst.insert(dst.end(), std::make_move_iterator(src.begin()), std::make_move_iterator(src.end()));
  };
  append(ids, pair.ids);
  append(type_ids, pair.type_ids);
  append(tokens, pair.tokens);
  append(word_ids, pair.word_ids);
  const size_t shift = growing_offsets && !offsets.empty() ? offsets.back().second : 0;
  for (const auto& o : pair.offsets) offsets.emplace_back(o.first + shift, o.second + shift);
  append(special_tokens_mask, pair.special_tokens_mask);
  append(attention_mask, pair.attention_mask);
  overflowing = std::move(over);
}

void Encoding::reserve(size_t n) {
  ids.reserve(n);
  type_ids.reserve(n);
  tokens.reserve(n);
  offsets.reserve(n);
  word_ids.reserve(n);
  special_tokens_mask.reserve(n);
  attention_mask.reserve(n);
}

Encoding Encoding::merge(std::vector<Encoding> encodings, bool growing_offsets) {
  Encoding out;
  size_t n = 0;
  for (const auto& e : encodings) n += e.size();
  out.reserve(n);
  for (auto& e : encodings) out.merge_with(std::move(e), growing_offsets);
  return out;
}

void Encoding::pad(size_t target, uint32_t pad_id, uint32_t pad_type_id,
                   const std::string& pad_token, Direction direction) {
  for (auto& o : overflowing) o.pad(target, pad_id, pad_type_id, pad_token, direction);
  if (size() >= target) return;
  const size_t k = target - size();
  auto grow = [&](auto& v, auto value) {
    if (direction == Direction::Left)
      v.insert(v.begin(), k, value);
    else
      v.insert(v.end(), k, value);
  };
  grow(ids, pad_id);
  grow(type_ids, pad_type_id);
  grow(tokens, pad_token);
  grow(word_ids, std::optional<uint32_t>{});
  grow(attention_mask, 0u);
  grow(special_tokens_mask, 1u);
  grow(offsets, Offsets{0, 0});
  if (direction == Direction::Left)
    for (auto& r : sequence_ranges) {
      r.begin += k;
      r.end += k;
    }
}

}  // namespace lmf::tok
