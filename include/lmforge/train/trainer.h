// The training loop shared by pretraining and fine-tuning: an Objective (model + data + loss) is
// trained by train() with HF Trainer's defaults and behaviours (AdamW, linear warmup/decay,
// accumulation, clipping, length-grouped batches, evaluation, best checkpoint, early stopping,
// atomic checkpoints and bit-exact --resume).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "lmforge/core/runtime.h"
#include "lmforge/core/tensor.h"

namespace lmf::train {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using Metrics = std::map<std::string, double>;

// What a training run optimises: owns the model(s) and the prepared data, turns a list of
// training-example indices into a loss. Implemented by the fine-tuning objectives (classification,
// token classification, QA, similarity), the pretraining objectives (MLM+NSP, MLM, MLM+SOP) and
// ELECTRA (generator + discriminator).
class Objective {
 public:
  virtual ~Objective() = default;

  // Every trainable parameter once, with a unique stable name (shared weights under one name).
  virtual NamedTensors parameters() const = 0;
  // Training mode (dropout on) or evaluation mode for every model of the objective.
  virtual void set_training(bool on) = 0;

  virtual int64_t num_examples() const = 0;
  // Tokens of example i (for length-grouped batching and tokens/s).
  virtual int64_t example_length(int64_t i) const = 0;

  struct BatchLoss {
    Tensor loss;         // scalar f32 with its autograd graph (the mean over the batch)
    int64_t tokens = 0;  // non-padding tokens in the batch
    Metrics parts;       // optional components for logging, e.g. {"mlm_loss", "nsp_loss"}
  };
  // The loss of the batch made of these training examples (dynamic padding). `rng` drives any
  // sampling of the batch (dynamic masking, ELECTRA's generator samples); the trainer saves its
  // state in checkpoints so a resumed run draws the same numbers.
  virtual BatchLoss loss(std::span<const int64_t> indices, Generator& rng) = 0;
  // How many items (e.g. target tokens) the loss of these examples is a mean over. With gradient
  // accumulation, when every micro-batch has items, the trainer weights each micro-batch's loss by
  // its share of the update's items (HF 5.x's num_items_in_batch) instead of 1 / micro-batches.
  // 0 (the default): a plain mean of the micro-batch losses.
  virtual int64_t loss_items(std::span<const int64_t> indices) const {
    (void)indices;
    return 0;
  }

  // An objective whose update is a procedure rather than one loss (PPO: a rollout, then several
  // epochs of optimizer steps on it) overrides update(): it gets the examples of the update
  // (per_device_train_batch_size x gradient_accumulation_steps of them, in the epoch's order),
  // accumulates gradients and calls `optimizer_step` (before_optimizer_step, clipping, the AdamW
  // step at the schedule's current learning rate, zeroed gradients) as often as it needs; the
  // schedule advances once per update, so global_step counts updates. nullopt (the default): the
  // trainer runs loss() with its own accumulation.
  struct UpdateResult {
    double loss = 0;     // logged as the step's loss
    int64_t tokens = 0;  // for tokens/s
    Metrics parts;       // logged averaged over the logging window, as BatchLoss::parts
  };
  virtual std::optional<UpdateResult> update(std::span<const int64_t> indices, Generator& rng,
                                             const std::function<void()>& optimizer_step) {
    (void)indices;
    (void)rng;
    (void)optimizer_step;
    return std::nullopt;
  }

  // Metrics on the held-out data, keys prefixed "eval_" as HF does ("eval_loss",
  // "eval_accuracy", ...). Empty when there is no held-out data. Runs in evaluation mode.
  virtual Metrics evaluate() { return {}; }

  // Called once per optimizer step after the gradients of the update are accumulated and before
  // they are clipped: an objective may edit them here (e.g. keep an embedding row frozen).
  virtual void before_optimizer_step() {}

