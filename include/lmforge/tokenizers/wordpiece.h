// WordPiece (BERT): greedy longest-match-first sub-words, "##" continuation prefix, [UNK] for
// words longer than max_input_chars_per_word or with no complete segmentation.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lmforge/tokenizers/model.h"

namespace lmf::tok {

class WordPiece final : public Model {
 public:
  WordPiece(const std::vector<std::pair<std::string, uint32_t>>& vocab,
            std::string unk_token = "[UNK]", std::string continuing_subword_prefix = "##",
            size_t max_input_chars_per_word = 100);
  ~WordPiece() override;
  // vocab.txt: one token per line, the line number is the id. Throws IoError.
  static std::unique_ptr<WordPiece> from_vocab_file(const std::filesystem::path& path,
                                                    std::string unk_token = "[UNK]");

  std::vector<Token> tokenize(std::string_view piece) const override;
  std::optional<uint32_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> id_to_token(uint32_t id) const override;
  size_t vocab_size() const override;
  const std::string& unk_token() const { return unk_; }
  const std::string& continuing_subword_prefix() const { return prefix_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string unk_, prefix_;
  size_t max_chars_;
};

}  // namespace lmf::tok
