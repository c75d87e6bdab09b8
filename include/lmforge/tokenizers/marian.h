// Marian's tokenizer (source.spm / target.spm + vocab.json [+ target_vocab.json]) with the ids,
// tokens and decoded strings of transformers' (slow, SentencePiece) MarianTokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmf::tok {

// Ids of a padded batch (right padding with pad_token_id, as transformers' padding=True).
struct MarianBatch {
  std::vector<std::vector<int64_t>> input_ids;
  std::vector<std::vector<int64_t>> attention_mask;
};

class MarianTokenizer {
 public:
  // Reads source.spm, target.spm, vocab.json (target_vocab.json when tokenizer_config.json says
  // separate_vocabs) and the optional tokenizer_config.json / special_tokens_map.json. Throws
  // IoError naming a missing or unreadable file, ValueError for a malformed vocab or config.
  static MarianTokenizer from_folder(const std::string& dir);
  MarianTokenizer(MarianTokenizer&&) noexcept;
  MarianTokenizer& operator=(MarianTokenizer&&) noexcept;
  ~MarianTokenizer();

  // tokenizer(text)["input_ids"]: special tokens in the text kept whole, a leading >>xx<<
  // language code as one token, the rest through source.spm, pieces looked up in vocab.json
  // (unknown -> <unk>), then </s>. Throws ValueError when `text` is not valid UTF-8.
  std::vector<int64_t> encode_source(std::string_view text) const;
  // tokenizer(text_target=text)["input_ids"]: the same with target.spm (and target_vocab.json
  // when the vocabularies are separate).
  std::vector<int64_t> encode_target(std::string_view text) const;
  // tokenizer.tokenize(text) (source side, no </s>), and its target-side counterpart.
  std::vector<std::string> tokenize_source(std::string_view text) const;
  std::vector<std::string> tokenize_target(std::string_view text) const;
  // tokenizer(texts, padding=True) / tokenizer(text_target=texts, padding=True).
  MarianBatch encode_source_batch(const std::vector<std::string>& texts) const;
  MarianBatch encode_target_batch(const std::vector<std::string>& texts) const;

  // tokenizer.decode(ids, skip_special_tokens=...): the target side's pieces (the source model
  // decodes when the vocabulary is joint, as transformers does). skip_special_tokens drops
  // </s>, <pad>, <unk> and any extra special token. Throws IndexError for an id outside both
  // the vocabulary and the SentencePiece model.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;
  std::vector<std::string> decode_batch(const std::vector<std::vector<int64_t>>& ids,
                                        bool skip_special_tokens = true) const;

  int64_t pad_token_id() const;
  int64_t eos_token_id() const;
  int64_t unk_token_id() const;
  // transformers' tokenizer.vocab_size (entries of vocab.json) and len(tokenizer) (with the
  // special tokens added because vocab.json lacked them).
  size_t vocab_size() const;
  size_t size() const;
  bool separate_vocabs() const;
  // The >>xx<< entries of a joint vocab.json (empty for separate vocabularies).
  const std::vector<std::string>& supported_language_codes() const;
  const std::string& source_lang() const;  // "" when tokenizer_config.json names none
  const std::string& target_lang() const;
  // Source-vocabulary lookups (added/special tokens first), as convert_tokens_to_ids / _to_tokens.
  std::optional<int64_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int64_t id) const;

 private:
  MarianTokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lmf::tok
