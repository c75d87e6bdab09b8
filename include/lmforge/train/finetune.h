// Fine-tuning: data readers (CSV/TSV/JSONL tables, SQuAD JSON, CoNLL/JSONL NER), feature
// creation as transformers' run_glue / run_ner / run_qa scripts do it, and the Objectives that
// train() runs for sequence classification, token classification, extractive QA and similarity.
#pragma once
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lmforge/models/bert.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/train/metrics.h"
#include "lmforge/train/trainer.h"

namespace lmf::train {

// ---- tables (classification, regression, pairs)

enum class DataFormat { automatic, csv, tsv, jsonl };  // automatic: from the file extension
enum class LabelKind { automatic, single_label, multi_label, regression };

// Which columns hold what: a header name, or a 0-based column index ("0", "1", ...).
struct TextColumns {
  std::string text;             // "": sentence1, sentence, text, else the first non-label column
  std::string text_pair;        // "": sentence2 when text is sentence1 (HF run_glue), else none
  std::string label = "label";  // "": no labels; the default may be absent from the file
  DataFormat format = DataFormat::automatic;
  bool header = true;  // CSV/TSV: the first row names the columns
};

struct TextRow {
  std::string text, text_pair;
  std::vector<std::string> labels;  // raw label text; a JSON list gives several (multi-label)
  bool label_is_list = false;
  std::string where;  // "file:line" for error messages
};

struct TextData {
  std::vector<TextRow> rows;
  bool has_pair = false, has_label = false;
  std::string text_column, text_pair_column, label_column;  // as resolved
};

// Reads a CSV (RFC 4180 quoting), TSV (tab-separated, no quoting) or JSONL file. IoError for an
// unreadable or empty file, invalid UTF-8, a malformed row or JSON line (with file:line);
// ValueError for an unknown column name (listing the columns there are).
TextData read_text_data(const std::string& path, const TextColumns& columns = {});

// The label set: names sorted as HF run_glue's label_list (numbers numerically, else by code
// point) for classification; none for regression.
struct LabelSpace {
  LabelKind kind = LabelKind::single_label;
  std::vector<std::string> names;
  int64_t num_labels() const {
    return kind == LabelKind::regression ? 1 : static_cast<int64_t>(names.size());
  }
  // id of a label name; ValueError naming `where` and the known labels when absent.
  int64_t id(const std::string& name, const std::string& where) const;
};
// automatic: lists -> multi_label; all numbers with one non-integer -> regression; else
// single_label. ValueError when rows have no labels or a regression label is not a number.
LabelSpace make_label_space(const TextData& data, LabelKind kind = LabelKind::automatic);

// ---- token classification (NER)

struct TokenData {
  std::vector<std::vector<std::string>> words, tags;
  std::vector<std::string> where;  // "file:line" of each sentence
};
// CoNLL (token per line, tag in the last column, blank line between sentences, -DOCSTART-
// skipped) or, for .json/.jsonl, one {"tokens": [...], "ner_tags": [...]} object per line (tags
// as strings or integers). IoError with file:line for malformed input.
TokenData read_token_data(const std::string& path);
// Unique tags sorted as run_ner's get_label_list.
std::vector<std::string> token_label_list(const TokenData& data);

// ---- extractive question answering

struct QaExample {
  std::string id, question, context;
  std::vector<std::string> answer_texts;  // empty: unanswerable (SQuAD v2)
  std::vector<int64_t> answer_starts;     // code points into context
};
// SQuAD v1.1/v2.0 JSON ({"data": [{"paragraphs": [{"context", "qas": [...]}]}]}) or JSONL in
// HF datasets' layout ({"id", "question", "context", "answers": {"text": [], "answer_start": []}}).
std::vector<QaExample> read_squad(const std::string& path);

// ---- multiple choice (SWAG layout)

struct ChoiceColumns {
  std::string context = "sent1";   // the first sentence of every pair
  std::string question = "sent2";  // prefixed to each ending; "": none
  std::vector<std::string> endings = {"ending0", "ending1", "ending2", "ending3"};
  std::string label = "label";  // the correct ending's index; "": none
  DataFormat format = DataFormat::automatic;
  bool header = true;
};

struct ChoiceRow {
  std::string context, question;
  std::vector<std::string> endings;
  int64_t label = -1;
  std::string where;
};
// CSV/TSV/JSONL as read_text_data; ValueError for a label that is not an ending index.
std::vector<ChoiceRow> read_multiple_choice(const std::string& path, const ChoiceColumns& c = {});

// ---- features

// One model input (one window for QA); the fields a task does not use stay empty.
struct Feature {
  std::vector<int32_t> input_ids, token_type_ids;
  int64_t label = -100;                          // single-label classification
  std::vector<float> targets;                    // regression (1 value) or multi-label (multi-hot)
  std::vector<int32_t> token_labels;             // token classification: per token, -100 ignored
  int64_t start_position = 0, end_position = 0;  // QA training targets (CLS index: no answer)
  int64_t example_index = -1;                    // QA: the example this window came from
  // QA: code-point offsets of context tokens; (-1, -1) for question/special tokens.
  std::vector<std::pair<int32_t, int32_t>> offsets;
  std::vector<Feature> choices;  // multiple choice: one input per ending (label = the answer)
  int64_t length() const {
    int64_t n = static_cast<int64_t>(input_ids.size());
    for (const auto& c : choices) n += c.length();
    return n;
  }
};

// run_glue preprocess_function: tokenizer(text[, pair], truncation=True, max_length), labels
// mapped through `labels` (rows without a label get -100 / no targets). The tokenizer's
// truncation and padding are set for the call and restored.
std::vector<Feature> classification_features(tok::Tokenizer& tokenizer, const TextData& data,
                                             const LabelSpace& labels, int64_t max_length);
// run_ner tokenize_and_align_labels (label_all_tokens=False): words encoded as pre-split words
// (is_split_into_words), the word's label on its first sub-token, -100 on the other sub-tokens
// and special tokens; truncated to max_length. Tags not in label2id: ValueError with file:line.
// A byte-level BPE tokenizer (RoBERTa, GPT-2) encodes each word with a leading space, as run_ner
// does by loading it with add_prefix_space=True.
std::vector<Feature> token_classification_features(tok::Tokenizer& tokenizer, const TokenData& data,
                                                   const std::map<std::string, int64_t>& label2id,
                                                   int64_t max_length);
// run_qa prepare_train_features (start/end positions, CLS index when the answer is not inside
// the window) plus prepare_validation_features' example index and context-only offsets:
// question lstripped, truncation only_second, windows overlapping by doc_stride.
std::vector<Feature> qa_features(tok::Tokenizer& tokenizer, const std::vector<QaExample>& examples,
                                 int64_t max_length, int64_t doc_stride);

// run_swag preprocess_function: per ending, tokenizer(context, question + " " + ending,
// truncation=True, max_length) (just the ending when there is no question column).
std::vector<Feature> multiple_choice_features(tok::Tokenizer& tokenizer,
                                              const std::vector<ChoiceRow>& rows,
                                              int64_t max_length);

struct QaPostprocessOptions {
  int64_t n_best_size = 20;
  int64_t max_answer_length = 30;
  bool version_2_with_negative = false;
  double null_score_diff_threshold = 0.0;
};
// run_qa's postprocess_qa_predictions: best valid span (start <= end, length <= max, both in
// the context) over every window of each example -> its context text ("" for a null answer in
// v2). start/end logits: one row per feature.
std::vector<std::string> postprocess_qa_predictions(
    const std::vector<QaExample>& examples, const std::vector<Feature>& features,
    const std::vector<std::vector<float>>& start_logits,
    const std::vector<std::vector<float>>& end_logits, const QaPostprocessOptions& options = {});

// ---- objectives

enum class FinetuneTask {
  sequence_classification,  // single/pair text; single-label, multi-label or regression
  token_classification,     // NER
  question_answering,       // extractive QA
  bi_encoder,               // similarity: mean-pooled sentence embeddings (sentence-transformers)
  cross_encoder,            // similarity as pair classification / regression
  multiple_choice,          // SWAG-style: one score per ending
};
// "classification" | "text-classification" | "regression" | "ner" | "token-classification" |
// "qa" | "question-answering" | "similarity" | "bi-encoder" | "cross-encoder" |
// "multiple-choice" | "swag".
FinetuneTask parse_finetune_task(const std::string& name);
std::string finetune_task_name(FinetuneTask task);
// "auto" | "single" | "multi" | "regression"; "auto" | "csv" | "tsv" | "jsonl" (CLI helpers).
LabelKind parse_label_kind(const std::string& name);
DataFormat parse_data_format(const std::string& name);

struct FinetuneOptions {
  std::string model_dir;   // HF folder: config.json, weights, tokenizer files
  std::string task;        // parse_finetune_task names; "": from the model's architecture
  std::string train_file;  // "": evaluation only
  std::string eval_file;   // "": hold out eval_fraction of the training data
  double eval_fraction = 0.0;
  uint64_t seed = 42;            // the held-out split and the new head's initialisation
  TextColumns columns;           // tables; bi-encoder: text / text_pair / optional score label
  ChoiceColumns choice_columns;  // multiple choice
  LabelKind label_kind = LabelKind::automatic;
  int64_t max_length = 128;  // tokens per input (QA: per window); capped by the model's positions
  int64_t doc_stride = 128;  // QA
  QaPostprocessOptions qa;   // QA evaluation
  std::optional<bool> version_2_with_negative;  // QA; unset: detected from the data
  std::string similarity_loss;  // bi-encoder: "mnrl" | "cosine"; "": cosine with scores, else mnrl
  double mnrl_scale = 20.0;     // MultipleNegativesRankingLoss: scale of the cosine similarities
  int64_t eval_batch_size = 32;
  int64_t max_train_examples = -1, max_eval_examples = -1;  // -1: all
};

// An Objective over one EncoderModel (see trainer.h) with its tokenizer and prepared features.
class FinetuneObjective : public Objective {
 public:
  FinetuneTask task() const { return task_; }
  models::EncoderModel& model() { return *model_; }
  const models::EncoderModel& model() const { return *model_; }
  const tok::Tokenizer& tokenizer() const { return tokenizer_; }
  const std::vector<Feature>& train_features() const { return train_; }
  const std::vector<Feature>& eval_features() const { return eval_; }
  // Label names by id (empty for regression, QA and the bi-encoder).
  const std::vector<std::string>& label_names() const { return label_names_; }

