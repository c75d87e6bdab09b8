// Command-line flags shared by `lmforge pretrain` and `lmforge finetune`: Hugging Face
// TrainingArguments names (dashes instead of underscores) bound to lmf::train::TrainerOptions.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "lmforge/train/clm.h"
#include "lmforge/train/trainer.h"

namespace lmf::cli {

// Adds --output-dir (required), --epochs, --max-steps, --batch-size, --grad-accum, --lr,
// --weight-decay, --warmup-ratio, --warmup-steps, --scheduler, --max-grad-norm, --seed,
// --group-by-length, --logging-steps, --eval-steps, --save-steps, --save-total-limit,
// --early-stopping-patience, --metric-for-best-model, --load-best-model-at-end, --resume,
// --no-progress to `sub`, bound to `o` (defaults shown in --help are `o`'s current values).
inline void add_trainer_options(CLI::App* sub, train::TrainerOptions& o) {
  sub->add_option("-o,--output-dir", o.output_dir,
                  "folder for checkpoints, metrics.jsonl, training_curves.html and the final "
                  "model (a Hugging Face folder)")
      ->required();
  sub->add_option("--epochs", o.num_train_epochs, "training epochs (num_train_epochs)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--max-steps", o.max_steps, "optimizer steps; > 0 overrides --epochs")
      ->capture_default_str();
  sub->add_option("--batch-size", o.per_device_train_batch_size, "examples per forward pass")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  sub->add_option("--grad-accum", o.gradient_accumulation_steps,
                  "forward passes per optimizer step (gradient accumulation)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  sub->add_option("--lr", o.learning_rate, "peak learning rate of AdamW")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub->add_option("--weight-decay", o.weight_decay,
                  "AdamW weight decay (not applied to biases and LayerNorm weights)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--warmup-ratio", o.warmup_ratio, "fraction of the steps spent warming up")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  sub->add_option("--warmup-steps", o.warmup_steps, "warm-up steps; > 0 overrides --warmup-ratio")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--scheduler", o.lr_scheduler_type, "learning-rate schedule after warm-up")
      ->check(CLI::IsMember({"linear", "cosine", "constant", "constant_with_warmup"}))
      ->capture_default_str();
  sub->add_option("--max-grad-norm", o.max_grad_norm, "gradient clipping norm; 0 disables it")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--seed", o.seed, "random seed: the same seed gives the same run")
      ->capture_default_str();
  sub->add_flag("--group-by-length", o.group_by_length,
                "batch examples of similar length together (less padding, faster)");
  sub->add_option("--logging-steps", o.logging_steps, "log loss and lr every N steps")
      ->check(CLI::Range(1, 100000000))
      ->capture_default_str();
  sub->add_option("--eval-steps", o.eval_steps,
                  "evaluate every N steps (0: at the end of each epoch)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--save-steps", o.save_steps,
                  "write a resumable checkpoint every N steps (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--save-total-limit", o.save_total_limit,
                  "keep only the newest N checkpoints plus the best (0: keep all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--early-stopping-patience", o.early_stopping_patience,
                  "stop after N evaluations without improvement (0: never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--metric-for-best-model", o.metric_for_best_model,
                  "eval metric that picks the best checkpoint (e.g. eval_accuracy)")
      ->capture_default_str();
  sub->add_flag("--load-best-model-at-end", o.load_best_model_at_end,
                "save the best checkpoint's weights as the final model");
  sub->add_flag("--resume", o.resume,
                "continue from the newest checkpoint in --output-dir; the result is "
                "bit-identical to an uninterrupted run");
  sub->add_flag("!--no-progress", o.progress, "no progress bar");
}

// TRL's ModelConfig defaults for its --use_peft scripts (r 16, alpha 32, dropout 0.05).
inline models::LoraConfig trl_lora_defaults() {
  models::LoraConfig c;
  c.r = 16;
  c.lora_alpha = 32;
  c.lora_dropout = 0.05;
  return c;
}

// Adds --use-peft, --lora-r, --lora-alpha, --lora-dropout and --lora-target (TRL's names and
// defaults) bound to `lora`; returns the options whose use implies --use-peft.
inline std::vector<CLI::Option*> add_lora_options(CLI::App* sub, bool& use_peft,
                                                  models::LoraConfig& lora) {
  sub->add_flag("--use-peft", use_peft,
                "train LoRA adapters (PEFT) instead of the whole model: the base stays frozen and "
                "the output folders are PEFT adapters (adapter_config.json + "
                "adapter_model.safetensors) for --lora of generate/chat and merge-lora");
  return {sub->add_option("--lora-r", lora.r, "LoRA rank (implies --use-peft)")
              ->check(CLI::Range(1, 4096))
              ->capture_default_str(),
          sub->add_option("--lora-alpha", lora.lora_alpha,
                          "LoRA alpha; the update is scaled by alpha / r (implies --use-peft)")
              ->check(CLI::PositiveNumber)
              ->capture_default_str(),
          sub->add_option("--lora-dropout", lora.lora_dropout,
                          "LoRA dropout on the adapter's input (implies --use-peft)")
              ->check(CLI::Range(0.0, 0.99))
              ->capture_default_str(),
          sub->add_option("--lora-target", lora.target_modules,
                          "LoRA: layer names to adapt, e.g. q_proj,k_proj,v_proj,o_proj or GPT-2's "
                          "c_attn (default: PEFT's for the model: q_proj,v_proj; GPT-2 c_attn)")
              ->delimiter(',')};
}

}  // namespace lmf::cli
