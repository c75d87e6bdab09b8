// Supervised fine-tuning of decoders (`lmforge finetune --task sft`), as TRL's SFTTrainer (1.16)
// prepares data: instruction records (Alpaca JSON: instruction / input / output), chat records
// (JSONL `messages` lists) and prompt/completion text records, rendered with the model's chat
// template, tokenized, truncated, and trained with the loss only on the answers (TRL's
// completion-only loss) or on every token. The training itself is ClmObjective's.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/train/clm.h"

namespace lmf::tok {
class Tokenizer;
}

namespace lmf::train {

// One usable record.
struct SftRecord {
  std::string where;                // "file:line" (JSONL) or "file: record N" (a JSON array)
  nlohmann::ordered_json messages;  // the conversation ([{role, content}, ...]); empty for text
  // Alpaca records keep their fields (the no-template form is Stanford Alpaca's prompt text).
  bool alpaca = false;
  std::string instruction, input, output;
  // prompt/completion text records (TRL's non-conversational prompt-completion)
  bool text = false;
  std::string prompt, completion;
};

struct SftData {
  std::vector<SftRecord> records;
  std::vector<std::string> skipped;  // "where: why" of every malformed record left out
};

// Reads a .json file (one array of records, Alpaca's layout) or JSON Lines (.jsonl; blank lines
// ignored). A record is {"instruction", "input" (optional), "output"} (Alpaca; the user turn is
// the instruction, plus "\n\n" and the input when there is one), {"messages": [{"role",
// "content"}, ...]} ending with a non-empty assistant turn, or {"prompt", "completion"} strings.
// Malformed records (missing or non-string fields, an empty answer, a conversation that does not
// end with the assistant, a prompt equal to nothing) are skipped and listed with their place, or
// with `strict` refused: ValueError naming file:line. IoError when unreadable; ValueError for
// invalid JSON (file:line) or when no record is usable.
SftData read_sft_records(const std::string& path, bool strict = false);

// How records become token ids.
struct SftFormat {
  std::optional<std::string> chat_template;  // the model's (or --chat-template); none: text form
  nlohmann::ordered_json special_tokens;     // bos_token, eos_token, ... for the template
  std::string eos_token;                     // appended to text completions (TRL's add_eos)
  bool completion_only_loss = true;          // false: every token is trained
};

// One record as SFTTrainer tokenizes it. Conversations: apply_chat_template(tokenize=True) of the
// whole conversation (no special tokens added); with completion_only_loss each assistant turn is
// trained from where the conversation up to it rendered with the generation prompt stops matching
// (TRL's common-prefix rule for a prompt-completion) to where the conversation up to and
// including it ends, so a single exchange equals TRL's conversational prompt-completion. Alpaca
// records without a chat template and prompt/completion records: tokenizer(prompt) and
// tokenizer(prompt + completion + EOS) with special tokens, the completion after their common
// prefix. ValueError (naming record.where) for a conversation without a chat template.
LmExample sft_example(const SftRecord& record, const tok::Tokenizer& tokenizer,
                      const SftFormat& format);

struct SftOptions {
  std::string model_dir;           // a decoder folder (GPT-2, LLaMA, Qwen2, Mistral)
  std::string tokenizer_dir;       // "" : model_dir
  std::string chat_template_file;  // a Jinja file replacing the tokenizer's chat template
  std::string train_file, eval_file;
  double eval_split = 0.0;  // no eval file: a seeded share of the records held out
  uint64_t seed = 42;
  int64_t max_length = 1024;  // TRL's max_length: longer sequences keep their start
  bool completion_only_loss = true;
  // TRL's packing (SFTConfig packing / packing_strategy): training sequences share rows of
  // max_length tokens (see pack_examples); with packing, truncation is the packer's and examples
  // left without a trained token are kept, as TRL does.
  bool packing = false;
  std::string packing_strategy = "bfd";  // bfd | bfd_split | wrapped
  bool strict_data = false;              // refuse malformed records instead of skipping them
  int64_t eval_batch_size = 8;
  int64_t max_train_examples = -1, max_eval_examples = -1;  // -1: all
  // LoRA (PEFT): when set, adapters on lora->target_modules train and the base stays frozen;
  // saved folders hold the adapter (adapter_config.json, adapter_model.safetensors).
  std::optional<models::LoraConfig> lora;
};

struct SftReport {
  std::vector<std::string> skipped;  // malformed records, "where: why"
  int64_t truncated = 0;             // examples cut to max_length
  int64_t dropped = 0;               // left without a trained token by the truncation (TRL drops)
  int64_t train_examples = 0, eval_examples = 0;
  int64_t packed_rows = 0;                // packing: the training rows (bins) made
  bool chat = false;                      // rendered with a chat template
  std::vector<std::string> lora_modules;  // the adapted layers (LoRA)
  int64_t trainable_parameters = 0, total_parameters = 0;
};

// Loads the model and tokenizer, reads, splits and tokenizes the data, and returns the objective
// (ClmObjective: right-padded batches, the model's loss over the trained tokens). The chat
// template given by file is saved next to the model as chat_template.jinja.
std::unique_ptr<ClmObjective> make_sft_objective(const SftOptions& options,
                                                 SftReport* report = nullptr);

}  // namespace lmf::train
