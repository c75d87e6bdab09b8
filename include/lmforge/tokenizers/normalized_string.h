// Text under normalization with byte alignments back to the original (HF NormalizedString), and
// the list of pre-tokenized splits (HF PreTokenizedString). Offsets here are BYTE offsets.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lmforge/tokenizers/model.h"

namespace lmf::tok {

using Offsets = std::pair<size_t, size_t>;

// How Split/Punctuation/... treat the delimiter matches (HF SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// One piece of a string as found by a pattern: byte range and whether it is a match.
// A pattern's result covers the whole string, in order (HF Pattern::find_matches).
struct Match {
  size_t begin = 0, end = 0;
  bool is_match = false;
};

// Change of one output char in transform(): 0 replaces one input char, +1 inserts a new char
// (aligned like the previous byte), -n replaces one input char and removes the n following.
struct CharChange {
  char32_t c;
  int change;
};

class NormalizedString {
 public:
  NormalizedString() = default;
  explicit NormalizedString(std::string_view original);

  const std::string& get() const { return normalized_; }
  const std::string& original() const { return original_; }
  size_t size() const { return normalized_.size(); }
  bool empty() const { return normalized_.empty(); }
  // Byte range of this (sub)string in the full original text.
  Offsets offsets_original() const { return {shift_, shift_ + original_.size()}; }
  // Per normalized byte: byte range in original() (relative to this substring's original).
  const std::vector<Offsets>& alignments() const { return alignments_; }
  // Original byte range (relative to original()) of the normalized byte range [b, e).
  std::optional<Offsets> convert_normalized(size_t b, size_t e) const;
  // Original byte range, relative to original(), for an original-relative range: identity, but
  // maps an original range to the normalized range (HF Range::Original).
  std::optional<Offsets> original_to_normalized(size_t b, size_t e) const;

  // Replaces the whole normalized text by `changes` (HF transform with initial_offset = number
  // of leading input chars removed).
  void transform(const std::vector<CharChange>& changes, size_t initial_offset);
  // Same, restricted to the normalized byte range [b, e).
  void transform_range(size_t b, size_t e, const std::vector<CharChange>& changes,
                       size_t initial_offset);
  // Keeps the chars for which keep(c) is true.
  void filter(const std::function<bool(char32_t)>& keep);
  // Maps every char to one char.
  void map(const std::function<char32_t(char32_t)>& f);
  void prepend(std::string_view s);
  void append(std::string_view s);
  void lowercase();
  void uppercase();
  void nfd();
  void nfkd();
  void nfc();
  void nfkc();
  void lstrip();
  void rstrip();
  void strip();
  // Replaces every match (is_match) of a pattern found in get() by `content`.
  void replace(const std::vector<Match>& matches, std::string_view content);
  // Sub-string for the normalized byte range [b, e) (with its original slice and alignments).
  NormalizedString slice(size_t b, size_t e) const;
  // Splits on the matches of a pattern, with HF's delimiter behaviours (empty pieces kept; the
  // pre-tokenized string drops them).
  std::vector<NormalizedString> split(const std::vector<Match>& matches,
                                      SplitBehavior behavior) const;

 private:
  // transform_range when every change is 0 and keeps its char's byte length (false otherwise,
  // nothing changed).
  bool rewrite_in_place(size_t b, size_t e, const std::vector<CharChange>& changes);

  std::string original_, normalized_;
  std::vector<Offsets> alignments_;
  size_t shift_ = 0;
};

// A normalized string cut into splits; a split with tokens is final (added tokens, or after the
// model ran) and is not split again.
struct Split {
  NormalizedString normalized;
  std::optional<std::vector<Token>> tokens;
};

class PreTokenizedString {
 public:
  PreTokenizedString() = default;
  explicit PreTokenizedString(NormalizedString s);
  PreTokenizedString(std::string original, std::vector<Split> splits)
      : original_(std::move(original)), splits_(std::move(splits)) {}

  // Calls fn(index, split, out) for every split without tokens; `out` receives the new pieces
  // (empty ones are dropped). Splits with tokens are kept as they are.
  void split(
      const std::function<void(size_t, NormalizedString&&, std::vector<NormalizedString>&)>& fn);
  // Runs fn on every split without tokens.
  void normalize(const std::function<void(NormalizedString&)>& fn);
  // Gives every split without tokens the model's tokens.
  void tokenize(const Model& model);

  const std::string& original() const { return original_; }
  std::vector<Split>& splits() { return splits_; }
  const std::vector<Split>& splits() const { return splits_; }

 private:
  std::string original_;
  std::vector<Split> splits_;
};

}  // namespace lmf::tok
