// Sentence embeddings from an encoder folder: the sentence-transformers layout (modules.json,
// 1_Pooling, Normalize, sentence_bert_config.json) or a plain Hugging Face model folder.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/core/tensor.h"
#include "lmforge/models/bert.h"
#include "lmforge/tasks/pooling.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::tasks {

struct EmbedderOptions {
  // Overrides the folder's pooling (sentence-transformers) or the default `mean` (plain folder).
  std::optional<Pooling> pooling;
  // Overrides the folder's Normalize module (plain folders: no normalisation).
  std::optional<bool> normalize;
  // Overrides max_seq_length (sentence_bert_config.json; plain folders: the smaller of
  // max_position_embeddings and tokenizer_config.json's model_max_length).
  std::optional<int64_t> max_length;
  // false: over-long input is a ValueError instead of being cut to max_length tokens.
  bool truncate = true;
  int64_t batch_size = 32;
  // Passed to models::create_model (e.g. a seeded pooler initialisation).
  models::LoadOptions load;
};

class SentenceEmbedder {
 public:
  // IoError for a missing folder or file; ValueError for an unknown architecture, an unsupported
  // sentence-transformers module or a malformed configuration (each naming the file).
  static SentenceEmbedder from_pretrained(const std::string& dir, const EmbedderOptions& opt = {});

  SentenceEmbedder(SentenceEmbedder&&) noexcept;
  SentenceEmbedder& operator=(SentenceEmbedder&&) noexcept;
  ~SentenceEmbedder();

  // [N, dimension()] f32, row i for texts[i]. Texts sorted by length form batches of up to
  // batch_size (cut early where the length halves, so padding stays small); no gradients
  // recorded. ValueError for no texts or (truncation off) a text longer than max_length() tokens.
  Tensor encode(const std::vector<std::string>& texts) const;
  // The encodings encode() feeds the model (lower-cased first when the folder says so), unpadded.
  std::vector<tok::Encoding> tokenize(const std::vector<std::string>& texts) const;

  int64_t dimension() const;
  const std::vector<Pooling>& pooling() const { return pooling_; }  // concatenated in this order
  bool normalize() const { return normalize_; }
  int64_t max_length() const { return max_length_; }
  bool truncate() const { return truncate_; }
  bool sentence_transformers_layout() const { return st_layout_; }
  const models::BertConfig& config() const;
  const models::LoadReport& load_report() const { return report_; }
  const tok::Tokenizer& tokenizer() const { return tokenizer_; }
  // One line: "pooling mean, normalized, max 256 tokens (sentence-transformers folder)".
  std::string describe() const;

 private:
  SentenceEmbedder() = default;
  Tensor encode_batch(const std::vector<tok::Encoding>& batch) const;

  std::unique_ptr<models::EncoderModel> model_;
  tok::Tokenizer tokenizer_;
  models::LoadReport report_;
  std::vector<Pooling> pooling_;
  bool normalize_ = false;
  bool lower_case_ = false;
  bool st_layout_ = false;
  bool truncate_ = true;
  int64_t max_length_ = 512;
  int64_t batch_size_ = 32;
};

}  // namespace lmf::tasks
