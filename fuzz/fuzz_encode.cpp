// libFuzzer target: arbitrary bytes as input text for a fixed trained tokenizer (added tokens,
// NFD/strip/lowercase/replace normalizers, whitespace+digits pre-tokenizers, WordPiece). The
// first byte picks single/pair, truncation (with stride, both directions) and padding.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace {
lmf::tok::Tokenizer& tokenizer() {
  static lmf::tok::Tokenizer t =
      lmf::tok::Tokenizer::from_file(std::filesystem::path(__FILE__).parent_path() / ".." /
                                     "tests" / "fixtures" / "tokenizers" / "wp_trained_a.json");
  return t;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  auto& tok = tokenizer();
  const uint8_t mode = data[0];
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (mode & 1) {
    lmf::tok::TruncationParams p;
    p.max_length = 4 + (mode >> 4);
    p.stride = (mode >> 2) & 3;
    p.direction = (mode & 2) ? lmf::tok::Direction::Left : lmf::tok::Direction::Right;
    tok.set_truncation(p);
  } else {
    tok.set_truncation(std::nullopt);
  }
  if (mode & 64) {
    lmf::tok::PaddingParams p;
    p.fixed_length = 24;
    p.pad_to_multiple_of = 8;
    tok.set_padding(p);
  } else {
    tok.set_padding(std::nullopt);
  }
  try {
    lmf::tok::Encoding e;
    if (mode & 128) {
      const size_t cut = text.size() / 2;
      e = tok.encode(text.substr(0, cut), text.substr(cut));
    } else {
      e = tok.encode(text);
    }
    for (const auto& [b, en] : e.offsets)
      if (b > en || en > text.size()) __builtin_trap();  // offsets must stay inside the input
    (void)tok.decode(e.ids, mode & 32);
  } catch (const lmf::Error&) {
  }
  return 0;
}
