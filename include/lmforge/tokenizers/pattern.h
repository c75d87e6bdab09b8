// Patterns used by Split, Replace and the pre-tokenizers: each returns pieces covering the whole
// text in order, marked as match or not (HF Pattern). Regexes run on PCRE2 (UTF + UCP mode).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/tokenizers/normalized_string.h"

namespace lmf::tok {

// Every non-overlapping occurrence of `needle` (an empty needle matches nothing).
std::vector<Match> find_matches(std::string_view text, std::string_view needle);
// Every char c with pred(c) is one match of its own.
std::vector<Match> find_matches(std::string_view text, const std::function<bool(char32_t)>& pred);

// A compiled regular expression (thread-safe to use from several threads at once).
class Regex {
 public:
  // Throws ValueError naming the pattern and the PCRE2 error when it does not compile.
  explicit Regex(std::string_view pattern);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  const std::string& pattern() const { return pattern_; }
  // Matches (empty matches are skipped, as HF's onig-based SysRegex does).
  std::vector<Match> find_matches(std::string_view text) const;

 private:
  struct Impl;
  std::string pattern_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lmf::tok
