// WordPiece model: longest-match-first over the vocabulary, with a separate table of
// continuation pieces keyed without their prefix so lookups never build strings.
#include "lmforge/tokenizers/wordpiece.h"

#include <fstream>
#include <unordered_map>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::tok {

namespace {
struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using Map = std::unordered_map<std::string, uint32_t, SvHash, std::equal_to<>>;
}  // namespace

struct WordPiece::Impl {
  Map vocab;          // every token
  Map continuations;  // tokens that start with the prefix, keyed without it
  std::unordered_map<uint32_t, std::string> by_id;
  std::optional<uint32_t> unk_id;
};

WordPiece::WordPiece(const std::vector<std::pair<std::string, uint32_t>>& vocab,
                     std::string unk_token, std::string prefix, size_t max_chars)
    : impl_(std::make_unique<Impl>()),
      unk_(std::move(unk_token)),
      prefix_(std::move(prefix)),
      max_chars_(max_chars) {
  impl_->vocab.reserve(vocab.size());
  for (const auto& [tok, id] : vocab) {
    impl_->vocab[tok] = id;
    impl_->by_id[id] = tok;
  }
  for (const auto& [tok, id] : impl_->vocab)
    if (!prefix_.empty() && tok.size() >= prefix_.size() &&
        tok.compare(0, prefix_.size(), prefix_) == 0)
      impl_->continuations.emplace(tok.substr(prefix_.size()), id);
  if (auto it = impl_->vocab.find(unk_); it != impl_->vocab.end()) impl_->unk_id = it->second;
}

WordPiece::~WordPiece() = default;

std::unique_ptr<WordPiece> WordPiece::from_vocab_file(const std::filesystem::path& path,
                                                      std::string unk_token) {
  std::ifstream f(path, std::ios::binary);
  LMF_CHECK(f.good(), IoError, "cannot read WordPiece vocabulary '{}'", path.string());
  std::vector<std::pair<std::string, uint32_t>> vocab;
  std::string line;
  uint32_t id = 0;
  while (std::getline(f, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
    // transformers' load_vocab strips each line (trailing whitespace included)
    size_t b = 0, e = line.size();
    while (b < e && (line[b] == ' ' || line[b] == '\t')) ++b;
    while (e > b && (line[e - 1] == ' ' || line[e - 1] == '\t')) --e;
    vocab.emplace_back(line.substr(b, e - b), id++);
  }
  LMF_CHECK(!vocab.empty(), IoError, "WordPiece vocabulary '{}' is empty", path.string());
  return std::make_unique<WordPiece>(vocab, std::move(unk_token));
}

std::vector<Token> WordPiece::tokenize(std::string_view s) const {
  auto unk = [&]() -> std::vector<Token> {
    LMF_CHECK(impl_->unk_id.has_value(), ValueError,
              "WordPiece: the unk token '{}' is not in the vocabulary", unk_);
    return {Token{*impl_->unk_id, unk_, 0, s.size()}};
  };
  if (utf8_char_count(s) > max_chars_) return unk();
  std::vector<Token> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.size();
    const Map& table = start == 0 || prefix_.empty() ? impl_->vocab : impl_->continuations;
    bool found = false;
    while (start < end) {
      auto it = table.find(s.substr(start, end - start));
      if (it != table.end()) {
        std::string value = start == 0 ? std::string(s.substr(0, end))
                                       : prefix_ + std::string(s.substr(start, end - start));
        out.push_back(Token{it->second, std::move(value), start, end});
        found = true;
        break;
      }
      --end;  // step back over one char
      while (end > start && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
    }
    if (!found) return unk();
    start = end;
  }
  return out;
}

std::optional<uint32_t> WordPiece::token_to_id(std::string_view token) const {
  auto it = impl_->vocab.find(token);
  if (it == impl_->vocab.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> WordPiece::id_to_token(uint32_t id) const {
  auto it = impl_->by_id.find(id);
  if (it == impl_->by_id.end()) return std::nullopt;
  return it->second;
}

size_t WordPiece::vocab_size() const {
  return impl_->vocab.size();
}

}  // namespace lmf::tok
