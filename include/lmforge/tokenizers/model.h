// A tokenization model (the `model` of a Hugging Face tokenizer.json): turns one pre-tokenized
// piece into tokens. Implemented by WordPiece, BPE and Unigram.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmf::tok {

struct Token {
  uint32_t id = 0;
  std::string value;
  size_t begin = 0, end = 0;  // byte offsets of the token within the piece given to tokenize()
};

class Model {
 public:
  virtual ~Model() = default;
  // Tokens for one piece (already normalized and pre-tokenized), as HF's Model::tokenize.
  virtual std::vector<Token> tokenize(std::string_view piece) const = 0;
  virtual std::optional<uint32_t> token_to_id(std::string_view token) const = 0;
  virtual std::optional<std::string> id_to_token(uint32_t id) const = 0;
  virtual size_t vocab_size() const = 0;
};

}  // namespace lmf::tok
