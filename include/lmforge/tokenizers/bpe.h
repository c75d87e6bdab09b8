// Byte-pair-encoding model with Hugging Face `tokenizers` semantics (GPT-2/RoBERTa byte-level,
// continuing prefixes, end-of-word suffixes, byte fallback, unk fusing, ignore_merges).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lmforge/tokenizers/model.h"

namespace lmf::tok {

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::optional<std::string> continuing_subword_prefix;
  std::optional<std::string> end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  size_t cache_capacity = 10000;  // words cached per thread; 0 disables the cache
};

// Transparent string hashing so that lookups by string_view do not allocate.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>>;

class BPE final : public Model {
 public:
  // merges are ranked by position; a later duplicate pair overrides an earlier one (as HF).
  BPE(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
      BpeOptions options = {});
  ~BPE() override;

  // The `model` object of a tokenizer.json ({"type": "BPE", "vocab": {...}, "merges": [...]}).
  // Throws ValueError on a non-null, non-zero dropout (HF's dropout is random).
  static std::unique_ptr<BPE> from_json(const nlohmann::json& model);
  // Legacy GPT-2/RoBERTa files: vocab.json ({token: id}) and merges.txt ("a b" per line).
  static std::unique_ptr<BPE> from_files(const std::string& vocab_json,
                                         const std::string& merges_txt, BpeOptions options = {});

  std::vector<Token> tokenize(std::string_view piece) const override;
  std::optional<uint32_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> id_to_token(uint32_t id) const override;
  size_t vocab_size() const override { return vocab_.size(); }

  const BpeOptions& options() const { return options_; }
  const Vocab& vocab() const { return vocab_; }

  // One merged symbol of a word: a vocabulary id and its byte length within the piece.
  struct Symbol {
    uint32_t id;
    uint32_t len;
  };
  // The symbols of one piece after all merges (uncached); exposed for tests and benchmarks.
  std::vector<Symbol> merge_word(std::string_view piece) const;

 private:
  struct PairMap;
  void merge_word_into(std::string_view piece, std::vector<Symbol>& word) const;

  Vocab vocab_;
  std::vector<std::string> vocab_r_;  // id -> token
  std::vector<uint8_t> has_id_;       // whether vocab_r_[id] is a real token
  std::unique_ptr<PairMap> merges_;
  BpeOptions options_;
  std::vector<uint32_t> char_ids_;  // id of each single-char token (code point < 1024) or ~0u
  uint64_t cache_key_;              // distinguishes this instance in the per-thread caches
};

}  // namespace lmf::tok
