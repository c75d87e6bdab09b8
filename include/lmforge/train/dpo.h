// Direct preference optimisation (`lmforge finetune --task dpo`), as TRL's DPOTrainer (1.16) with
// its default sigmoid loss: a policy decoder and a frozen reference (the policy's starting weights)
// score the chosen and the rejected answer of each preference pair by the summed log-probability
// of the answer tokens; loss -log sigmoid(beta ((pi_c - ref_c) - (pi_r - ref_r))).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/models/decoder.h"
#include "lmforge/models/lora.h"
#include "lmforge/train/reward.h"
#include "lmforge/train/trainer.h"

namespace lmf::train {

// TRL's extract_prompt for a pair without an explicit prompt: the longest common prefix of the two
// texts (whole UTF-8 characters; a space before the first difference goes back to the answers) or
// of the two message lists becomes the prompt, the rests the answers. A pair with an explicit
// prompt is returned as it is.
PreferenceRecord extract_prompt(PreferenceRecord record);

struct DpoExample {
  std::vector<int32_t> prompt, chosen, rejected;  // DPOTrainer's prompt_ids / chosen_ids / ...
  double ref_chosen = 0, ref_rejected = 0;        // the reference's sequence log-probabilities
};

struct DpoOptions {
  std::string model_dir;  // the policy's starting point (also the reference)
  std::string tokenizer_dir;
  std::string chat_template_file;
  std::string train_file, eval_file;
  double eval_split = 0.0;
  uint64_t seed = 42;
  double beta = 0.1;
  int64_t max_length = 1024;  // prompt + answer tokens kept (keep_start); longer prompts dropped
  bool strict_data = false;
  int64_t eval_batch_size = 8;
  int64_t max_train_examples = -1, max_eval_examples = -1;
  std::optional<models::LoraConfig> lora;  // LoRA on the policy; the reference is the base
};

struct DpoReport {
  std::vector<std::string> skipped;
  int64_t dropped = 0;  // pairs whose prompt alone fills max_length (TRL drops them)
  int64_t truncated = 0;
  int64_t train_examples = 0, eval_examples = 0;
  bool chat = false;
};

class DpoObjective : public Objective {
 public:
  DpoObjective(std::unique_ptr<models::DecoderModel> policy, std::vector<DpoExample> train,
               std::vector<DpoExample> eval, int64_t pad_id, double beta, int64_t max_length,
               int64_t eval_batch_size);
  ~DpoObjective() override;

  models::DecoderModel& model() { return *model_; }
  const std::vector<DpoExample>& train_examples() const { return train_; }

  NamedTensors parameters() const override;
  void set_training(bool on) override;
  int64_t num_examples() const override { return static_cast<int64_t>(train_.size()); }
  int64_t example_length(int64_t i) const override;
  // parts: rewards_chosen / rewards_rejected (beta x mean log-ratio), rewards_margin,
  // rewards_accuracy (chosen log-ratio above rejected), as TRL logs them.
  BatchLoss loss(std::span<const int64_t> indices, Generator& rng) override;
  // eval_loss and eval_rewards_{chosen,rejected,margin,accuracy}.
  Metrics evaluate() override;
  void save_pretrained(const std::string& dir) const override;
  void load_pretrained(const std::string& dir) override;

  // Summed answer log-probabilities of the batch's chosen rows then rejected rows ([2B]).
  Tensor sequence_logps(const std::vector<DpoExample>& examples, std::span<const int64_t> indices,
                        int64_t* tokens = nullptr) const;
  // Fills ref_chosen / ref_rejected of every example with the current weights (eval mode, no
  // grad): called before training, when the policy is still the reference.
  void compute_reference(std::vector<DpoExample>& examples);
  struct Result {
    Tensor loss;
    Metrics parts;
  };
  Result score(const std::vector<DpoExample>& examples, std::span<const int64_t> indices) const;

  std::vector<std::pair<std::string, std::string>> extra_files;
  // TRL's disable_dropout (default true for DPO and reward models): no dropout while training.
  bool disable_dropout = true;
  std::optional<models::LoraConfig> lora;
  std::string model_dir, lora_base, tokenizer_dir;

 private:
  std::unique_ptr<models::DecoderModel> model_;
  std::vector<DpoExample> train_, eval_;
  int64_t pad_id_;
  double beta_;
  int64_t max_length_, eval_batch_size_;
};

std::unique_ptr<DpoObjective> make_dpo_objective(const DpoOptions& options,
                                                 DpoReport* report = nullptr);

}  // namespace lmf::train
