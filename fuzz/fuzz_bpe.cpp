// libFuzzer target: arbitrary bytes (any UTF-8 validity) through the byte-level BPE tokenizer
// (tests/fixtures/tokenizers/bpe_tokenizer.json, or $LMF_FUZZ_BPE_TOKENIZER): encode and decode
// must never crash, ids must be in the vocabulary and offsets inside the text.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/tokenizers/unicode.h"

static const lmf::tok::Tokenizer& tokenizer() {
  static const lmf::tok::Tokenizer tok = [] {
    const char* env = std::getenv("LMF_FUZZ_BPE_TOKENIZER");
    std::string self = __FILE__;  // <repo>/fuzz/fuzz_bpe.cpp (run_fuzzer.sh passes absolute paths)
    std::string root = self.substr(0, self.rfind("/fuzz/"));
    std::string path = env ? env : root + "/tests/fixtures/tokenizers/bpe_tokenizer.json";
    auto t = lmf::tok::Tokenizer::from_file(path);
    return t;
  }();
  return tok;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& tok = tokenizer();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    size_t cut = size / 3;
    auto e = tok.encode(text.substr(cut), text.substr(0, cut), true, lmf::tok::OffsetType::Byte);
    // Ill-formed UTF-8 is replaced by U+FFFD (3 bytes) first: offsets index the replaced text.
    const size_t bound = std::max(lmf::tok::sanitize_utf8(text.substr(cut)).size(),
                                  lmf::tok::sanitize_utf8(text.substr(0, cut)).size());
    for (size_t i = 0; i < e.ids.size(); ++i) {
      if (e.ids[i] >= tok.vocab_size(true)) __builtin_trap();
      if (e.offsets[i].first > e.offsets[i].second || e.offsets[i].second > bound) __builtin_trap();
    }
    auto single = tok.encode(text);
    (void)tok.decode(single.ids, false);
  } catch (const lmf::Error&) {
    // Rejecting bad input with a project error is allowed; crashing is not.
  }
  return 0;
}
