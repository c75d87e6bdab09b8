// Pretraining data and objectives: reading text corpora, building BERT NSP / ALBERT SOP /
// RoBERTa full-sentence instances as Google's create_pretraining_data.py does, MLM masking with
// HF DataCollatorForLanguageModeling semantics (static or dynamic, optional whole-word), and the
// Objectives (MLM+NSP, MLM+SOP, MLM only) that train() optimises.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/core/runtime.h"
#include "lmforge/train/trainer.h"

namespace lmf::tok {
class Tokenizer;
}
namespace lmf::models {
class EncoderModel;
}

namespace lmf::train {

// ---- reading text -------------------------------------------------------------------------------

// A document: its sentences (lines) in order.
using TextDocument = std::vector<std::string>;

// Plain text: one sentence per line, documents separated by blank lines (BERT's format).
// IoError when unreadable; ValueError naming file:line for invalid UTF-8, or when the file holds
// no text at all.
std::vector<TextDocument> read_text_documents(const std::string& path);
// JSONL: one JSON object per line, `field` (a string) holds one document; each of its lines is
// cut into sentences by split_sentences(). ValueError naming file:line for bad JSON, a missing /
// non-string field, invalid UTF-8, or no text at all.
std::vector<TextDocument> read_jsonl_documents(const std::string& path,
                                               const std::string& field = "text");
// A light sentence splitter for running text (JSONL documents are paragraphs, NSP/SOP need
// sentences): cuts after '.', '!' or '?' (and closing quotes/brackets) followed by whitespace and
// a character that is not a lowercase ASCII letter or a digit; keeps common abbreviations
// ("e.g.", "Mr.", single capitals) together.
std::vector<std::string> split_sentences(std::string_view text);
// By extension: .jsonl / .json -> JSONL, anything else plain text.
std::vector<TextDocument> read_documents(const std::string& path,
                                         const std::string& field = "text");

// ---- tokens -------------------------------------------------------------------------------------

// The special ids instance creation and masking need, and which ids are never masked.
struct SpecialTokens {
  int32_t cls = -1, sep = -1, mask = -1, pad = -1;
  int64_t vocab_size = 0;        // random replacements are drawn uniformly from [0, vocab_size)
  std::vector<uint8_t> special;  // special[id] != 0: never chosen for masking (size vocab_size)
  bool is_special(int32_t id) const {
    return id < 0 || (static_cast<size_t>(id) < special.size() && special[id] != 0);
  }
  // [CLS]/[SEP]/[MASK]/[PAD] or <s>/</s>/<mask>/<pad> from the tokenizer (ValueError naming the
  // missing one); special = the tokenizer's special ids.
  static SpecialTokens from_tokenizer(const tok::Tokenizer& t);
};

// A tokenized sentence: ids, and per token whether it starts a word (for whole-word masking).
struct TokenizedSentence {
  std::vector<int32_t> ids;
  std::vector<uint8_t> word_start;  // same size; 1 = first piece of a word
};
using TokenizedDocument = std::vector<TokenizedSentence>;

// Word starts from the vocabulary: WordPiece "##x" continues a word; in byte-level BPE ("Ġ") and
// SentencePiece ("▁") vocabularies a piece without the marker continues the previous one. The
// first piece of every sentence starts a word.
std::vector<uint8_t> word_starts(const tok::Tokenizer& t, std::span<const int32_t> ids);
// Tokenizes every sentence (no special tokens, no truncation), on all threads; empty sentences
// and documents are dropped.
std::vector<TokenizedDocument> tokenize_documents(const tok::Tokenizer& t,
                                                  const std::vector<TextDocument>& docs);

// ---- instances ----------------------------------------------------------------------------------

enum class Recipe { bert, albert, roberta };
Recipe parse_recipe(const std::string& name);  // "bert" | "albert" | "roberta", else ValueError

// One training sequence. labels is empty until masked (static masking fills it).
struct PretrainInstance {
  std::vector<int32_t> input_ids;
  std::vector<uint8_t> token_type_ids;
  std::vector<uint8_t> word_start;  // 1 = first piece of a word (specials: 0)
  std::vector<int32_t> labels;      // -100 or the original id at chosen positions
  int8_t sentence_label = -1;       // NSP: 0 is next, 1 random; SOP: 0 in order, 1 swapped; -1
  int64_t size() const { return static_cast<int64_t>(input_ids.size()); }
};

struct InstanceOptions {
  Recipe recipe = Recipe::bert;
  int64_t max_seq_length = 128;
  double short_seq_prob = 0.1;  // BERT/ALBERT: probability of a shorter target length
  int64_t dup_factor = 1;       // copies of the data (each masked differently when static)
};

// BERT: [CLS] A [SEP] B [SEP], A and B chunks of whole sentences, B the true continuation or
// (50 %, label 1) the start of a random other document, truncate_seq_pair as Google's
// create_pretraining_data.py. ALBERT: A and B two consecutive chunks of one document, swapped
// with probability 0.5 (label 1); a one-sentence chunk is split inside the sentence. RoBERTa:
// <s> contiguous sentences </s> packed up to max_seq_length, an extra separator between
// documents, long sentences split; no sentence label. token_type_ids 0 for [CLS] A [SEP], 1 for
// B [SEP]. Instances are shuffled. ValueError for max_seq_length < 5 or no documents.
std::vector<PretrainInstance> create_instances(const std::vector<TokenizedDocument>& docs,
                                               const SpecialTokens& sp, const InstanceOptions& o,
                                               Generator& rng);

// ---- masking ------------------------------------------------------------------------------------

struct MaskingOptions {
  double mlm_probability = 0.15;
  double mask_replace_prob = 0.8;    // chosen -> mask token
  double random_replace_prob = 0.1;  // chosen -> uniform random id; the rest unchanged
  bool whole_word_mask = false;
};

// HF DataCollatorForLanguageModeling.torch_mask_tokens on one sequence, in place: each
// non-special token chosen with probability mlm_probability, then per chosen token mask / random /
// unchanged; labels = original id at chosen positions, -100 elsewhere. Whole-word masking
// (DataCollatorForWholeWordMask, Google's rule): words in random order are taken while the
// covered tokens stay <= max(1, round(n * mlm_probability)), then the same 80/10/10 per token.
void mask_tokens(std::vector<int32_t>& ids, std::vector<int32_t>& labels,
                 std::span<const uint8_t> word_start, const SpecialTokens& sp,
                 const MaskingOptions& o, Generator& rng);

// The MLM head of an MLM or pretraining model (BERT, RoBERTa, ALBERT or ELECTRA-generator
// parameter names) applied only to rows `rows` of its encoder output h [N, hidden]: the
// [rows.size(), vocab] logits the full head gives at those rows, with the same gradients (what a
// loss sees when every other label is -100), without computing [N, vocab]. rows non-empty.
Tensor sparse_mlm_logits(models::EncoderModel& m, const Tensor& h, const std::vector<int64_t>& rows);

// ---- objectives ---------------------------------------------------------------------------------

// A padded batch (dynamic padding to the longest sequence).
struct PretrainBatch {
  Tensor input_ids, attention_mask, token_type_ids;  // i64 [B, T]
  Tensor labels;                                     // i64 [B, T], -100 ignored
  Tensor sentence_labels;                            // i64 [B]; undefined for MLM only
  int64_t tokens = 0;                                // non-padding tokens
};
// Pads already masked instances (labels filled) with `pad_id`.
PretrainBatch collate(std::span<const PretrainInstance* const> instances, int32_t pad_id);

// Model + prepared instances. The head is the recipe's: BertForPreTraining (MLM+NSP),
// AlbertForPreTraining (MLM+SOP) or XForMaskedLM (MLM only).
class PretrainObjective : public Objective {
 public:
  struct Config {
    MaskingOptions masking;
    bool dynamic_masking = true;  // re-mask in loss() with its rng; false: masked when built
    uint64_t seed = 42;           // static masking and the fixed eval masking
    int64_t eval_batch_size = 8;  // HF per_device_eval_batch_size
    // The MLM head only on the chosen positions (same loss, no [B*T, V] logits); false: the
    // model's own forward over every position, as transformers.
    bool sparse_mlm = true;
    std::string tokenizer_dir;  // tokenizer files copied by save_pretrained ("" : none)
  };
  PretrainObjective(std::unique_ptr<models::EncoderModel> model, SpecialTokens special,
                    std::vector<PretrainInstance> train, std::vector<PretrainInstance> eval,
                    Config config);
  ~PretrainObjective() override;

