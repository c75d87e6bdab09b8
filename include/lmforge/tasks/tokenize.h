// Tokenizing text with a model's tokenizer (for `lmforge tokenize`): a model folder or a
// tokenizer.json file, optional truncation with overflowing windows, single texts or pairs.
#pragma once
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "lmforge/tokenizers/encoding.h"

namespace lmf::tok {
class Tokenizer;
}

namespace lmf::tasks {

struct TokenizeOptions {
  std::optional<size_t> max_length;  // truncate (longest first) to this many tokens
  size_t stride = 0;                 // overlap of the overflowing windows
  bool add_special_tokens = true;    // [CLS], [SEP], <s>, ...
};

class TextTokenizer {
 public:
  // `path`: a model folder (tokenizer.json, or vocab.txt + tokenizer_config.json) or a
  // tokenizer.json file. IoError when it is neither; the tokenizer's own errors otherwise.
  static TextTokenizer load(const std::string& path, const TokenizeOptions& options = {});
  ~TextTokenizer();
  TextTokenizer(TextTokenizer&&) noexcept;
  TextTokenizer& operator=(TextTokenizer&&) noexcept;

  tok::Encoding encode(const std::string& text) const;
  tok::Encoding encode(const std::string& text, const std::string& pair) const;

 private:
  TextTokenizer(std::unique_ptr<tok::Tokenizer> t, TokenizeOptions o);
  std::unique_ptr<tok::Tokenizer> tok_;
  TokenizeOptions opt_;
};

}  // namespace lmf::tasks
