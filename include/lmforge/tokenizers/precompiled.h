// HF tokenizers' Precompiled normalizer: SentencePiece's compiled normalization rules
// (precompiled_charsmap: a darts-clone double-array trie plus the replacement strings, e.g.
// nmt_nfkc) applied as tokenizers' spm_precompiled does, per grapheme then per char, keeping
// byte alignments. T5, ALBERT, XLM-R and other converted SentencePiece tokenizers carry it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/tokenizers/pipeline.h"

namespace lmf::tok {

class PrecompiledNormalizer final : public Normalizer {
 public:
  // The raw charsmap bytes (tokenizer.json stores them base64-encoded); empty: no-op.
  // ValueError when the blob is malformed.
  explicit PrecompiledNormalizer(std::string charsmap);
  // From tokenizer.json's base64 "precompiled_charsmap".
  static std::unique_ptr<PrecompiledNormalizer> from_base64(std::string_view b64);
  void normalize(NormalizedString& s) const override;
  // The replacement of `chunk` (its shortest prefix found in the trie decides), or none.
  std::optional<std::string_view> transform(std::string_view chunk) const;

 private:
  std::string blob_;
  std::vector<uint32_t> trie_;
  std::string_view normalized_;
};

}  // namespace lmf::tok
