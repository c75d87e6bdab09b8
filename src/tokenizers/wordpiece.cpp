// WordPiece model: longest-match-first over the vocabulary, with a separate table of
// continuation pieces keyed without their prefix so lookups never build strings.
#include "lmforge/tokenizers/wordpiece.h"

#include <cstring>
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

// Read-only open-addressing table string -> id for the tokenize() hot loop: keys in one arena,
// a cheap word-at-a-time hash, no allocation or pointer chasing per lookup.
class FlatMap {
 public:
  explicit FlatMap(const Map& m) {
    size_t cap = 16;
    while (cap < m.size() * 2 + 16) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const auto& [key, id] : m) {
      const uint64_t h = hash(key);
      size_t i = h & mask_;
      while (slots_[i].len != kEmpty) i = (i + 1) & mask_;
      slots_[i] = {static_cast<uint32_t>(h >> 32), static_cast<uint32_t>(arena_.size()),
                   static_cast<uint32_t>(key.size()), id};
      arena_ += key;
    }
  }
  const uint32_t* find(std::string_view s) const {
    const uint64_t h = hash(s);
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& sl = slots_[i];
      if (sl.len == kEmpty) return nullptr;
      if (sl.tag == tag && sl.len == s.size() &&
          std::memcmp(arena_.data() + sl.off, s.data(), s.size()) == 0)
        return &sl.id;
    }
  }

 private:
  static constexpr uint32_t kEmpty = ~0u;
  struct Slot {
    uint32_t tag = 0, off = 0, len = kEmpty, id = 0;
  };
  static uint64_t hash(std::string_view s) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (s.size() * 0xC2B2AE3D27D4EB4Full);
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t v;
      std::memcpy(&v, s.data() + i, 8);
      h = (h ^ v) * 0xFF51AFD7ED558CCDull;
      h ^= h >> 32;
    }
    uint64_t v = 0;
    std::memcpy(&v, s.data() + i, s.size() - i);
    h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 32);
  }
  std::vector<Slot> slots_;
  std::string arena_;
  size_t mask_ = 0;
};
}  // namespace

struct WordPiece::Impl {
  Map vocab;          // every token
  Map continuations;  // tokens that start with the prefix, keyed without it
  std::optional<FlatMap> fast_vocab, fast_continuations;  // the same, for tokenize()
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
  impl_->fast_vocab.emplace(impl_->vocab);
  impl_->fast_continuations.emplace(impl_->continuations);
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
    const FlatMap& table =
        start == 0 || prefix_.empty() ? *impl_->fast_vocab : *impl_->fast_continuations;
    bool found = false;
    while (start < end) {
      if (const uint32_t* id = table.find(s.substr(start, end - start))) {
        std::string value;
        if (start == 0) {
          value.assign(s.data(), end);
        } else {
          value.reserve(prefix_.size() + end - start);
          value.append(prefix_).append(s.data() + start, end - start);
        }
        out.push_back(Token{*id, std::move(value), start, end});
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
