// Proximal policy optimisation with a learned reward (`lmforge finetune --task ppo`), as TRL's
// PPOTrainer (trl 0.23, the last TRL with PPO; the InstructGPT recipe): each update samples
// responses to a batch of prompts with the policy, scores them with a frozen reward model,
// subtracts a per-token KL penalty against a frozen reference (the policy's starting weights),
// estimates advantages with GAE from a trained value model, then runs several epochs of clipped
// policy and value losses over mini-batches of that rollout.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/models/decoder.h"
#include "lmforge/train/trainer.h"

namespace lmf::train {

// TRL PPOConfig's names and defaults.
struct PpoConfig {
  int64_t num_ppo_epochs = 4;
  int64_t num_mini_batches = 1;
  bool whiten_rewards = false;
  double kl_coef = 0.05;
  std::string kl_estimator = "k1";  // k1: logp - ref; k3: (r - 1) - log r with r = ref / p
  double cliprange = 0.2;
  double vf_coef = 0.1;
  double cliprange_value = 0.2;
  double gamma = 1.0;
  double lam = 0.95;
  int64_t response_length = 53;  // new tokens per response
  double temperature = 0.7;      // sampling, and the logits' scale in every log-probability
  // Generation stops at this token and the response is cut after it (TRL's stop_token "eos" /
  // stop_token_id); unset: every response is response_length tokens.
  std::optional<int64_t> stop_token_id;
  std::optional<double> missing_eos_penalty;  // subtracted from the score of responses without EOS
  int64_t local_rollout_forward_batch_size = 64;  // rows per no-grad forward in the rollout
  int64_t per_device_train_batch_size = 8;        // rows per training forward (micro-batch)
  int64_t gradient_accumulation_steps = 1;        // the rollout is per_device x accumulation rows
};

// One rollout: B prompts, their sampled responses and what TRL computes from them (row-major
// [B, R] arrays; R = the longest response of the batch).
struct PpoRollout {
  int64_t rows = 0, context = 0, length = 0;  // B, the padded prompt length, R
  std::vector<std::vector<int64_t>> queries;  // unpadded prompt ids
  // Response ids [B, R] as generated (pad after the stop token); `real` marks the tokens up to and
  // including the stop token (TRL's truncate_response), the only response tokens the models see.
  std::vector<int64_t> responses;
  std::vector<int64_t> sequence_lengths;  // index of each row's last real response token
  std::vector<float> logprobs, ref_logprobs, values, kl, non_score_reward, rewards, advantages,
      returns;                                      // [B, R]; padded positions as TRL fills them
  std::vector<char> padding_mask, padding_mask_p1;  // [B, R]: position > length (+ 1)
  std::vector<double> scores;     // [B] reward-model scores (after the EOS penalty)
  std::vector<char> contain_eos;  // [B]
  int64_t num_eos_tokens = 0;     // EOS tokens among the responses
};

struct PpoExample {
  std::vector<int32_t> query;
};

class PpoObjective : public Objective {
 public:
  PpoObjective(std::unique_ptr<models::DecoderModel> policy,
               std::unique_ptr<models::DecoderModel> ref_policy,
               std::unique_ptr<models::DecoderModel> reward_model,
               std::unique_ptr<models::DecoderModel> value_model, std::vector<PpoExample> train,
               std::vector<PpoExample> eval, int64_t pad_id, int64_t eos_id, PpoConfig config);
  ~PpoObjective() override;

  models::DecoderModel& policy() { return *policy_; }
  models::DecoderModel& value_model() { return *value_; }
  const PpoConfig& config() const { return cfg_; }

