// libFuzzer target: arbitrary bytes as tokenizer.json. Loading must succeed or throw lmf::Error;
// a loaded tokenizer must encode and decode a few strings without crashing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto tok = lmf::tok::Tokenizer::from_json(text);
    for (const char* s : {"Hello, world!", "héllo 日本 😀 [CLS] <url>", "", "a b  c\t\n"}) {
      try {
        const auto e = tok.encode(s, "pair text");
        (void)tok.decode(e.ids, false);
      } catch (const lmf::Error&) {
      }
    }
  } catch (const lmf::Error&) {
  }
  return 0;
}
