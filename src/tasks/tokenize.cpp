#include "lmforge/tasks/tokenize.h"

#include <filesystem>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::tasks {

TextTokenizer::TextTokenizer(std::unique_ptr<tok::Tokenizer> t, TokenizeOptions o)
    : tok_(std::move(t)), opt_(o) {}
TextTokenizer::~TextTokenizer() = default;
TextTokenizer::TextTokenizer(TextTokenizer&&) noexcept = default;
TextTokenizer& TextTokenizer::operator=(TextTokenizer&&) noexcept = default;

TextTokenizer TextTokenizer::load(const std::string& path, const TokenizeOptions& options) {
  namespace fs = std::filesystem;
  std::unique_ptr<tok::Tokenizer> t;
  if (fs::is_regular_file(path)) {
    t = std::make_unique<tok::Tokenizer>(tok::Tokenizer::from_file(path));
  } else {
    LMF_CHECK(fs::is_directory(path), IoError,
              "--model '{}' is neither a model folder nor a tokenizer.json file", path);
    t = std::make_unique<tok::Tokenizer>(tok::Tokenizer::from_pretrained(path));
  }
  if (options.max_length) {
    tok::TruncationParams p;
    p.max_length = *options.max_length;
    p.stride = options.stride;
    t->set_truncation(p);
  }
  return TextTokenizer(std::move(t), options);
}

tok::Encoding TextTokenizer::encode(const std::string& text) const {
  return tok_->encode(text, opt_.add_special_tokens);
}

tok::Encoding TextTokenizer::encode(const std::string& text, const std::string& pair) const {
  return tok_->encode(text, pair, opt_.add_special_tokens);
}

}  // namespace lmf::tasks
