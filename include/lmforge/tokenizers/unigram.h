// Unigram language-model tokenizer with Hugging Face `tokenizers` semantics: Viterbi over a byte
// trie of scored pieces, consecutive unknown chars fused into one unk token, optional byte
// fallback (<0xAB> pieces).
#pragma once
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

class Unigram final : public Model {
 public:
  // vocab: (piece, log-probability score), the id is the position. Throws ValueError on an
  // empty vocab or an unk_id past its end.
  Unigram(std::vector<std::pair<std::string, double>> vocab, std::optional<size_t> unk_id,
          bool byte_fallback = false);
  ~Unigram() override;

  // The `model` object of a tokenizer.json: {"type": "Unigram", "unk_id": 0,
  // "vocab": [["<unk>", 0.0], ...], "byte_fallback": false}.
  static std::unique_ptr<Unigram> from_json(const nlohmann::json& model);

  // Best segmentation of `piece` as strings (HF Unigram::encode): unknown runs fused.
  std::vector<std::string> encode(std::string_view piece) const;

  std::vector<Token> tokenize(std::string_view piece) const override;
  std::optional<uint32_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> id_to_token(uint32_t id) const override;
  size_t vocab_size() const override { return vocab_.size(); }

  std::optional<size_t> unk_id() const { return unk_id_; }
  bool byte_fallback() const { return byte_fallback_; }
  const std::vector<std::pair<std::string, double>>& pieces() const { return vocab_; }

 private:
  struct Trie;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::vector<std::pair<std::string, double>> vocab_;
  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> token_to_id_;
  std::unique_ptr<Trie> trie_;
  std::optional<size_t> unk_id_;
  bool byte_fallback_ = false;
  double min_score_ = 0;
};

}  // namespace lmf::tok
