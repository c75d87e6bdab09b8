// Inference pipelines on the encoder heads, giving what transformers' pipelines give: fill-mask,
// text classification, token classification (NER), extractive question answering, and the
// next-sentence probability. Offsets (start/end) are Unicode code points, as HF's Python API.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/models/bert.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::tasks {

// The special tokens a pipeline needs, from tokenizer_config.json / special_tokens_map.json (the
// family's defaults otherwise), resolved to ids in the tokenizer's vocabulary.
struct SpecialTokens {
  std::string mask_token, cls_token, pad_token, unk_token;
  std::optional<uint32_t> mask_id, cls_id, pad_id, unk_id;
  // Tokens the model's position table holds (RoBERTa: two fewer than its size).
  size_t max_positions = 512;
  // tokenizer_config.json's model_max_length, capped by max_positions.
  size_t model_max_length = 512;
};

// A loaded model folder (config.json, weights, tokenizer) shared by the pipelines below.
class HeadPipeline {
 public:
  virtual ~HeadPipeline();
  const models::EncoderModel& model() const { return *model_; }
  const tok::Tokenizer& tokenizer() const { return tokenizer_; }
  const SpecialTokens& special_tokens() const { return special_; }
  const models::LoadReport& load_report() const { return report_; }

 protected:
  // Loads `model_dir`; ValueError naming the task and the architectures it needs when the
  // checkpoint's head is not one of `accepted`.
  HeadPipeline(const std::string& model_dir, const std::string& task,
               const std::vector<models::EncoderHead>& accepted, const models::LoadOptions& opt);
  // Tokenizes with the given truncation (none: the tokenizer's own), thread-safe.
  tok::Encoding encode(std::string_view text, std::optional<std::string_view> pair,
                       std::optional<tok::TruncationParams> truncation) const;
  // One forward pass on one encoding (batch 1, no grad).
  models::ModelOutput forward(const tok::Encoding& enc) const;

  std::unique_ptr<models::EncoderModel> model_;
  mutable tok::Tokenizer tokenizer_;  // encode() sets its truncation under encode_mutex_
  SpecialTokens special_;
  models::LoadReport report_;
  std::string task_;
  mutable std::mutex encode_mutex_;
};

// ---- fill-mask ----------------------------------------------------------------------------------

struct FillMaskPrediction {
  double score = 0;       // softmax over the vocabulary at the mask position
  uint32_t token = 0;     // predicted id
  std::string token_str;  // decode([token])
  std::string sequence;   // the input decoded with this mask replaced (other masks kept)
};

struct FillMaskOptions {
  size_t top_k = 5;  // with targets: at most the number of distinct target tokens
  // HF's targets: when not empty, only these tokens are scored (probabilities still from the
  // softmax over the whole vocabulary). See FillMask::resolve_targets.
  std::vector<std::string> targets;
};

// Target words resolved to token ids, with what HF would warn about.
struct ResolvedTargets {
  std::vector<uint32_t> ids;          // distinct, ascending
  std::vector<std::string> warnings;  // one per target not in the vocabulary
};

// *ForMaskedLM (and BERT/ALBERT *ForPreTraining).
class FillMask : public HeadPipeline {
 public:
  explicit FillMask(const std::string& model_dir, const models::LoadOptions& opt = {});
  // One row of top_k predictions per mask token, in input order. ValueError when the text has
  // no mask token.
  std::vector<std::vector<FillMaskPrediction>> operator()(std::string_view text,
                                                          const FillMaskOptions& opt = {}) const;
  // As HF get_target_ids: a target that is a vocabulary entry (added tokens included) is used
  // as is; otherwise it is tokenized without special tokens and its first token is used (a
  // warning names the replacement), or it is skipped with a warning when it gives no token.
  // ValueError when no target is left.
  ResolvedTargets resolve_targets(const std::vector<std::string>& targets) const;
};

// ---- text classification ------------------------------------------------------------------------

// What turns logits into scores; automatic: HF's choice (regression: none; multi-label or one
// label: sigmoid; otherwise softmax).
enum class ScoreFunction { automatic, softmax, sigmoid, none };
ScoreFunction parse_score_function(const std::string& name);  // "softmax" | "sigmoid" | "none"
std::string score_function_name(ScoreFunction f);

struct LabelScore {
  std::string label;  // config id2label
  double score = 0;
};

struct ClassificationOptions {
  std::optional<size_t> top_k = 1;  // none: every label
  ScoreFunction function = ScoreFunction::automatic;
};

class TextClassification : public HeadPipeline {
 public:
  explicit TextClassification(const std::string& model_dir, const models::LoadOptions& opt = {});
  // Labels sorted by score (stable for ties), top_k of them.
  std::vector<LabelScore> operator()(std::string_view text,
                                     std::optional<std::string_view> text_pair = std::nullopt,
                                     const ClassificationOptions& opt = {}) const;
  ScoreFunction default_function() const;  // what automatic resolves to for this model
  std::string label(int64_t id) const;     // id2label, "LABEL_<id>" when absent
};

// ---- cross-encoder -----------------------------------------------------------------------------