  // Writes the trained model(s) as Hugging Face folder(s) (config.json with architectures and
  // id2label, model.safetensors, tokenizer files) that transformers loads with no missing keys.
  virtual void save_pretrained(const std::string& dir) const = 0;
  // Restores the weights written by save_pretrained(dir) exactly (used by --resume). train()
  // calls it before parameters() on resume, and at the end for load_best_model_at_end (then it
  // must copy into the existing parameter tensors, e.g. nn::Module::load_state_dict).
  virtual void load_pretrained(const std::string& dir) = 0;
};

// HF TrainingArguments names and defaults where they exist.
struct TrainerOptions {
  std::string output_dir;  // required: checkpoints, metrics.jsonl, plot, final model
  double num_train_epochs = 3.0;
  int64_t max_steps = -1;  // > 0 overrides num_train_epochs
  int64_t per_device_train_batch_size = 8;
  int64_t gradient_accumulation_steps = 1;
  double learning_rate = 5e-5;
  double weight_decay = 0.0;  // not applied to biases and norm weights (as HF)
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;                // <= 0: no clipping
  std::string lr_scheduler_type = "linear";  // linear | cosine | constant | constant_with_warmup
  double warmup_ratio = 0.0;
  int64_t warmup_steps = 0;  // > 0 overrides warmup_ratio
  uint64_t seed = 42;
  bool group_by_length = false;  // HF LengthGroupedSampler
  int64_t logging_steps = 50;
  int64_t eval_steps = 0;        // 0: evaluate at the end of each epoch only
  int64_t save_steps = 500;      // 0: no step checkpoints (final model still saved)
  int64_t save_total_limit = 2;  // keep the newest N checkpoints (+ the best); 0: all
  bool load_best_model_at_end = false;
  std::string metric_for_best_model = "eval_loss";
  std::optional<bool> greater_is_better;  // unset: false for names ending in "loss", else true
  int64_t early_stopping_patience = 0;    // > 0: stop after N evaluations without improvement
  bool resume = false;                    // continue from the newest checkpoint in output_dir
  bool progress = true;                   // progress bar with loss, lr, tokens/s, ETA on stderr
};

struct TrainResult {
  int64_t global_step = 0;
  double epoch = 0;
  double train_loss = 0;  // mean over all steps
  Metrics final_eval;     // last evaluate() (empty when none)
  std::optional<double> best_metric;
  std::string best_model_checkpoint;  // "" when none
  double train_runtime_s = 0;
  double train_samples_per_second = 0, train_tokens_per_second = 0;
  bool stopped_early = false;
};

// Step arithmetic of HF Trainer (transformers 5.x set_initial_training_values) for a data set.
struct TrainingPlan {
  int64_t num_examples = 0;
  int64_t batches_per_epoch = 0;  // ceil(num_examples / batch): the last partial batch is kept
  int64_t updates_per_epoch = 0;  // max(ceil(batches_per_epoch / accumulation), 1)
  int64_t max_steps = 0;          // options.max_steps, else ceil(epochs * updates_per_epoch)
  int64_t num_epochs = 0;         // epochs the loop may start (the last may stop early)
  int64_t warmup_steps = 0;       // options.warmup_steps, else ceil(warmup_ratio * max_steps)
};
// ValueError naming the option for nonsense values (batch 0, unknown scheduler, ...).
void validate_options(const TrainerOptions& options);
TrainingPlan plan_training(const TrainerOptions& options, int64_t num_examples);
// The example order of epoch `epoch` (0-based): a permutation seeded from (seed, epoch), or with
// group_by_length HF's get_length_grouped_indices on it. Batches are consecutive slices.
std::vector<int64_t> epoch_order(std::span<const int64_t> lengths, const TrainerOptions& options,
                                 int64_t epoch);

// Runs the training. Writes output_dir/metrics.jsonl (one JSON object per log/eval event),
// output_dir/training_curves.html (self-contained plot of loss, lr and eval metrics),
// output_dir/checkpoint-<step>/ (save_pretrained + optimizer.safetensors + trainer_state.json,
// written to a temporary folder and renamed) and the final model in output_dir.
// `on_log` (optional) receives every logged metrics object.
TrainResult train(Objective& objective, const TrainerOptions& options,
                  const std::function<void(const Metrics&)>& on_log = {});

}  // namespace lmf::train
