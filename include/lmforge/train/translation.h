// Translation training (`lmforge finetune --task translation`): parallel data (SRC,TGT files or
// JSONL with one field per language), features as transformers' run_translation.py makes them and
// the Objective that train() runs for a Marian encoder-decoder with label smoothing.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/models/marian.h"
#include "lmforge/train/trainer.h"

namespace lmf::train {

// One parallel example: text, or token ids when the JSONL fields are integer lists (pre-tokenized,
// used as they are: the source should end with </s>, the target too).
struct TranslationPair {
  std::string source, target;
  std::vector<int64_t> source_ids, target_ids;
  bool pretokenized = false;
  std::string where;  // "file:line" (the source file's line for parallel files)
};

struct TranslationData {
  std::vector<TranslationPair> pairs;
  int64_t skipped_empty = 0;  // pairs with an empty side, left out (see read_translation_data)
};

// `spec` is "SRC_FILE,TGT_FILE" (line-aligned plain text) or one .json/.jsonl file with an object
// per line holding the two language fields ({"en": ..., "fr": ...}, or HF datasets' wmt layout
// {"translation": {"en": ..., "fr": ...}}); a field's value is a string or a list of token ids.
// A pair whose source or target is empty (or only whitespace) is skipped and counted
// (run_translation would keep it as a lone "</s>", which teaches nothing). IoError: unreadable
// file, mismatched line counts (naming file:line of the first unpaired line), malformed JSON
// (file:line); ValueError: a language field absent from a line (naming the fields there are), mixed
// text and ids.
TranslationData read_translation_data(const std::string& spec, const std::string& source_lang,
                                      const std::string& target_lang);

// Turns text into token ids (a Marian tokenizer's encode_source / encode_target, both ending with
// </s>). Empty functions: only pre-tokenized data can be used.
struct TranslationTokenizer {
  std::function<std::vector<int64_t>(std::string_view)> encode_source, encode_target;
  int64_t eos_id = -1;                  // kept as the last token when truncating; -1: plain cut
  int64_t pad_id = -1, vocab_size = 0;  // checked against the model's config when known
};

struct TranslationOptions {
  std::string model_dir;      // a MarianMTModel / BartForConditionalGeneration folder, or
  std::string config_path;    // a config.json to start from scratch (initialised as transformers)
  std::string tokenizer_dir;  // tokenizer files copied into saved folders; "": model/config folder
  std::string train_data;     // read_translation_data spec
  std::string eval_data;      // "": eval_fraction of the training pairs held out (seeded)
  double eval_fraction = 0.0;
  std::string source_lang = "en", target_lang = "fr";
  // run_translation's --source_prefix: text put before every source text (not token ids), e.g.
  // "translate English to French: " for T5 checkpoints.
  std::string source_prefix;
  // run_translation's --max_*_length; capped by the model's max_position_embeddings
  int64_t max_source_length = 128, max_target_length = 128;
  bool truncate = true;  // false: a longer pair is a ValueError (file:line) instead of truncated
  double label_smoothing = 0.0;  // Seq2SeqTrainer's label_smoothing_factor (LabelSmoother)
  uint64_t seed = 42;            // held-out split and the from-scratch initialisation
  int64_t eval_batch_size = 32;
  int64_t max_train_examples = -1, max_eval_examples = -1;  // -1: all
  // Keep the pad token's rows of the token embeddings (and of an untied output layer) fixed: no
  // gradient reaches them, so a row that starts at zero (transformers' initialisation from a
  // config) stays zero. Marian-NMT and CTranslate2 start the decoder from a zero vector where
  // transformers embeds the pad token, so only then does the saved folder translate the same in
  // CTranslate2. Off by default, as in transformers (a tied output layer moves the row).
  bool freeze_pad_embedding = false;
};

// Token ids of one training example (dynamic padding happens per batch).
struct TranslationFeature {
  std::vector<int64_t> input_ids, labels;
  int64_t length() const { return static_cast<int64_t>(input_ids.size() + labels.size()); }
};

// An Objective over a MarianMTModel: the loss of a batch is transformers' Seq2SeqTrainer loss:
// sources right-padded with pad (attention_mask), labels padded with -100 (DataCollatorForSeq2Seq),
// decoder_input_ids = shift_tokens_right(labels), then LabelSmoother(epsilon) over the logits
// (epsilon 0: the model's own cross entropy). Tokens per batch (tokens/s): source + target tokens.
class TranslationObjective : public Objective {
 public:
  TranslationObjective(const TranslationOptions& options, const TranslationTokenizer& tokenizer);

  models::EncoderDecoderModel& model() { return *model_; }
  const std::vector<TranslationFeature>& train_features() const { return train_; }
  const std::vector<TranslationFeature>& eval_features() const { return eval_; }
  int64_t skipped_empty() const { return skipped_empty_; }
  int64_t truncated() const { return truncated_; }

  NamedTensors parameters() const override;
  void set_training(bool on) override;
  void before_optimizer_step() override;
  int64_t num_examples() const override { return static_cast<int64_t>(train_.size()); }
  int64_t example_length(int64_t i) const override { return train_.at(i).length(); }
  BatchLoss loss(std::span<const int64_t> indices, Generator& rng) override;
  // Target tokens (the label-smoothed loss is their mean), as HF's num_items_in_batch.
  int64_t loss_items(std::span<const int64_t> indices) const override;
  // eval_loss (label-smoothed as training, as Seq2SeqTrainer's evaluation loss).
  Metrics evaluate() override;
  // config.json, model.safetensors, generation_config.json (the input folder's, else as
  // transformers' GenerationConfig.from_model_config) and the tokenizer files.
  void save_pretrained(const std::string& dir) const override;
  void load_pretrained(const std::string& dir) override;

  // The loss of these features (batch collation + forward + label smoothing), in the current mode.
  Tensor batch_loss(const std::vector<TranslationFeature>& features,
                    std::span<const int64_t> indices, int64_t* tokens = nullptr) const;

 private:
  std::vector<TranslationFeature> make_features(const TranslationData& data,
                                                const TranslationTokenizer& tokenizer);
  TranslationOptions options_;
  std::unique_ptr<models::EncoderDecoderModel> model_;
  std::vector<TranslationFeature> train_, eval_;
  int64_t pad_id_ = 0;
  int64_t skipped_empty_ = 0, truncated_ = 0;
};

// transformers' LabelSmoother: logits [B, T, V], labels [B, T] (-100 ignored) ->
// (1 - eps) * mean NLL + eps * mean over active positions and classes of -log p.
Tensor label_smoothed_loss(const Tensor& logits, const Tensor& labels, double epsilon);

// The Marian tokenizer of `dir` (source.spm, target.spm, vocab.json) as encode functions; empty
// functions when the folder has none (then only pre-tokenized JSONL can be read).
TranslationTokenizer load_translation_tokenizer(const std::string& dir);

// Builds the objective: the model (load --model, or create from --config and initialise every key
// as transformers' _init_weights from options.seed), the data read, split and tokenized with
// `tokenizer`, or when its functions are empty with load_translation_tokenizer(tokenizer folder).
std::unique_ptr<TranslationObjective> make_translation_objective(
    const TranslationOptions& options, const TranslationTokenizer& tokenizer = {});

}  // namespace lmf::train
