// Causal-LM training (`lmforge pretrain --recipe gpt`): pretraining a GPT-2 or LLaMA-family
// decoder from scratch or continuing from a checkpoint, with data prepared as transformers'
// examples/pytorch/language-modeling/run_clm.py prepares it (one example per line with its line
// break, tokenized with the tokenizer's special tokens, concatenated and cut into blocks) and the
// model's own next-token loss.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "lmforge/models/decoder.h"
#include "lmforge/models/lora.h"
#include "lmforge/train/trainer.h"

namespace lmf::tok {
class Tokenizer;
}

namespace lmf::train {

// The examples of a text file as run_clm reads them: plain text through datasets' "text" builder
// with keep_linebreaks (run_clm's default): one example per line, its "\n" kept ("\r\n" and "\r"
// read as "\n", universal newlines), blank lines included; the last line without a break when the
// file ends without one. .json / .jsonl: the `field` string of every object (JSON Lines, or one
// JSON array of objects), as datasets' "json" builder. IoError when unreadable; ValueError naming
// file:line for invalid UTF-8, malformed JSON, a missing or non-string field, or a file with no
// text at all.
std::vector<std::string> read_clm_texts(const std::string& path, const std::string& field = "text");

// run_clm's group_texts: every example's ids concatenated, the remainder that does not fill a
// block dropped, the rest cut into blocks of block_size (labels = the blocks themselves).
std::vector<std::vector<int32_t>> group_texts(const std::vector<std::vector<int32_t>>& examples,
                                              int64_t block_size);

struct ClmOptions {
  std::string model_dir;      // a decoder folder to continue from (GPT-2, LLaMA, Qwen2, Mistral)
  std::string config_path;    // or a config.json to start from scratch (initialised as HF)
  std::string tokenizer_dir;  // "" : model_dir, else the config's folder
  std::vector<std::string> train_files;
  std::vector<std::string> eval_files;
  // No eval files: this share of the training examples (lines) held out, taken from the start of
  // the data as run_clm's --validation_split_percentage does (train[:p%] / train[p%:]).
  double eval_split = 0.0;
  std::string text_field = "text";  // JSON(L) field
  // Tokens per block (run_clm's --block_size); 0: min(1024, the model's positions, the
  // tokenizer's model_max_length), as run_clm without the flag.
  int64_t block_size = 0;
  uint64_t seed = 42;  // the from-scratch initialisation
  int64_t eval_batch_size = 8;
  // LoRA (PEFT): adapters on lora->target_modules train, the base stays frozen, saved folders
  // hold the adapter.
  std::optional<models::LoraConfig> lora;
};

// One training sequence of a decoder: its tokens and which of them are trained.
struct LmExample {
  std::vector<int32_t> input_ids;
  // Empty: every token is a target (labels = input_ids, run_clm); else the same size, -100 where a
  // token is not trained (an SFT prompt), the token id elsewhere.
  std::vector<int32_t> labels;
  int64_t size() const { return static_cast<int64_t>(input_ids.size()); }
};

// The model's causal-LM loss (labels shifted inside the model, -100 ignored) on batches of
// examples right-padded with pad_id (attention mask 0, labels -100 there), as transformers'
// DataCollatorForLanguageModeling / TRL's collator pad them; equal-length examples need no
// padding. Tokens per batch: every non-padding token.
class ClmObjective : public Objective {
 public:
  ClmObjective(std::unique_ptr<models::DecoderModel> model, std::vector<LmExample> train,
               std::vector<LmExample> eval, int64_t pad_id, std::string tokenizer_dir,
               std::string model_dir, int64_t eval_batch_size);
  ~ClmObjective() override;

  models::DecoderModel& model() { return *model_; }
  const std::vector<LmExample>& train_examples() const { return train_; }
  const std::vector<LmExample>& eval_examples() const { return eval_; }
  // The longest training example (the block size for run_clm's blocks).
  int64_t block_size() const;

  NamedTensors parameters() const override;
  void set_training(bool on) override;
  int64_t num_examples() const override;
  int64_t example_length(int64_t i) const override;
  BatchLoss loss(std::span<const int64_t> indices, Generator& rng) override;
  // Predicted tokens (labels after the first position that are not -100), HF 5.x's
  // num_items_in_batch for shifted labels.
  int64_t loss_items(std::span<const int64_t> indices) const override;
  // eval_loss (mean next-token loss over the trained tokens), eval_perplexity = exp(eval_loss)
  // and eval_accuracy (the argmax prediction equals the next trained token), as run_clm reports
  // them for blocks.
  Metrics evaluate() override;
  // config.json, model.safetensors, generation_config.json (the input folder's, else
  // GenerationConfig.from_model_config) and the tokenizer files; plus extra_files.
  void save_pretrained(const std::string& dir) const override;
  void load_pretrained(const std::string& dir) override;

  // Packed training (TRL's packing with the bfd strategies): training example i becomes the group
  // groups[i] of train_examples() (a bin of pack_bfd); a batch of groups runs every member as its
  // own row, so attention and positions stop at each sequence's end as in TRL's padding-free
  // batches, and the loss is the mean over all the batch's predicted tokens, as there.
  void set_train_groups(std::vector<std::vector<int64_t>> groups);
  const std::vector<std::vector<int64_t>>& train_groups() const { return groups_; }

