// Metaspace (SentencePiece-style) stages: spaces become the replacement char ('▁') with an
// optional prepended one, splits before each replacement; the decoder turns them back.
#pragma once
#include <string>

#include "lmforge/tokenizers/pipeline.h"

namespace lmf::tok {

enum class PrependScheme { Always, First, Never };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement = U'\u2581',
                        PrependScheme scheme = PrependScheme::Always, bool split = true);
  void pre_tokenize(PreTokenizedString& s) const override;

 private:
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement = U'\u2581', PrependScheme scheme = PrependScheme::Always)
      : replacement_(replacement), scheme_(scheme) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override;

 private:
  char32_t replacement_;
  PrependScheme scheme_;
};

}  // namespace lmf::tok
