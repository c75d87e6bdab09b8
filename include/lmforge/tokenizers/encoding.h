// The result of tokenizing one input (or one pair): ids, type ids, tokens, offsets, word ids,
// masks and overflowing windows, with HF's truncate / merge / pad semantics.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/tokenizers/normalized_string.h"

namespace lmf::tok {

enum class Direction { Left, Right };

// Token range [begin, end) that belongs to input sequence `id` (0 = first, 1 = pair).
struct SequenceRange {
  size_t id = 0, begin = 0, end = 0;
};

struct Encoding {
  std::vector<uint32_t> ids;
  std::vector<uint32_t> type_ids;
  std::vector<std::string> tokens;
  // Offsets into the original text of the token's sequence: Unicode code points (what HF's
  // Python API returns as offset_mapping) unless the encode call asked for bytes. (0, 0) for
  // special and padding tokens.
  std::vector<Offsets> offsets;
  std::vector<std::optional<uint32_t>> word_ids;
  std::vector<uint32_t> special_tokens_mask;
  std::vector<uint32_t> attention_mask;
  std::vector<Encoding> overflowing;
  std::vector<SequenceRange> sequence_ranges;

  size_t size() const { return ids.size(); }
  void reserve(size_t n);  // every per-token array
  bool empty() const { return ids.empty(); }
  // Per token: the input sequence it came from, none for special and padding tokens.
  std::vector<std::optional<size_t>> sequence_ids() const;
  void set_sequence_id(size_t id);
  void push_back(uint32_t id, std::string token, Offsets off, std::optional<uint32_t> word,
                 uint32_t type_id, uint32_t special = 0);

  // Keeps max_len tokens; the rest goes to `overflowing` as windows overlapping by `stride`
  // (HF Encoding::truncate). Throws ValueError when stride >= max_len > 0.
  void truncate(size_t max_len, size_t stride, Direction direction);
  // Appends `pair` (and combines overflowing windows as HF's merge_with does).
  void merge_with(Encoding pair, bool growing_offsets);
  static Encoding merge(std::vector<Encoding> encodings, bool growing_offsets);
  // Pads (this and its overflowing windows) to target_length.
  void pad(size_t target_length, uint32_t pad_id, uint32_t pad_type_id,
           const std::string& pad_token, Direction direction);
};

}  // namespace lmf::tok