  NamedTensors parameters() const override;
  void set_training(bool on) override;
  int64_t num_examples() const override;
  int64_t example_length(int64_t i) const override;
  BatchLoss loss(std::span<const int64_t> indices, Generator& rng) override;
  // eval_loss (= mlm + nsp/sop), eval_mlm_loss (mean over masked tokens), eval_perplexity,
  // eval_masked_accuracy, and eval_nsp_loss/eval_nsp_accuracy or eval_sop_* when present.
  Metrics evaluate() override;
  void save_pretrained(const std::string& dir) const override;
  void load_pretrained(const std::string& dir) override;

  // The loss of a prepared batch (parts: mlm_loss, nsp_loss / sop_loss).
  BatchLoss batch_loss(const PretrainBatch& batch) const;
  // The batch loss() trains on (dynamic masking drawn from rng).
  PretrainBatch make_batch(std::span<const int64_t> indices, Generator& rng) const;

  models::EncoderModel& model() { return *model_; }
  const Config& config() const { return cfg_; }
  const std::vector<PretrainInstance>& train_instances() const { return train_; }
  const std::vector<PretrainInstance>& eval_instances() const { return eval_; }
  const SpecialTokens& special_tokens() const { return special_; }
  bool has_sentence_task() const;
  const char* sentence_task() const;  // "nsp", "sop" or ""