  // The loss of examples[indices] (mean over their predicted tokens), in the current mode.
  Tensor batch_loss(const std::vector<LmExample>& examples, std::span<const int64_t> indices) const;

  // Files written next to every saved model (name -> content), e.g. a chat template given on the
  // command line as chat_template.jinja.
  std::vector<std::pair<std::string, std::string>> extra_files;
  // Set when the model carries LoRA adapters (models::add_lora): save_pretrained then writes the
  // adapter as PEFT does (adapter_config.json + adapter_model.safetensors, base_model_name_or_path
  // = lora_base) instead of the whole model, and load_pretrained reads it back.
  std::optional<models::LoraConfig> lora;
  std::string lora_base;

 private:
  struct Batch;
  Batch make_batch(const std::vector<LmExample>& examples, std::span<const int64_t> indices) const;
  std::unique_ptr<models::DecoderModel> model_;
  std::vector<LmExample> train_, eval_;
  std::vector<std::vector<int64_t>> groups_;  // packed bins of train_ (empty: not packed)
  std::vector<int64_t> members(std::span<const int64_t> indices) const;
  int64_t pad_id_ = 0;
  std::string tokenizer_dir_, model_dir_;
  int64_t eval_batch_size_ = 8;
};

// TRL's pack_dataset (trl 1.16, data_utils.py) on examples, in pieces of 1000 examples as
// datasets.map(batched=True) hands them to the packer:
//   "bfd": each example cut to seq_length (keep_start), then best-fit decreasing: longest first
//   (ties in order), each into the open bin with the least room that still fits it (the oldest of
//   those), else a new bin; returns the bins as lists of example indices, in creation order.
//   "bfd_split": as bfd, but an example longer than seq_length is split into pieces of seq_length
//   (the last shorter) which are packed as separate sequences (`examples` is rewritten).
//   "wrapped": the examples of each piece concatenated and cut into rows of seq_length (the last
//   of a piece shorter), labels carried along; `examples` is rewritten and each row is its own
//   group.
std::vector<std::vector<int64_t>> pack_examples(std::vector<LmExample>& examples,
                                                int64_t seq_length, const std::string& strategy);

// Blocks as examples whose every token is trained.
std::vector<LmExample> as_examples(std::vector<std::vector<int32_t>> blocks);

// The causal-LM head architecture of a decoder config ("GPT2LMHeadModel", "LlamaForCausalLM",
// "Qwen2ForCausalLM", "MistralForCausalLM"); ValueError naming the supported model types.
std::string causal_lm_architecture(const std::string& config_text, const std::string& origin);

// True when `config_file` is a readable config.json whose model_type is a decoder lmforge trains
// as a causal LM (to steer users of the encoder recipes to --recipe gpt).
bool is_decoder_config(const std::string& config_file);

// Reads and tokenizes the data, builds or loads the model. ValueError naming the option for
// both or neither of model_dir/config_path, a block size beyond the model's positions, a
// tokenizer larger than the model's vocabulary, or data too short for one block.
std::unique_ptr<ClmObjective> make_clm_objective(const ClmOptions& options);

// For the objectives built on ClmObjective (SFT): a decoder with an LM head from a folder (with its
// head, or a base model given a new one) or from a config.json (initialised as transformers'
// _init_weights, seeded); `config_file` receives the config read.
std::unique_ptr<models::DecoderModel> load_or_create_causal_lm(const std::string& model_dir,
                                                               const std::string& config_path,
                                                               uint64_t seed,
                                                               std::string* config_file = nullptr);
// `lmforge merge-lora`: the base folder (base_dir "" : the adapter's base_model_name_or_path)
// with the adapter folded into its weights (models::merge_lora), written as a plain Hugging Face
// folder (config.json, model.safetensors, generation_config.json, and the tokenizer files of the
// adapter folder when it has them, else the base's). Returns the number of merged layers.
int64_t merge_lora_folder(std::string base_dir, const std::string& adapter_dir,
                          const std::string& out_dir);

// What a decoder objective writes to `dir`: the adapter (PEFT layout) when `lora` is set, else the
// model (config.json, model.safetensors, generation_config.json copied from model_dir or made from
// the config); then the tokenizer files of tokenizer_dir and extra_files (name -> content).
void save_decoder_folder(const models::DecoderModel& model,
                         const std::optional<models::LoraConfig>& lora,
                         const std::string& lora_base, const std::string& model_dir,
                         const std::string& tokenizer_dir,
                         const std::vector<std::pair<std::string, std::string>>& extra_files,
                         const std::string& dir);
// Reads back what save_decoder_folder wrote into the live parameters (for --resume).
void load_decoder_folder(models::DecoderModel& model, const std::optional<models::LoraConfig>& lora,
                         const std::string& dir);

// The pad id batches use: the model's pad_token_id, else its first EOS id (as TRL pads with EOS
// when a tokenizer has no pad token), else 0. Padding is masked and never a target, so the value
// does not change the loss.
int64_t decoder_pad_id(const models::DecoderModel& model);

}  // namespace lmf::train