  NamedTensors parameters() const override;  // "policy.<name>" then "value.<name>"
  void set_training(bool on) override;
  int64_t num_examples() const override { return static_cast<int64_t>(train_.size()); }
  int64_t example_length(int64_t i) const override;
  // Not used: PPO runs update().
  BatchLoss loss(std::span<const int64_t> indices, Generator& rng) override;
  // One PPO update: sample responses to the prompts (seeded from `rng`), rollout(), ppo_epochs().
  // Parts: TRL's logged metrics (objective/kl, objective/entropy, objective/non_score_reward,
  // objective/rlhf_reward, objective/scores, policy/approxkl_avg, policy/clipfrac_avg,
  // loss/policy_avg, loss/value_avg, val/clipfrac_avg, policy/entropy_avg, val/ratio,
  // val/ratio_var, val/num_eos_tokens); loss = loss/policy_avg + vf_coef loss/value_avg.
  std::optional<UpdateResult> update(std::span<const int64_t> indices, Generator& rng,
                                     const std::function<void()>& optimizer_step) override;
  // Held-out prompts: responses sampled with a fixed seed, their mean score, KL and length
  // (eval_objective/scores, eval_objective/kl, eval_objective/rlhf_reward, eval_response_length).
  Metrics evaluate() override;
  // The policy as a Hugging Face folder in `dir`, the value model in `dir`/value_model.
  void save_pretrained(const std::string& dir) const override;
  void load_pretrained(const std::string& dir) override;

  // Samples responses (temperature sampling, top_k 0, top_p 1, stop token) to these prompts.
  std::vector<std::vector<int64_t>> sample_responses(
      const std::vector<std::vector<int64_t>>& queries, uint64_t seed) const;
  // Steps 1-6 of TRL's update on given responses (each as generated: ids up to the stop token or
  // response_length, shorter rows padded): log-probabilities of the policy and the reference,
  // values, scores, the EOS penalty, masks, KL-penalised rewards, GAE advantages (whitened) and
  // returns. No gradients.
  PpoRollout rollout(const std::vector<std::vector<int64_t>>& queries,
                     const std::vector<std::vector<int64_t>>& responses) const;
  // The PPO epochs on a rollout: per epoch a permutation of the rows (from `rng`, or
  // `permutations[epoch]` when given), mini-batches of B / num_mini_batches rows, micro-batches of
  // per_device_train_batch_size rows whose losses (pg_loss + vf_coef vf_loss, each / the micro-
  // batches of a mini-batch) accumulate into one optimizer step per mini-batch. Returns the
  // metrics TRL logs for the update.
  Metrics ppo_epochs(const PpoRollout& r, Generator& rng,
                     const std::function<void()>& optimizer_step,
                     const std::vector<std::vector<int64_t>>* permutations = nullptr);

  std::vector<std::pair<std::string, std::string>> extra_files;  // e.g. chat_template.jinja
  std::string policy_dir, value_dir, tokenizer_dir;
  uint64_t eval_seed = 42;
  int64_t eval_batch_size = 8;

 private:
  struct Batch;
  Batch make_batch(const PpoRollout& r, std::span<const int64_t> rows) const;

  std::unique_ptr<models::DecoderModel> policy_, ref_, reward_, value_;
  std::vector<PpoExample> train_, eval_;
  int64_t pad_id_, eos_id_;
  PpoConfig cfg_;
};

struct PpoOptions {
  std::string model_dir;         // the policy's starting point (also the reference)
  std::string reward_model_dir;  // a one-output *ForSequenceClassification (finetune --task reward)
  std::string value_model_dir;   // "": reward_model_dir (TRL's examples start the critic there)
  std::string tokenizer_dir;     // "": model_dir
  std::string chat_template_file;
  std::string train_file, eval_file;
  double eval_split = 0.0;
  uint64_t seed = 42;
  bool stop_at_eos = false;  // TRL's stop_token "eos": ppo.stop_token_id = the tokenizer's EOS
  int64_t max_prompt_length = 512;  // longer prompts are left out (TRL's example filters them)
  bool strict_data = false;
  int64_t eval_batch_size = 8;
  int64_t max_train_examples = -1, max_eval_examples = -1;
  PpoConfig ppo;
};

struct PpoReport {
  std::vector<std::string> skipped;
  int64_t too_long = 0;
  int64_t train_examples = 0, eval_examples = 0;
  bool chat = false;  // some prompts were conversations rendered with the chat template
  bool new_value_head = false;
};

// Prompts from JSON Lines / a JSON array: {"prompt": text or messages}, {"messages": [...]} (the
// messages before the first assistant turn) or a preference pair {"chosen", "rejected"} (its
// prompt as DPO's extract_prompt finds it: HH-RLHF's dialogue up to the last "Assistant:").
// Messages are rendered with the chat template and a generation prompt; text is tokenized with
// the tokenizer's special tokens.
std::unique_ptr<PpoObjective> make_ppo_objective(const PpoOptions& options,
                                                 PpoReport* report = nullptr);

}  // namespace lmf::train
