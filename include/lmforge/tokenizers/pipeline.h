// The stages of a tokenizer around the model (as in HF tokenizers): normalizer, pre-tokenizer,
// post-processor (special tokens), decoder. Implementations are built from tokenizer.json by
// the factory (src/tokenizers/factory.h).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/tokenizers/encoding.h"
#include "lmforge/tokenizers/normalized_string.h"

namespace lmf::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(NormalizedString& s) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(PreTokenizedString& s) const = 0;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Number of special tokens added to a single input / a pair.
  virtual size_t added_tokens(bool is_pair) const = 0;
  // Sets sequence ids and type ids (0 / 1) then calls process_encodings and merges the result
  // (HF PostProcessor::process). Overridable.
  virtual Encoding process(Encoding first, std::optional<Encoding> pair,
                           bool add_special_tokens) const;
  // Adds special tokens; returns the pieces to merge in order.
  virtual std::vector<Encoding> process_encodings(std::vector<Encoding> encodings,
                                                  bool add_special_tokens) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Token strings -> text pieces (chained decoders feed each other).
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
  std::string decode(std::vector<std::string> tokens) const;
};

}  // namespace lmf::tok