 private:
  struct Forward {
    Tensor mlm_logits;  // [N, V]: every position, or only the chosen ones (sparse_mlm)
    Tensor mlm_labels;  // [N]
    Tensor seq_logits;  // [B, 2] or undefined
  };
  Forward run(const PretrainBatch& b) const;

  std::unique_ptr<models::EncoderModel> model_;
  SpecialTokens special_;
  std::vector<PretrainInstance> train_, eval_;
  Config cfg_;
};

// What `lmforge pretrain` needs to build an objective.
struct PretrainOptions {
  std::string model_dir;        // HF folder to continue from (with its pooler, or a seeded one)
  std::string config_path;      // or a config.json to start from scratch
  std::string tokenizer_dir;    // "" : model_dir (or the config's folder)
  std::string recipe = "bert";  // bert (MLM+NSP) | albert (MLM+SOP) | roberta (MLM only)
  int64_t max_seq_length = 128;
  double mlm_probability = 0.15;
  // Of the chosen tokens, the share replaced by the mask token and by a random id (the rest stay
  // unchanged); < 0: the recipe's default (HF DataCollatorForLanguageModeling's 0.8 / 0.1).
  double mask_replace_prob = -1;
  double random_replace_prob = -1;
  std::string masking = "dynamic";  // static | dynamic
  int64_t dup_factor = 1;
  bool whole_word_mask = false;
  double short_seq_prob = 0.1;
  uint64_t seed = 42;
  std::vector<std::string> train_files;
  std::vector<std::string> eval_files;  // or:
  double eval_split = 0.0;              // fraction of the training documents held out
  std::string text_field = "text";      // JSONL field
  int64_t eval_batch_size = 8;
  bool sparse_mlm = true;  // see PretrainObjective::Config
};

// The tokenizer folder of `o`: tokenizer_dir, else model_dir, else the config's folder.
std::string pretrain_tokenizer_dir(const PretrainOptions& o);
// The training and held-out documents of `o`: every train/eval file read (read_documents), and
// with eval_split > 0 a seeded share (at least one document) of the training documents held out.
// ValueError without training files, for an eval_split outside [0, 1), for both eval files and
// a split, or for a split of fewer than 2 documents.
struct PretrainCorpus {
  std::vector<TextDocument> train, eval;
};
PretrainCorpus read_pretrain_corpus(const PretrainOptions& o);
// Reads, tokenizes, builds instances and the model. ValueError naming the option for
// inconsistent options (unknown recipe/masking, both or neither of model_dir/config_path, a
// recipe the model family lacks, a tokenizer larger than the model's vocabulary).
std::unique_ptr<PretrainObjective> make_pretrain_objective(const PretrainOptions& o);

// The HF architecture a recipe trains for a family ("BertForPreTraining", "RobertaForMaskedLM").
std::string pretrain_architecture(Recipe r, const std::string& family);

}  // namespace lmf::train