  NamedTensors parameters() const override;
  void set_training(bool on) override;
  int64_t num_examples() const override { return static_cast<int64_t>(train_.size()); }
  int64_t example_length(int64_t i) const override;
  void save_pretrained(const std::string& dir) const override;
  void load_pretrained(const std::string& dir) override;

 protected:
  FinetuneObjective(const FinetuneOptions& options, FinetuneTask task);
  // Padded model inputs for these features (dynamic padding to the longest).
  models::EncoderInputs batch_inputs(const std::vector<Feature>& features,
                                     std::span<const int64_t> indices) const;
  // The evaluation loop every objective shares: no gradients, eval mode, batches of
  // eval_batch_size over the eval features; `batch` runs one (collecting what the metrics need)
  // and returns its mean loss. Returns the loss averaged over examples.
  double eval_loss(const std::function<Tensor(std::span<const int64_t>)>& batch);
  FinetuneOptions options_;
  FinetuneTask task_;
  std::unique_ptr<models::EncoderModel> model_;
  tok::Tokenizer tokenizer_;
  std::vector<Feature> train_, eval_;
  std::vector<std::string> label_names_;
  int64_t pad_id_ = 0;
};

// Builds the objective for options.task: reads and splits the data, maps labels (the model's own
// id2label when it already has this head and the same labels, else sorted as HF), creates the
// head (a new head is initialised from options.seed as HF does), and makes the features.
std::unique_ptr<FinetuneObjective> make_finetune_objective(const FinetuneOptions& options);

// Evaluation without training: loads options.model_dir (a fine-tuned folder), reads
// options.eval_file and returns evaluate()'s metrics (eval_loss plus the task's metrics).
Metrics evaluate_model(const FinetuneOptions& options);

}  // namespace lmf::train
