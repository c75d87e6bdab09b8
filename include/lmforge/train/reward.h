// Reward modelling (`lmforge finetune --task reward`), as TRL's RewardTrainer (1.16): a decoder
// with a one-output sequence-classification head
// (GPT2/Llama/Qwen2/MistralForSequenceClassification) scores the chosen and the rejected answer of
// each preference pair, the loss is Bradley-Terry's -log sigmoid(r_chosen - r_rejected), and the
// metric is how often the chosen answer scores higher.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/models/decoder.h"
#include "lmforge/train/trainer.h"

namespace lmf::tok {
class Tokenizer;
}

namespace lmf::train {

// One usable preference pair.
struct PreferenceRecord {
  std::string where;  // "file:line" or "file: record N"
  // Text pairs (HH-RLHF: the prompt is implicit in both sides; or an explicit "prompt" string).
  std::string prompt, chosen, rejected;
  // Conversations: lists of {role, content} (prompt may be empty).
  bool conversational = false;
  nlohmann::ordered_json prompt_messages, chosen_messages, rejected_messages;
  std::optional<double> margin;  // an optional "margin" field (RewardTrainer subtracts it)
  bool explicit_prompt = false;  // the record had a "prompt" field
};

struct PreferenceData {
  std::vector<PreferenceRecord> records;
  std::vector<std::string> skipped;  // "where: why" of every malformed record
};

// A non-empty list of {"role": string, "content": string} messages.
bool is_chat_messages(const nlohmann::ordered_json& v);
// Fills `r` (whose `where` the caller sets) from one record {"chosen", "rejected"[, "prompt",
// "margin"]}; returns why the record is unusable, "" when it is usable.
std::string parse_preference_record(const nlohmann::ordered_json& j, PreferenceRecord& r);

// JSON Lines (or one JSON array) of {"chosen", "rejected"} with an optional "prompt" and
// "margin"; each side a string or a list of {role, content} messages. Malformed records (a missing
// or empty side, chosen equal to rejected, mixed strings and messages) are skipped and listed, or
// with `strict` refused (ValueError naming file:line). A .gz file is refused with what to do.
PreferenceData read_preference_records(const std::string& path, bool strict = false);

struct RewardOptions {
  std::string model_dir;      // a decoder folder: a causal LM (its head replaced) or a reward model
  std::string tokenizer_dir;  // "" : model_dir
  std::string chat_template_file;  // for conversational records without a template
  std::string train_file, eval_file;
  double eval_split = 0.0;    // no eval file: a seeded share of the pairs held out
  uint64_t seed = 42;         // the split and the new score head
  int64_t max_length = 1024;  // TRL filters out pairs with a side longer than this
  bool strict_data = false;
  std::optional<double> center_rewards_coefficient;  // adds c * mean((r_c + r_r)^2)
  int64_t eval_batch_size = 8;
  int64_t max_train_examples = -1, max_eval_examples = -1;
};

// Token ids of a pair, as RewardTrainer's _prepare_dataset makes them: text sides are prompt +
// side with EOS appended when missing, tokenized with the tokenizer's special tokens;
// conversations are rendered with the chat template (prompt + side messages) without added
// special tokens.
struct RewardExample {
  std::vector<int32_t> chosen, rejected;
  std::optional<double> margin;
};

struct RewardReport {
  std::vector<std::string> skipped;
  int64_t filtered = 0;  // pairs with a side longer than max_length, left out (TRL filters)
  int64_t train_examples = 0, eval_examples = 0;
  bool new_head = false;  // the score head was initialised (the folder had none)
};

class RewardObjective : public Objective {
 public:
  RewardObjective(std::unique_ptr<models::DecoderModel> model, std::vector<RewardExample> train,
                  std::vector<RewardExample> eval, int64_t pad_id, std::string tokenizer_dir,
                  std::optional<double> center_rewards_coefficient, int64_t eval_batch_size);
  ~RewardObjective() override;

  models::DecoderModel& model() { return *model_; }
  const std::vector<RewardExample>& train_examples() const { return train_; }

  NamedTensors parameters() const override;
  void set_training(bool on) override;
  int64_t num_examples() const override { return static_cast<int64_t>(train_.size()); }
  int64_t example_length(int64_t i) const override;
  // The batch's chosen rows then rejected rows, right-padded, through the model; parts: accuracy
  // and margin of the batch.
  BatchLoss loss(std::span<const int64_t> indices, Generator& rng) override;
  // eval_loss, eval_accuracy (r_chosen > r_rejected), eval_margin (mean r_chosen - r_rejected),
  // eval_reward_chosen / eval_reward_rejected (means).
  Metrics evaluate() override;
  void save_pretrained(const std::string& dir) const override;
  void load_pretrained(const std::string& dir) override;

  struct Scores {
    Tensor loss;                           // scalar with its graph
    std::vector<double> chosen, rejected;  // rewards per pair
    int64_t tokens = 0;
  };
  Scores score(const std::vector<RewardExample>& examples, std::span<const int64_t> indices) const;

  std::vector<std::pair<std::string, std::string>> extra_files;  // e.g. chat_template.jinja
  // TRL's disable_dropout (default true for DPO and reward models): no dropout while training.
  bool disable_dropout = true;

 private:
  std::unique_ptr<models::DecoderModel> model_;
  std::vector<RewardExample> train_, eval_;
  int64_t pad_id_;
  std::string tokenizer_dir_;
  std::optional<double> center_;
  int64_t eval_batch_size_;
};

// The sequence-classification architecture of a decoder config ("LlamaForSequenceClassification").
std::string sequence_classification_architecture(const std::string& config_text,
                                                 const std::string& origin);

// The one-output sequence classifier in `dir` (a reward model; a causal-LM folder gets a new score
// head, seeded with `seed`, reported through `new_head`), with a pad id for pooling from the
// tokenizer in `tokenizer_dir` (its pad, else EOS, as TRL) when the config has none.
std::unique_ptr<models::DecoderModel> load_score_model(const std::string& dir,
                                                       const std::string& tokenizer_dir,
                                                       uint64_t seed, bool* new_head = nullptr);

std::unique_ptr<RewardObjective> make_reward_objective(const RewardOptions& options,
                                                       RewardReport* report = nullptr);

}  // namespace lmf::train
