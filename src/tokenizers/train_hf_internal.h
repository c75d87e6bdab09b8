// Shared by the HF trainers (train_hf.cpp, train_unigram.cpp): progress lines, UTF-8 helpers,
// the Unigram trainer's entry point.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lmforge/tokenizers/unicode.h"

namespace lmf::tok {

// Rate-limited progress lines (at most one per 2 s unless forced).
struct Progress {
  const std::function<void(const std::string&)>* fn = nullptr;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  void tick(const std::function<std::string()>& msg, bool force = false) {
    if (!fn || !*fn) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last < std::chrono::seconds(2)) return;
    last = now;
    (*fn)(msg());
  }
};

inline std::vector<char32_t> chars_of(std::string_view s) {
  std::vector<char32_t> out;
  for (size_t i = 0; i < s.size();) out.push_back(next_char(s, i));
  return out;
}

inline std::string utf8(char32_t c) {
  std::string s;
  append_utf8(s, c);
  return s;
}

struct UnigramTrainConfig {
  size_t vocab_size = 8000;
  std::vector<std::string> special_tokens;
  std::string unk_token;
  std::vector<char32_t> initial_alphabet;
  double shrinking_factor = 0.75;
  unsigned n_sub_iterations = 2;
  size_t max_piece_length = 16;
  size_t seed_size = 1000000;
  const std::function<void(const std::string&)>* progress = nullptr;
};

struct UnigramTrainOutput {
  std::vector<std::pair<std::string, double>> pieces;  // by id, specials first
  std::optional<uint32_t> unk_id;
};

// HF UnigramTrainer::do_train on (word, count) pairs (sorted by word).
UnigramTrainOutput train_unigram_words(const std::vector<std::pair<std::string, uint64_t>>& words,
                                       const UnigramTrainConfig& cfg);

}  // namespace lmf::tok
