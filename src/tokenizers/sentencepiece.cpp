// SentencePiece wrapper over sentencepiece::SentencePieceProcessor.
#include "lmforge/tokenizers/sentencepiece.h"

#include <sentencepiece_processor.h>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/unigram.h"

namespace lmf::tok {

struct SentencePiece::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

SentencePiece::SentencePiece() : impl_(std::make_unique<Impl>()) {}
SentencePiece::~SentencePiece() = default;

std::unique_ptr<SentencePiece> SentencePiece::from_file(const std::string& path) {
  std::unique_ptr<SentencePiece> m(new SentencePiece());
  auto status = m->impl_->sp.Load(path);
  LMF_CHECK(status.ok(), IoError, "cannot load SentencePiece model '{}': {}", path,
            status.ToString());
  return m;
}

std::vector<Token> SentencePiece::encode(std::string_view text) const {
  std::vector<Token> out;
  auto spt = impl_->sp.EncodeAsImmutableProto(text);
  out.reserve(spt.pieces_size());
  for (const auto& p : spt.pieces()) {
    size_t b = std::min<size_t>(p.begin(), text.size()), e = std::min<size_t>(p.end(), text.size());
    out.push_back({p.id(), p.piece(), b, std::max(b, e)});
  }
  return out;
}

std::string SentencePiece::decode(std::span<const uint32_t> ids) const {
  std::vector<int> v;
  v.reserve(ids.size());
  const int n = impl_->sp.GetPieceSize();
  for (uint32_t id : ids) {
    LMF_CHECK(id < static_cast<uint32_t>(n), IndexError,
              "SentencePiece decode: id {} is not below the vocabulary size {}", id, n);
    v.push_back(static_cast<int>(id));
  }
  return impl_->sp.DecodeIds(v);
}

std::string SentencePiece::decode_pieces(const std::vector<std::string>& pieces) const {
  return impl_->sp.DecodePieces(pieces);
}

std::optional<uint32_t> SentencePiece::token_to_id(std::string_view token) const {
  int id = impl_->sp.PieceToId(token);
  if (id < 0) return std::nullopt;
  // PieceToId answers unk_id for unknown pieces: only a real match counts.
  if (impl_->sp.IdToPiece(id) != token) return std::nullopt;
  return static_cast<uint32_t>(id);
}

std::optional<std::string> SentencePiece::id_to_token(uint32_t id) const {
  if (id >= static_cast<uint32_t>(impl_->sp.GetPieceSize())) return std::nullopt;
  return impl_->sp.IdToPiece(static_cast<int>(id));
}

size_t SentencePiece::vocab_size() const {
  return impl_->sp.GetPieceSize();
}

namespace {
std::optional<uint32_t> opt_id(int id) {
  return id < 0 ? std::nullopt : std::optional<uint32_t>(static_cast<uint32_t>(id));
}
}  // namespace

std::optional<uint32_t> SentencePiece::unk_id() const {
  return opt_id(impl_->sp.unk_id());
}
std::optional<uint32_t> SentencePiece::bos_id() const {
  return opt_id(impl_->sp.bos_id());
}
std::optional<uint32_t> SentencePiece::eos_id() const {
  return opt_id(impl_->sp.eos_id());
}
std::optional<uint32_t> SentencePiece::pad_id() const {
  return opt_id(impl_->sp.pad_id());
}

std::unique_ptr<Unigram> SentencePiece::to_unigram() const {
  const int n = impl_->sp.GetPieceSize();
  std::vector<std::pair<std::string, double>> vocab;
  vocab.reserve(n);
  bool has_bytes = false;
  for (int i = 0; i < n; ++i) {
    vocab.emplace_back(impl_->sp.IdToPiece(i), impl_->sp.GetScore(i));
    has_bytes = has_bytes || impl_->sp.IsByte(i);
  }
  auto unk = unk_id();
  return std::make_unique<Unigram>(std::move(vocab),
                                   unk ? std::optional<size_t>(*unk) : std::nullopt, has_bytes);
}

namespace {
// Protocol-buffer wire format: the first length-delimited field `field` of `msg`, or none.
std::optional<std::string_view> proto_bytes_field(std::string_view msg, uint32_t field) {
  size_t i = 0;
  auto varint = [&](uint64_t& v) {
    v = 0;
    for (int shift = 0; i < msg.size() && shift < 64; shift += 7) {
      const auto b = static_cast<unsigned char>(msg[i++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  while (i < msg.size()) {
    uint64_t tag = 0, v = 0;
    if (!varint(tag)) return std::nullopt;
    switch (tag & 7) {
      case 0:
        if (!varint(v)) return std::nullopt;
        break;
      case 1:
        i += 8;
        break;
      case 5:
        i += 4;
        break;
      case 2:
        if (!varint(v) || v > msg.size() - i) return std::nullopt;
        if ((tag >> 3) == field) return msg.substr(i, v);
        i += v;
        break;
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;
}
}  // namespace

std::string SentencePiece::precompiled_charsmap() const {
  const std::string model = impl_->sp.serialized_model_proto();
  // ModelProto.normalizer_spec (3) -> NormalizerSpec.precompiled_charsmap (2).
  const auto spec = proto_bytes_field(model, 3);
  if (!spec) return "";
  const auto map = proto_bytes_field(*spec, 2);
  return map ? std::string(*map) : std::string();
}

std::vector<std::string> SentencePieceDecoder::decode_chain(std::vector<std::string> tokens) const {
  return {sp_->decode_pieces(tokens)};
}

}  // namespace lmf::tok
