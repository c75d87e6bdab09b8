// A complete tokenizer: added tokens, normalizer, pre-tokenizer, model, post-processor, decoder,
// truncation and padding, loaded from a Hugging Face model folder (tokenizer.json or legacy files)
// and producing the same ids, type ids, masks, offsets and decoded text as HF tokenizers.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "lmforge/tokenizers/encoding.h"
#include "lmforge/tokenizers/model.h"
#include "lmforge/tokenizers/pipeline.h"

namespace lmf::tok {

// A token outside the model's vocabulary (or a special token), matched in the raw text before
// the model runs (HF AddedToken).
struct AddedToken {
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;  // matched on the normalized text (else on the raw text)
  bool special = false;
  std::optional<uint32_t> id;  // the id from tokenizer.json; assigned when absent
};

enum class TruncationStrategy { LongestFirst, OnlyFirst, OnlySecond };

struct TruncationParams {
  size_t max_length = 512;
  TruncationStrategy strategy = TruncationStrategy::LongestFirst;
  size_t stride = 0;
  Direction direction = Direction::Right;
};

struct PaddingParams {
  std::optional<size_t> fixed_length;  // none: pad to the longest of the batch
  Direction direction = Direction::Right;
  std::optional<size_t> pad_to_multiple_of;
  uint32_t pad_id = 0;
  uint32_t pad_type_id = 0;
  std::string pad_token = "[PAD]";
};

enum class OffsetType { Char, Byte };

// What to do with input that is not valid UTF-8 (HF only accepts valid str). Replace (the
// default) turns each ill-formed sequence into U+FFFD as Python's bytes.decode("utf-8",
// "replace") does, then tokenizes (BertNormalizer's clean_text drops U+FFFD); offsets index the
// repaired text. Throw raises ValueError instead.
enum class InvalidUtf8 { Replace, Throw };

class Tokenizer {
 public:
  Tokenizer();
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Parses a tokenizer.json file / string. Throws IoError (file) or ValueError (content) naming
  // the key that is wrong.
  static Tokenizer from_file(const std::filesystem::path& path);
  static Tokenizer from_json(std::string_view json_text);
  // A model folder: tokenizer.json when present, else vocab.txt (+ tokenizer_config.json,
  // special_tokens_map.json) or the BPE / SentencePiece legacy files. Also reads
  // tokenizer_config.json's clean_up_tokenization_spaces for decode().
  static Tokenizer from_pretrained(const std::filesystem::path& dir);

  // Pipeline stages (any may be null except the model).
  void set_normalizer(std::unique_ptr<Normalizer> n);
  void set_pre_tokenizer(std::unique_ptr<PreTokenizer> p);
  void set_model(std::unique_ptr<Model> m);
  void set_post_processor(std::unique_ptr<PostProcessor> p);
  void set_decoder(std::unique_ptr<Decoder> d);
  const Model& model() const;
  const Normalizer* normalizer() const { return normalizer_.get(); }
  const PreTokenizer* pre_tokenizer() const { return pre_tokenizer_.get(); }
  const PostProcessor* post_processor() const { return post_processor_.get(); }
  const Decoder* decoder() const { return decoder_.get(); }

  // Adds tokens (ids continue after the model vocabulary unless the token is in it or has an
  // id); returns how many were new. Set the model and normalizer first.
  size_t add_tokens(const std::vector<AddedToken>& tokens);
  size_t add_special_tokens(const std::vector<AddedToken>& tokens);
  const std::vector<AddedToken>& added_tokens() const { return added_; }

  void set_truncation(std::optional<TruncationParams> t) { truncation_ = std::move(t); }
  void set_padding(std::optional<PaddingParams> p) { padding_ = std::move(p); }
  const std::optional<TruncationParams>& truncation() const { return truncation_; }
  const std::optional<PaddingParams>& padding() const { return padding_; }
  void set_invalid_utf8(InvalidUtf8 mode) { invalid_utf8_ = mode; }
  // transformers' clean_up_tokenization_spaces, applied by decode().
  void set_clean_up_tokenization_spaces(bool on) { clean_up_spaces_ = on; }
  bool clean_up_tokenization_spaces() const { return clean_up_spaces_; }

  // One text / a pair, as HF Tokenizer.encode: added tokens, normalizer, pre-tokenizer, model,
  // truncation (with overflowing windows), post-processor, padding. Thread-safe (const).
  Encoding encode(std::string_view text, bool add_special_tokens = true,
                  OffsetType offsets = OffsetType::Char) const;
  Encoding encode(std::string_view text, std::string_view pair, bool add_special_tokens = true,
                  OffsetType offsets = OffsetType::Char) const;
  // Encodes on all threads (LMFORGE_NUM_THREADS); batch padding applies across the batch.
  std::vector<Encoding> encode_batch(const std::vector<std::string>& texts,
                                     bool add_special_tokens = true) const;
  std::vector<Encoding> encode_batch(const std::vector<std::pair<std::string, std::string>>& pairs,
                                     bool add_special_tokens = true) const;

  std::string decode(std::span<const uint32_t> ids, bool skip_special_tokens = true) const;
  std::vector<std::string> decode_batch(const std::vector<std::vector<uint32_t>>& ids,
                                        bool skip_special_tokens = true) const;

  std::optional<uint32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(uint32_t id) const;
  size_t vocab_size(bool with_added_tokens = true) const;
  bool is_special_id(uint32_t id) const;

 private:
  struct AddedMatcher;
  Encoding encode_sequence(std::string_view text, uint32_t type_id, OffsetType offsets) const;
  Encoding post_process(Encoding first, std::optional<Encoding> pair, bool add_special) const;
  void rebuild_added_matchers();
  size_t add_tokens_impl(const std::vector<AddedToken>& tokens, bool special);

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;  // in insertion order, ids assigned
  std::unordered_map<std::string, uint32_t> added_to_id_;
  std::unordered_map<uint32_t, size_t> added_by_id_;  // id -> index in added_
  std::unordered_set<uint32_t> special_ids_;
  std::unique_ptr<AddedMatcher> matcher_raw_, matcher_normalized_;
  std::optional<TruncationParams> truncation_;
  std::optional<PaddingParams> padding_;
  InvalidUtf8 invalid_utf8_ = InvalidUtf8::Replace;
  bool clean_up_spaces_ = false;
};

// transformers' clean_up_tokenization: " ." -> ".", " ?" -> "?", " !" -> "!", " ," -> ",",
// " ' " -> "'", " n't" -> "n't", " 'm" -> "'m", " 's" -> "'s", " 've" -> "'ve", " 're" -> "'re".
std::string clean_up_tokenization(std::string text);

}  // namespace lmf::tok
