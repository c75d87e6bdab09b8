// GPT-2 byte-level stages (HF ByteLevel): the bytes<->unicode map, the GPT-2 split pattern (a
// hand scanner; a PCRE2 version is kept for tests and benchmarks), pre-tokenizer, normalizer,
// decoder and offset-trimming post-processor.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/tokenizers/pipeline.h"

namespace lmf::tok {

// UTF-8 of the printable char GPT-2 maps byte b to ('Ġ' for ' ', 'Ċ' for '\n', ...).
const std::string& byte_level_char(uint8_t b);
char32_t byte_level_cp(uint8_t b);
// The byte that `c` stands for, or -1 when c is not in the map.
int byte_level_byte(char32_t c);
// Every byte of `text` as its byte-level char (what the BPE model sees).
std::string to_byte_level(std::string_view text);

// Pieces of `text` for 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with Oniguruma's Unicode classes (what HF uses): contiguous byte ranges covering all of text.
// Bytes that are not valid UTF-8 count as one "other" char each.
void gpt2_split(std::string_view text, std::vector<Match>& out);
// The same through PCRE2 (UTF + UCP); differs from gpt2_split only where PCRE2's \s differs from
// Oniguruma's (U+0085, U+001C..U+001F).
void gpt2_split_pcre2(std::string_view text, std::vector<Match>& out);

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
  void pre_tokenize(PreTokenizedString& s) const override;
  bool add_prefix_space() const { return add_prefix_space_; }

 private:
  bool add_prefix_space_, use_regex_;
};

// normalizers.ByteLevel: the whole text to byte-level chars (no split, no prefix).
class ByteLevelNormalizer final : public Normalizer {
 public:
  void normalize(NormalizedString& s) const override;
};

// Byte-level chars back to bytes, then UTF-8 with U+FFFD for ill-formed sequences.
class ByteLevelDecoder final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override;
};

// Trims offsets past leading/trailing 'Ġ' (when trim_offsets) and sets sequence ids.
class ByteLevelPostProcessor final : public PostProcessor {
 public:
  ByteLevelPostProcessor(bool add_prefix_space, bool trim_offsets)
      : add_prefix_space_(add_prefix_space), trim_offsets_(trim_offsets) {}
  size_t added_tokens(bool) const override { return 0; }
  std::vector<Encoding> process_encodings(std::vector<Encoding> encodings,
                                          bool add_special_tokens) const override;

 private:
  bool add_prefix_space_, trim_offsets_;
};

}  // namespace lmf::tok
