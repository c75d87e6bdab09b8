// A SentencePiece `.model` file (legacy ALBERT/T5/Marian/LLaMA folders) run by libsentencepiece
// itself: its own normalization, dummy prefix and segmentation, so ids match the "slow"
// transformers tokenizers.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/tokenizers/model.h"
#include "lmforge/tokenizers/pipeline.h"

namespace lmf::tok {

class Unigram;

class SentencePiece final : public Model {
 public:
  // Throws IoError when the file cannot be read or is not a SentencePiece model.
  static std::unique_ptr<SentencePiece> from_file(const std::string& path);
  ~SentencePiece() override;

  // Whole-text encoding; Token offsets are byte offsets into `text` (piece surfaces).
  std::vector<Token> encode(std::string_view text) const;
  std::string decode(std::span<const uint32_t> ids) const;
  std::string decode_pieces(const std::vector<std::string>& pieces) const;

  // As a pipeline model the piece is the whole (raw) text: tokenize == encode.
  std::vector<Token> tokenize(std::string_view piece) const override { return encode(piece); }
  std::optional<uint32_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> id_to_token(uint32_t id) const override;
  size_t vocab_size() const override;

  std::optional<uint32_t> unk_id() const;
  std::optional<uint32_t> bos_id() const;
  std::optional<uint32_t> eos_id() const;
  std::optional<uint32_t> pad_id() const;
  // The same pieces and scores as an HF-style Unigram model (unk id kept, byte pieces enabled).
  std::unique_ptr<Unigram> to_unigram() const;
  // The model's normalizer_spec.precompiled_charsmap (raw bytes; empty when it has none), what
  // transformers' converters put into a Precompiled normalizer.
  std::string precompiled_charsmap() const;

 private:
  SentencePiece();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Decoder for a pipeline whose model is SentencePiece: token strings -> libsentencepiece decode.
class SentencePieceDecoder final : public Decoder {
 public:
  explicit SentencePieceDecoder(std::shared_ptr<const SentencePiece> sp) : sp_(std::move(sp)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override;

 private:
  std::shared_ptr<const SentencePiece> sp_;
};

}  // namespace lmf::tok