struct CrossEncoderOptions {
  // automatic: config.json's sentence_transformers.activation_fn (Sigmoid or Identity) or
  // sigmoid for one label (CrossEncoder's default); softmax over the labels for several
  // (CrossEncoder.predict(apply_softmax=True)). none: the raw logits.
  ScoreFunction activation = ScoreFunction::automatic;
  size_t batch_size = 32;
  std::optional<size_t> max_length;  // pair tokens incl. specials; none: model_max_length
};

// Scores sentence pairs with a sequence-classification model like sentence-transformers'
// CrossEncoder.predict: `[CLS] a [SEP] b [SEP]` truncated longest-first, padded in batches.
class CrossEncoder : public HeadPipeline {
 public:
  explicit CrossEncoder(const std::string& model_dir, const models::LoadOptions& opt = {});
  // One row of num_labels scores per pair, in input order. ValueError for an empty text.
  std::vector<std::vector<double>> predict(
      const std::vector<std::pair<std::string, std::string>>& pairs,
      const CrossEncoderOptions& opt = {}) const;
  ScoreFunction default_activation() const;  // what automatic resolves to for this model
  size_t num_labels() const;
  std::string label(int64_t id) const;  // id2label, "LABEL_<id>" when absent

 private:
  ScoreFunction config_activation_ = ScoreFunction::automatic;
};

// ---- token classification -----------------------------------------------------------------------

enum class Aggregation { none, simple, first, average, max };
Aggregation parse_aggregation(const std::string& name);  // none|simple|first|average|max
std::string aggregation_name(Aggregation a);

struct TokenEntity {
  std::string entity;  // the label (none) or the entity group without B-/I- (aggregated)
  double score = 0;
  std::optional<size_t> index;  // token index in the encoding (aggregation none only)
  std::string word;
  size_t start = 0, end = 0;  // code points in the input text
};

struct TokenClassificationOptions {
  Aggregation aggregation = Aggregation::none;
  std::vector<std::string> ignore_labels = {"O"};
  // HF's stride: none truncates the input to model_max_length tokens. Set, the whole text is
  // tagged in windows of model_max_length tokens, consecutive windows sharing `stride` tokens;
  // each window is aggregated on its own, then overlapping entities are merged (HF
  // aggregate_overlapping_entities: the longer one wins, then the higher score). Needs an
  // aggregation other than none and stride < model_max_length.
  std::optional<size_t> stride;
};

class TokenClassification : public HeadPipeline {
 public:
  explicit TokenClassification(const std::string& model_dir, const models::LoadOptions& opt = {});
  // Special tokens are skipped; input longer than model_max_length is truncated as HF does
  // unless opt.stride asks for windows.
  std::vector<TokenEntity> operator()(std::string_view text,
                                      const TokenClassificationOptions& opt = {}) const;
  // How many windows the last call to operator() used (for reporting).
  size_t windows_used() const { return windows_; }

 private:
  // Entities of one window (aggregated and filtered); offsets index `text`.
  std::vector<TokenEntity> window_entities(const std::string& text, const tok::Encoding& enc,
                                           const TokenClassificationOptions& opt) const;
  mutable size_t windows_ = 0;
};

// ---- question answering -------------------------------------------------------------------------

struct QuestionAnsweringOptions {
  size_t top_k = 1;
  std::optional<size_t> max_seq_len;  // none: min(model_max_length, 384)
  std::optional<size_t> doc_stride;   // none: min(max_seq_len / 2, 128)
  size_t max_answer_len = 15;         // in tokens
  bool handle_impossible_answer = false;
  bool align_to_words = true;  // widen the span to whole words of the context
};

struct Answer {
  double score = 0;           // start_prob * end_prob (summed over spans giving the same text)
  size_t start = 0, end = 0;  // code points in the context
  std::string answer;
};

class QuestionAnswering : public HeadPipeline {
 public:
  explicit QuestionAnswering(const std::string& model_dir, const models::LoadOptions& opt = {});
  // Encodes `[CLS] question [SEP] context [SEP]` in windows of max_seq_len tokens overlapping by
  // doc_stride; best spans by score. ValueError for an empty question or context, bad options.
  std::vector<Answer> operator()(std::string_view question, std::string_view context,
                                 const QuestionAnsweringOptions& opt = {}) const;
  // How many windows the last call to operator() used (for reporting).
  size_t windows_used() const { return windows_; }

 private:
  mutable size_t windows_ = 0;
};

// ---- next sentence prediction -------------------------------------------------------------------

struct NextSentenceResult {
  double is_next = 0;   // P(B follows A) (ALBERT SOP: P(A, B are in order))
  double not_next = 0;  // 1 - is_next
  double logits[2] = {0, 0};
};

// BertForNextSentencePrediction, BertForPreTraining (NSP) or AlbertForPreTraining (SOP).
class NextSentencePrediction : public HeadPipeline {
 public:
  explicit NextSentencePrediction(const std::string& model_dir,
                                  const models::LoadOptions& opt = {});
  NextSentenceResult operator()(std::string_view text_a, std::string_view text_b) const;
};

// ---- helpers ------------------------------------------------------------------------------------

// The substring of UTF-8 `text` between code points [begin, end) (clamped to the text).
std::string substr_code_points(std::string_view text, size_t begin, size_t end);

}  // namespace lmf::tasks
