// lmforge pretrain / finetune / evaluate: thin wrappers over lmf::train (objectives + train()).
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "commands.h"
#include "lmforge/core/error.h"
#include "lmforge/core/runtime.h"
#include "lmforge/train/clm.h"
#include "lmforge/train/dpo.h"
#include "lmforge/train/electra.h"
#include "lmforge/train/finetune.h"
#include "lmforge/train/ppo.h"
#include "lmforge/train/pretrain.h"
#include "lmforge/train/reward.h"
#include "lmforge/train/sft.h"
#include "lmforge/train/translation.h"
#include "lmforge/train/translation_eval.h"
#include "train_options.h"

namespace lmf::cli {

namespace {

struct PretrainCli {
  train::PretrainOptions data;
  train::TrainerOptions trainer;
  int64_t generator_divisor = 4;  // ELECTRA: generator hidden / heads / FFN = discriminator's / N
  double rtd_weight = 50.0;
  double generator_temperature = train::ElectraRecipeDefaults::temperature;  // softmax(logits / T)
  bool lr_given = false, warmup_given = false;  // else --recipe electra uses its own defaults
  int64_t block_size = 0;                       // --recipe gpt: run_clm's --block_size
  bool use_peft = false;                        // --recipe gpt: LoRA
  models::LoraConfig lora = trl_lora_defaults();
  bool json = false;
};

struct FinetuneCli {
  train::FinetuneOptions data;
  train::TrainerOptions trainer;
  train::TranslationOptions translation;  // --task translation
  train::SftOptions sft;                  // --task sft
  bool use_peft = false;                  // --use-peft / any --lora-* flag
  models::LoraConfig lora = trl_lora_defaults();
  std::optional<double> center_rewards_coefficient;  // --task reward
  double beta = 0.1;                                 // --task dpo
  train::PpoOptions ppo;                             // --task ppo
  std::string stop_token = "none";                   // --task ppo: eos | none
  bool max_grad_norm_given = false, logging_steps_given = false;
  bool max_length_given = false;  // else sft and reward use TRL's 1024
  bool no_truncation = false;
  std::string label_kind = "auto";
  bool json = false;
  // evaluate --task translation
  std::optional<int64_t> num_beams, max_new_tokens;
  std::string translations_out;
};

train::LabelKind parse_label_kind(const std::string& s) {
  if (s == "single") return train::LabelKind::single_label;
  if (s == "multi") return train::LabelKind::multi_label;
  if (s == "regression") return train::LabelKind::regression;
  return train::LabelKind::automatic;
}

void print_metrics_line(const train::Metrics& m) {
  if (m.empty()) return;
  std::string line;
  for (const auto& [k, v] : m) line += fmt::format("  {} {:.4f}", k, v);
  fmt::print("{}\n", line);
}

nlohmann::json metrics_json(const train::Metrics& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j;
}

void print_plan(const char* what, const train::Objective& obj, const train::TrainerOptions& t) {
  const train::TrainingPlan p = train::plan_training(t, obj.num_examples());
  int64_t tokens = 0;
  for (int64_t i = 0; i < obj.num_examples(); ++i) tokens += obj.example_length(i);
  fmt::print(
      "lmforge {}: {} training examples ({} tokens), {} optimizer steps ({} per epoch, batch {} x "
      "accumulation {}), warm-up {} steps, lr {}, {} threads\n",
      what, p.num_examples, tokens, p.max_steps, p.updates_per_epoch, t.per_device_train_batch_size,
      t.gradient_accumulation_steps, p.warmup_steps, t.learning_rate, num_threads());
  std::fflush(stdout);
}

int report_result(const train::TrainResult& r, const train::TrainerOptions& t, bool json,
                  const char* what) {
  if (json) {
    nlohmann::json j;
    j["command"] = what;
    j["output_dir"] = t.output_dir;
    j["global_step"] = r.global_step;
    j["epoch"] = r.epoch;
    j["train_loss"] = r.train_loss;
    j["train_runtime_s"] = r.train_runtime_s;
    j["train_samples_per_second"] = r.train_samples_per_second;
    j["train_tokens_per_second"] = r.train_tokens_per_second;
    j["stopped_early"] = r.stopped_early;
    j["final_eval"] = metrics_json(r.final_eval);
    if (r.best_metric) j["best_metric"] = *r.best_metric;
    j["best_model_checkpoint"] = r.best_model_checkpoint;
    fmt::print("{}\n", j.dump());
    return 0;
  }
  fmt::print(
      "\ntrained {} steps ({:.2f} epochs) in {:.1f} s: {:.1f} samples/s, {:.0f} tokens/s, "
      "mean training loss {:.4f}{}\n",
      r.global_step, r.epoch, r.train_runtime_s, r.train_samples_per_second,
      r.train_tokens_per_second, r.train_loss, r.stopped_early ? " (stopped early)" : "");
  if (!r.final_eval.empty()) {
    fmt::print("held-out:");
    print_metrics_line(r.final_eval);
  }
  if (!r.best_model_checkpoint.empty())
    fmt::print("best checkpoint: {} ({} = {:.4f})\n", r.best_model_checkpoint,
               t.metric_for_best_model, r.best_metric.value_or(0.0));
  fmt::print(
      "model saved to {} (a Hugging Face folder); metrics in {}/metrics.jsonl, curves in "
      "{}/training_curves.html\n",
      t.output_dir, t.output_dir, t.output_dir);
  return 0;
}

// Trains (no progress bar with --json) and prints the result.
int train_and_report(train::Objective& obj, train::TrainerOptions& t, bool json, const char* what) {
  t.progress = t.progress && !json;
  return report_result(train::train(obj, t), t, json, what);
}

int run_pretrain_gpt(PretrainCli& o) {
  train::ClmOptions c;
  c.model_dir = o.data.model_dir;
  c.config_path = o.data.config_path;
  c.tokenizer_dir = o.data.tokenizer_dir;
  c.train_files = o.data.train_files;
  c.eval_files = o.data.eval_files;
  c.eval_split = o.data.eval_split;
  c.text_field = o.data.text_field;
  c.block_size = o.block_size;
  c.seed = o.trainer.seed;
  c.eval_batch_size = o.data.eval_batch_size;
  if (o.use_peft) c.lora = o.lora;
  auto obj = train::make_clm_objective(c);
  if (!o.json) {
    print_plan("pretrain", *obj, o.trainer);
    fmt::print("recipe gpt: causal LM {} ({}), blocks of {} tokens: {} for training, {} held out\n",
               obj->model().architecture(),
               c.model_dir.empty() ? "from " + c.config_path : "continued from " + c.model_dir,
               obj->block_size(), obj->train_examples().size(), obj->eval_examples().size());
    std::fflush(stdout);
  }
  return train_and_report(*obj, o.trainer, o.json, "pretrain");
}

int run_pretrain(PretrainCli& o) {
  if (o.data.train_files.empty()) throw ValueError("pretrain needs --train FILE (text or JSONL)");
  if (o.data.recipe == "gpt") return run_pretrain_gpt(o);
  if (train::is_decoder_config(o.data.model_dir.empty() ? o.data.config_path
                                                        : o.data.model_dir + "/config.json"))
    throw ValueError(fmt::format(
        "'{}' is a decoder (GPT-2 / LLaMA family); the {} recipe pretrains encoders. Use "
        "--recipe gpt (causal language modelling)",
        o.data.model_dir.empty() ? o.data.config_path : o.data.model_dir, o.data.recipe));
  o.data.seed = o.trainer.seed;
  std::unique_ptr<train::Objective> obj;
  if (o.data.recipe == "electra") {
    if (!o.lr_given) o.trainer.learning_rate = train::ElectraRecipeDefaults::learning_rate;
    if (!o.warmup_given && o.trainer.warmup_steps == 0)
      o.trainer.warmup_ratio = train::ElectraRecipeDefaults::warmup_ratio;
    obj = train::make_electra_objective(o.data, o.generator_divisor, o.rtd_weight,
                                        o.generator_temperature);
  } else {
    obj = train::make_pretrain_objective(o.data);
  }
  if (!o.json) print_plan("pretrain", *obj, o.trainer);
  return train_and_report(*obj, o.trainer, o.json, "pretrain");
}

int run_translation(FinetuneCli& o) {
  train::TranslationOptions& t = o.translation;
  t.model_dir = o.data.model_dir;
  t.train_data = o.data.train_file;
  t.eval_data = o.data.eval_file;
  t.eval_fraction = o.data.eval_fraction;
  t.seed = o.trainer.seed;
  t.truncate = !o.no_truncation;
  t.eval_batch_size = o.data.eval_batch_size;
  t.max_train_examples = o.data.max_train_examples;
  t.max_eval_examples = o.data.max_eval_examples;
  auto obj = train::make_translation_objective(t);
  if (!o.json) {
    print_plan("finetune", *obj, o.trainer);
    fmt::print(
        "task translation {} -> {}, {} held-out pairs, {} pairs skipped (empty side), {} "
        "truncated, label smoothing {}\n",
        t.source_lang, t.target_lang, obj->eval_features().size(), obj->skipped_empty(),
        obj->truncated(), t.label_smoothing);
    std::fflush(stdout);
  }
  return train_and_report(*obj, o.trainer, o.json, "finetune");
}

// The data and model fields sft, reward, dpo and ppo options share, from the finetune flags.
template <class T>
void fill_decoder_task(T& t, const FinetuneCli& o) {
  t.model_dir = o.data.model_dir;
  t.chat_template_file = o.sft.chat_template_file;
  t.train_file = o.data.train_file;
  t.eval_file = o.data.eval_file;
  t.eval_split = o.data.eval_fraction;
  t.seed = o.trainer.seed;
  if constexpr (requires { t.max_length; })  // ppo limits prompts with --max-prompt-length
    if (o.max_length_given) t.max_length = o.data.max_length;
  t.strict_data = o.sft.strict_data;
  t.eval_batch_size = o.data.eval_batch_size;
  t.max_train_examples = o.data.max_train_examples;
  t.max_eval_examples = o.data.max_eval_examples;
}

// The malformed records a task skipped: the first five and how many more.
void print_skipped(const std::vector<std::string>& skipped) {
  for (size_t i = 0; i < skipped.size() && i < 5; ++i) fmt::print("  skipped {}\n", skipped[i]);
  if (skipped.size() > 5) fmt::print("  ... and {} more\n", skipped.size() - 5);
}

int run_sft(FinetuneCli& o) {
  train::SftOptions& s = o.sft;
  fill_decoder_task(s, o);
  if (o.use_peft) s.lora = o.lora;
  train::SftReport rep;
  auto obj = train::make_sft_objective(s, &rep);
  if (!o.json) {
    print_plan("finetune", *obj, o.trainer);
    fmt::print(
        "task sft: {} ({}), {} training / {} held-out examples, loss on {}, {} truncated to {} "
        "tokens, {} dropped (nothing to learn after truncation), {} malformed records skipped{}\n",
        obj->model().architecture(), rep.chat ? "chat template" : "Alpaca prompt text",
        rep.train_examples, rep.eval_examples,
        s.completion_only_loss ? "the answers only" : "every token", rep.truncated, s.max_length,
        rep.dropped, rep.skipped.size(),
        s.packing ? fmt::format("; packed ({}) into {} rows of up to {} tokens", s.packing_strategy,
                                rep.packed_rows, s.max_length)
                  : "");
    if (s.lora)
      fmt::print(
          "LoRA r {} alpha {} dropout {} on {} layers ({}): {} trainable of {} parameters "
          "({:.2f} %); the output folder holds the adapter (PEFT format)\n",
          s.lora->r, s.lora->lora_alpha, s.lora->lora_dropout, rep.lora_modules.size(),
          fmt::join(obj->lora->target_modules, ","), rep.trainable_parameters, rep.total_parameters,
          100.0 * rep.trainable_parameters / std::max<int64_t>(1, rep.total_parameters));
    print_skipped(rep.skipped);
    std::fflush(stdout);
  }
  return train_and_report(*obj, o.trainer, o.json, "finetune");
}

int run_reward(FinetuneCli& o) {
  train::RewardOptions r;
  fill_decoder_task(r, o);
  r.center_rewards_coefficient = o.center_rewards_coefficient;
  train::RewardReport rep;
  auto obj = train::make_reward_objective(r, &rep);
  if (!o.json) {
    print_plan("finetune", *obj, o.trainer);
    fmt::print(
        "task reward: {}{}, {} training / {} held-out pairs, {} longer than {} tokens left out, {} "
        "malformed records skipped\n",
        obj->model().architecture(), rep.new_head ? " (new score head)" : "", rep.train_examples,
        rep.eval_examples, rep.filtered, r.max_length, rep.skipped.size());
    print_skipped(rep.skipped);
    std::fflush(stdout);
  }
  return train_and_report(*obj, o.trainer, o.json, "finetune");
}

int run_dpo(FinetuneCli& o) {
  train::DpoOptions d;
  fill_decoder_task(d, o);
  d.beta = o.beta;
  if (o.use_peft) d.lora = o.lora;
  train::DpoReport rep;
  auto obj = train::make_dpo_objective(d, &rep);
  if (!o.json) {
    print_plan("finetune", *obj, o.trainer);
    fmt::print(
        "task dpo: {} (beta {}{}), {} training / {} held-out pairs, {} truncated to {} tokens, {} "
        "dropped (prompt too long), {} malformed records skipped; reference log-probabilities "
        "computed from the starting weights\n",
        obj->model().architecture(), d.beta, d.lora ? ", LoRA" : "", rep.train_examples,
        rep.eval_examples, rep.truncated, d.max_length, rep.dropped, rep.skipped.size());
    print_skipped(rep.skipped);
    std::fflush(stdout);
  }
  return train_and_report(*obj, o.trainer, o.json, "finetune");
}

int run_ppo(FinetuneCli& o) {
  train::PpoOptions& p = o.ppo;
  fill_decoder_task(p, o);
  p.ppo.per_device_train_batch_size = o.trainer.per_device_train_batch_size;
  p.ppo.gradient_accumulation_steps = o.trainer.gradient_accumulation_steps;
  // TRL's PPOTrainer never clips gradients and logs every update.
  if (!o.max_grad_norm_given) o.trainer.max_grad_norm = 0;
  if (!o.logging_steps_given) o.trainer.logging_steps = 1;
  train::PpoReport rep;
  if (o.stop_token == "eos") {
    if (p.ppo.stop_token_id) throw ValueError("give --stop-token or --stop-token-id, not both");
    p.stop_at_eos = true;
  }
  auto obj = train::make_ppo_objective(p, &rep);
  if (!o.json) {
    const train::PpoConfig& c = obj->config();
    print_plan("finetune", *obj, o.trainer);
    fmt::print(
        "task ppo: policy {} (reference: its starting weights), reward model {}, value model {}{}; "
        "{} training / {} held-out prompts ({}), {} longer than --max-prompt-length {} left out, "
        "{} malformed records skipped\n"
        "each update: {} prompts, responses of up to {} tokens at temperature {}{}, then {} PPO "
        "epochs of {} mini-batches (kl_coef {}, cliprange {}, vf_coef {}, gamma {}, lam {})\n",
        obj->policy().architecture(), p.reward_model_dir, obj->value_dir,
        rep.new_value_head ? " (new score head)" : "", rep.train_examples, rep.eval_examples,
        rep.chat ? "conversations through the chat template" : "plain text", rep.too_long,
        p.max_prompt_length, rep.skipped.size(),
        c.per_device_train_batch_size * c.gradient_accumulation_steps, c.response_length,
        c.temperature,
        c.stop_token_id ? fmt::format(", stopping at token {}", *c.stop_token_id) : "",
        c.num_ppo_epochs, c.num_mini_batches, c.kl_coef, c.cliprange, c.vf_coef, c.gamma, c.lam);
    print_skipped(rep.skipped);
    std::fflush(stdout);
  }
  return train_and_report(*obj, o.trainer, o.json, "finetune");
}

int run_finetune(FinetuneCli& o) {
  if (o.data.train_file.empty()) throw ValueError("finetune needs --train FILE");
  if (o.data.task == "ppo") return run_ppo(o);
  if (o.data.task == "dpo") return run_dpo(o);
  if (o.data.task == "reward") return run_reward(o);
  if (o.data.task == "translation") return run_translation(o);
  if (o.data.task == "sft") return run_sft(o);
  if (!o.translation.config_path.empty())
    throw ValueError("--config (a model from scratch) is for --task translation only");
  if (o.data.model_dir.empty()) throw ValueError("finetune needs --model DIR");
  o.data.seed = o.trainer.seed;
  o.data.label_kind = parse_label_kind(o.label_kind);
  auto obj = train::make_finetune_objective(o.data);
  if (!o.json) {
    print_plan("finetune", *obj, o.trainer);
    fmt::print("task {}, {} held-out examples{}\n", train::finetune_task_name(obj->task()),
               obj->eval_features().size(),
               obj->label_names().empty()
                   ? std::string()
                   : fmt::format(", labels {}", fmt::join(obj->label_names(), ", ")));
    std::fflush(stdout);
  }
  return train_and_report(*obj, o.trainer, o.json, "finetune");
}

// True when the folder's config.json says it is an encoder-decoder (then evaluate translates).
bool is_encoder_decoder_folder(const std::string& dir) {
  std::ifstream f(std::filesystem::path(dir) / "config.json");
  if (!f) return false;
  try {
    const nlohmann::json j = nlohmann::json::parse(f);
    return j.value("is_encoder_decoder", false) || j.value("model_type", "") == "marian";
  } catch (const std::exception&) {
    return false;
  }
}

int run_evaluate_translation(FinetuneCli& o) {
  train::TranslationEvalOptions t;
  t.model_dir = o.data.model_dir;
  t.data = o.data.eval_file;
  t.source_lang = o.translation.source_lang;
  t.target_lang = o.translation.target_lang;
  t.source_prefix = o.translation.source_prefix;
  t.num_beams = o.num_beams;
  t.max_new_tokens = o.max_new_tokens;
  t.batch_size = o.data.eval_batch_size;
  t.max_examples = o.data.max_eval_examples;
  if (t.num_beams)
    LMF_CHECK(*t.num_beams >= 1, ValueError, "--num-beams {} must be at least 1", *t.num_beams);
  if (t.max_new_tokens)
    LMF_CHECK(*t.max_new_tokens >= 1, ValueError, "--max-new-tokens {} must be at least 1",
              *t.max_new_tokens);
  const train::TranslationEvalResult r = train::evaluate_translation(t);
  if (!o.translations_out.empty()) {
    std::ofstream f(o.translations_out);
    if (!f) fail<IoError>("cannot write --translations-out '{}'", o.translations_out);
    for (const std::string& h : r.hypotheses) f << h << '\n';
    if (!f) fail<IoError>("could not write all of '{}'", o.translations_out);
  }
  if (o.json) {
    nlohmann::json j = metrics_json(r.metrics);
    j["bleu"] = r.metrics.at("eval_bleu");
    j["chrf"] = r.metrics.at("eval_chrf");
    j["bleu_signature"] = r.bleu_signature;
    j["chrf_signature"] = r.chrf_signature;
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("{} on {} ({} -> {}):\n", o.data.model_dir, o.data.eval_file, t.source_lang,
               t.target_lang);
    for (const auto& [k, v] : r.metrics) fmt::print("  {:<24} {:.4f}\n", k, v);
    fmt::print("  {}\n  {}\n", r.bleu_signature, r.chrf_signature);
  }
  return 0;
}

int run_evaluate(FinetuneCli& o) {
  if (o.data.eval_file.empty()) throw ValueError("evaluate needs --data FILE");
  if (o.data.task == "translation" ||
      (o.data.task.empty() && is_encoder_decoder_folder(o.data.model_dir)))
    return run_evaluate_translation(o);
  o.data.label_kind = parse_label_kind(o.label_kind);
  const train::Metrics m = train::evaluate_model(o.data);
  if (o.json) {
    fmt::print("{}\n", metrics_json(m).dump());
  } else {
    fmt::print("{} on {}:\n", o.data.model_dir, o.data.eval_file);
    for (const auto& [k, v] : m) fmt::print("  {:<24} {:.4f}\n", k, v);
  }
  return 0;
}

// --source-lang / --target-lang: the JSONL fields of translation pairs (finetune and evaluate).
void add_language_options(CLI::App* sub, FinetuneCli& o) {
  sub->add_option("--source-lang", o.translation.source_lang,
                  "translation: source language (the JSONL field)")
      ->capture_default_str();
  sub->add_option("--target-lang", o.translation.target_lang,
                  "translation: target language (the JSONL field)")
      ->capture_default_str();
  sub->add_option("--source-prefix", o.translation.source_prefix,
                  "translation: text put before every source text, as run_translation's "
                  "--source_prefix (T5 checkpoints: \"translate English to French: \")");
}

void add_column_options(CLI::App* sub, FinetuneCli& o) {
  sub->add_option("--text-column", o.data.columns.text,
                  "column (header name or 0-based index) holding the text; default: sentence1, "
                  "sentence, text, else the first non-label column");
  sub->add_option("--pair-column", o.data.columns.text_pair,
                  "column holding the second text of a pair (default: sentence2 with sentence1)");
  sub->add_option("--label-column", o.data.columns.label, "column holding the label")
      ->capture_default_str();
  sub->add_flag("!--no-header", o.data.columns.header, "CSV/TSV files have no header row");
  sub->add_option("--label-kind", o.label_kind,
                  "auto | single | multi (a JSON list of labels per row) | regression")
      ->check(CLI::IsMember({"auto", "single", "multi", "regression"}))
      ->capture_default_str();
  sub->add_option("--max-length", o.data.max_length,
                  "tokens per input (QA: per window; sft: per example, default 1024, longer ones "
                  "keep their start)")
      ->check(CLI::Range(8, 1 << 20))
      ->capture_default_str();
  sub->add_option("--doc-stride", o.data.doc_stride, "QA: tokens shared by consecutive windows")
      ->capture_default_str();
  sub->add_option("--eval-batch-size", o.data.eval_batch_size, "examples per evaluation batch")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
}

}  // namespace

void register_train_commands(CLI::App& app, Commands& out) {
  {
    auto o = std::make_shared<PretrainCli>();
    o->trainer.learning_rate = 1e-4;
    CLI::App* sub = app.add_subcommand(
        "pretrain",
        "Pretrain an encoder or a decoder on plain text or JSONL ({\"text\": ...} per line),\n"
        "from scratch (--config) or continuing from a Hugging Face folder (--model). Recipes\n"
        "(as the papers and HF's example scripts):\n"
        "  gpt      causal language modelling for GPT-2 / LLaMA / Qwen2 / Mistral models, as\n"
        "           transformers' run_clm.py: every line (with its line break) is one example,\n"
        "           tokenized with the tokenizer's special tokens, all concatenated and cut into\n"
        "           --block-size blocks; --eval-split holds out the FIRST share of the lines (as\n"
        "           --validation_split_percentage); eval_loss, eval_perplexity, eval_accuracy.\n"
        "           The saved folder has generation_config.json and the tokenizer, ready for\n"
        "           `lmforge generate` and transformers' AutoModelForCausalLM\n"
        "Encoder recipes read one sentence per line with a blank line between documents:\n"
        "  bert     MLM + next-sentence prediction (BertForPreTraining; the pooler is trained and\n"
        "           saved, so pooler_output is deterministic after loading)\n"
        "  albert   MLM + sentence-order prediction (AlbertForPreTraining)\n"
        "  roberta  MLM only on packed full sentences (XForMaskedLM)\n"
        "  electra  replaced-token detection: a small generator (MLM) and the discriminator\n"
        "           sharing embeddings, loss = MLM + 50 x RTD; the discriminator is saved to\n"
        "           --output-dir, the generator to --output-dir/generator. Its defaults where\n"
        "           not given: --lr 2e-4 --warmup-ratio 0.1 --generator-temperature 2, masking\n"
        "           85 % [MASK] / 15 % unchanged (ELECTRA's code); see docs/TRAINING.md\n"
        "MLM: 15 % of the non-special tokens, 80 % [MASK] / 10 % random / 10 % unchanged\n"
        "(--mask-replace-prob, --random-replace-prob);\n"
        "--masking dynamic re-masks every time a sequence is served, static masks once per copy.\n"
        "Checkpoints in --output-dir/checkpoint-N are Hugging Face folders plus optimizer and\n"
        "trainer state; --resume continues bit-exactly. Progress on stderr; --json prints the\n"
        "result as one JSON object.\n"
        "Examples: lmforge pretrain --config cfg.json --tokenizer ./models/all-MiniLM-L6-v2 \\\n"
        "           --train corpus.txt --eval-split 0.05 --recipe bert -o runs/bert --max-steps "
        "2000\n"
        "          lmforge pretrain --recipe gpt --config gpt_config.json --tokenizer tok/ \\\n"
        "           --train input.txt --eval-split 0.05 --block-size 256 -o runs/gpt --lr 1e-3");
    sub->add_option("--model", o->data.model_dir, "Hugging Face folder to continue from");
    sub->add_option("--config", o->data.config_path, "config.json to start from scratch");
    sub->add_option("--tokenizer", o->data.tokenizer_dir,
                    "tokenizer folder (default: the model's, or the config's folder)");
    sub->add_option("--train", o->data.train_files, "training text files (.txt or .jsonl)")
        ->required();
    sub->add_option("--eval", o->data.eval_files, "held-out text files");
    sub->add_option("--eval-split", o->data.eval_split,
                    "fraction of the training documents held out when --eval is not given")
        ->check(CLI::Range(0.0, 0.9))
        ->capture_default_str();
    sub->add_option("--text-field", o->data.text_field, "JSONL field holding a document")
        ->capture_default_str();
    sub->add_option("--recipe", o->data.recipe, "bert | albert | roberta | electra | gpt")
        ->check(CLI::IsMember({"bert", "albert", "roberta", "electra", "gpt"}))
        ->capture_default_str();
    const std::vector<CLI::Option*> lora_opts = add_lora_options(sub, o->use_peft, o->lora);
    sub->add_option("--block-size", o->block_size,
                    "gpt: tokens per training block (default: min(1024, the model's positions, "
                    "the tokenizer's model_max_length), as run_clm)")
        ->check(CLI::Range(2, 1 << 20));
    sub->add_option("--max-seq-length", o->data.max_seq_length, "tokens per training sequence")
        ->check(CLI::Range(8, 1 << 20))
        ->capture_default_str();
    sub->add_option("--mlm-probability", o->data.mlm_probability, "fraction of tokens masked")
        ->check(CLI::Range(0.01, 0.99))
        ->capture_default_str();
    sub->add_option("--mask-replace-prob", o->data.mask_replace_prob,
                    "share of the chosen tokens replaced by the mask token (default 0.8, as HF's "
                    "DataCollatorForLanguageModeling; electra: 0.85)")
        ->check(CLI::Range(0.0, 1.0));
    sub->add_option("--random-replace-prob", o->data.random_replace_prob,
                    "share of the chosen tokens replaced by a random token (default 0.1; electra: "
                    "0); the rest stay unchanged")
        ->check(CLI::Range(0.0, 1.0));
    sub->add_option("--masking", o->data.masking, "dynamic | static")
        ->check(CLI::IsMember({"dynamic", "static"}))
        ->capture_default_str();
    sub->add_option("--dup-factor", o->data.dup_factor,
                    "copies of the data (each masked differently with static masking)")
        ->check(CLI::Range(1, 100))
        ->capture_default_str();
    sub->add_flag("--whole-word-mask", o->data.whole_word_mask,
                  "mask whole words (all their pieces) instead of single tokens");
    sub->add_option("--short-seq-prob", o->data.short_seq_prob,
                    "BERT/ALBERT: probability of a shorter target length")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    sub->add_option("--eval-batch-size", o->data.eval_batch_size, "sequences per eval batch")
        ->check(CLI::Range(1, 65536))
        ->capture_default_str();
    sub->add_option("--generator-divisor", o->generator_divisor,
                    "ELECTRA from scratch: the generator is N times narrower than the "
                    "discriminator")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    sub->add_option("--generator-temperature", o->generator_temperature,
                    "ELECTRA: the generator samples replacements from softmax(logits / T) "
                    "(the reference code's `temperature`); above 1 they are less plausible")
        ->check(CLI::Range(1e-3, 1e3))
        ->capture_default_str();
    sub->add_option("--rtd-weight", o->rtd_weight, "ELECTRA: weight of the RTD loss")
        ->capture_default_str();
    add_trainer_options(sub, o->trainer);
    sub->add_flag("--json", o->json, "print the result as one JSON object (no progress bar)");
    CLI::Option* lr = sub->get_option("--lr");
    CLI::Option* warmup = sub->get_option("--warmup-ratio");
    out.push_back({sub, [o, lr, warmup, lora_opts] {
                     o->lr_given = lr->count() > 0;
                     o->warmup_given = warmup->count() > 0;
                     for (CLI::Option* opt : lora_opts)
                       o->use_peft = o->use_peft || opt->count() > 0;
                     if (o->use_peft && o->data.recipe != "gpt")
                       throw ValueError("--use-peft / --lora-* are for --recipe gpt");
                     return run_pretrain(*o);
                   }});
  }
  {
    auto o = std::make_shared<FinetuneCli>();
    CLI::App* sub = app.add_subcommand(
        "finetune",
        "Fine-tune a Hugging Face encoder folder for a task and save the result as a Hugging\n"
        "Face folder (config.json with id2label, model.safetensors, tokenizer files):\n"
        "  classification  CSV/TSV/JSONL rows with text (and optionally a pair) and a label;\n"
        "                  single-label, multi-label (JSON lists) or regression (numbers)\n"
        "  ner             CoNLL (token per line, tag last) or JSONL {tokens, ner_tags}; labels\n"
        "                  on the first sub-token of each word\n"
        "  qa              SQuAD v1.1/v2 JSON; windows of --max-length sharing --doc-stride\n"
        "  bi-encoder      sentence pairs: in-batch negatives (MNRL) or cosine loss with scores\n"
        "  cross-encoder   pair classification / regression\n"
        "  translation     a MarianMTModel, BartForConditionalGeneration or\n"
        "                  T5ForConditionalGeneration (--model DIR, or --config CONFIG.json with\n"
        "                  model_type marian/bart/t5 from scratch) on\n"
        "                  SRC_FILE,TGT_FILE or JSONL {\"en\": ..., \"fr\": ...} pairs\n"
        "                  (--source-lang/--target-lang), optional --label-smoothing\n"
        "  sft             supervised fine-tuning of a decoder (GPT-2 / LLaMA / Qwen2 / Mistral)\n"
        "                  as TRL's SFTTrainer: Alpaca JSON (instruction/input/output), chat\n"
        "                  JSONL ({\"messages\": [{role, content}...]}) or prompt/completion\n"
        "                  records, rendered with the model's chat template (--chat-template\n"
        "                  FILE to set one; Alpaca records without one use Alpaca's prompt\n"
        "                  text), loss on the answers only (every assistant turn) unless\n"
        "                  --no-completion-only-loss, --max-length 1024 keeping the start;\n"
        "                  malformed records are skipped and listed (--strict-data refuses)\n"
        "  reward          a reward model as TRL's RewardTrainer: a decoder with a one-output\n"
        "                  *ForSequenceClassification head scores chosen and rejected answers\n"
        "                  (JSONL {\"chosen\", \"rejected\"[, \"prompt\", \"margin\"]}, HH-RLHF's\n"
        "                  layout), loss -log sigmoid(r_chosen - r_rejected), eval_accuracy =\n"
        "                  pairs ranked right; pairs longer than --max-length are left out\n"
        "  dpo             direct preference optimisation as TRL's DPOTrainer (sigmoid loss,\n"
        "                  --beta 0.1) of a causal LM on the same pairs (an implicit prompt is\n"
        "                  their common prefix); the frozen reference is the starting model,\n"
        "                  its log-probabilities computed once; logs rewards_chosen/rejected/\n"
        "                  margin/accuracy; --use-peft trains LoRA adapters\n"
        "  ppo             RLHF with proximal policy optimisation as TRL's PPOTrainer (0.23):\n"
        "                  each update samples responses to --batch-size x --grad-accum prompts\n"
        "                  (JSONL {\"prompt\"}, {\"messages\"} or HH-RLHF pairs), scores them "
        "with\n"
        "                  --reward-model (a finetune --task reward folder), subtracts a "
        "per-token\n"
        "                  KL penalty against the frozen starting policy, estimates advantages\n"
        "                  with GAE from a value model (--value-model, default the reward model)\n"
        "                  and runs --num-ppo-epochs of clipped policy + value losses; logs\n"
        "                  objective/scores, objective/kl, entropy, clip fractions per update;\n"
        "                  the value model is saved in OUTPUT/value_model\n"
        "Metrics as HF's example scripts: accuracy/F1, seqeval entity F1, SQuAD EM/F1,\n"
        "Pearson/Spearman. Defaults are HF TrainingArguments'.\n"
        "Example: lmforge finetune --model ./models/all-MiniLM-L6-v2 --task classification \\\n"
        "           --train sst2.tsv --eval-split 0.05 -o runs/sst2 --epochs 1 --batch-size 32");
    sub->add_option("--model", o->data.model_dir, "Hugging Face folder to start from");
    sub->add_option("--config", o->translation.config_path,
                    "translation: config.json of a Marian, BART or T5 model trained from scratch");
    sub->add_option("--task", o->data.task,
                    "classification | regression | ner | qa | bi-encoder | cross-encoder | "
                    "translation | sft | reward | dpo | ppo (default: from the model's "
                    "architecture)");
    sub->add_option("--beta", o->beta,
                    "dpo: how far the policy may move from the reference (TRL's beta)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    {
      train::PpoOptions& p = o->ppo;
      train::PpoConfig& c = p.ppo;
      sub->add_option("--reward-model", p.reward_model_dir,
                      "ppo: the reward model folder (one-output *ForSequenceClassification)");
      sub->add_option("--value-model", p.value_model_dir,
                      "ppo: the value model's starting folder (default: --reward-model; a causal "
                      "LM gets a new score head)");
      sub->add_option("--num-ppo-epochs", c.num_ppo_epochs,
                      "ppo: passes over each rollout (TRL's num_ppo_epochs)")
          ->check(CLI::Range(1, 1000))
          ->capture_default_str();
      sub->add_option("--num-mini-batches", c.num_mini_batches,
                      "ppo: optimizer steps per pass over a rollout")
          ->check(CLI::Range(1, 65536))
          ->capture_default_str();
      sub->add_option("--kl-coef", c.kl_coef, "ppo: weight of the per-token KL penalty")
          ->check(CLI::NonNegativeNumber)
          ->capture_default_str();
      sub->add_option("--kl-estimator", c.kl_estimator,
                      "ppo: k1 (log p - log ref) or k3 ((r - 1) - log r, r = ref / p)")
          ->check(CLI::IsMember({"k1", "k3"}))
          ->capture_default_str();
      sub->add_option("--cliprange", c.cliprange, "ppo: policy ratio clip range")
          ->check(CLI::PositiveNumber)
          ->capture_default_str();
      sub->add_option("--vf-coef", c.vf_coef, "ppo: weight of the value loss")
          ->check(CLI::NonNegativeNumber)
          ->capture_default_str();
      sub->add_option("--cliprange-value", c.cliprange_value, "ppo: value clip range")
          ->check(CLI::PositiveNumber)
          ->capture_default_str();
      sub->add_option("--gamma", c.gamma, "ppo: discount factor")
          ->check(CLI::Range(0.0, 1.0))
          ->capture_default_str();
      sub->add_option("--lam", c.lam, "ppo: GAE lambda")
          ->check(CLI::Range(0.0, 1.0))
          ->capture_default_str();
      sub->add_flag("--whiten-rewards", c.whiten_rewards, "ppo: whiten the rewards of a rollout");
      sub->add_option("--response-length", c.response_length, "ppo: new tokens per response")
          ->check(CLI::Range(1, 65536))
          ->capture_default_str();
      sub->add_option("--temperature", c.temperature,
                      "ppo: sampling temperature (also scales every log-probability)")
          ->check(CLI::PositiveNumber)
          ->capture_default_str();
      sub->add_option("--stop-token", o->stop_token,
                      "ppo: eos: responses end at the tokenizer's EOS (TRL's stop_token); none: "
                      "every response is --response-length tokens")
          ->check(CLI::IsMember({"eos", "none"}))
          ->capture_default_str();
      sub->add_option("--stop-token-id", c.stop_token_id, "ppo: responses end at this token id");
      sub->add_option("--missing-eos-penalty", c.missing_eos_penalty,
                      "ppo: subtracted from the score of a response without EOS");
      sub->add_option("--local-rollout-forward-batch-size", c.local_rollout_forward_batch_size,
                      "ppo: rows per no-grad forward pass in a rollout")
          ->check(CLI::Range(1, 65536))
          ->capture_default_str();
      sub->add_option("--max-prompt-length", p.max_prompt_length,
                      "ppo: prompts longer than this many tokens are left out")
          ->check(CLI::Range(1, 1 << 20))
          ->capture_default_str();
    }
    sub->add_option("--center-rewards-coefficient", o->center_rewards_coefficient,
                    "reward: add c * mean((r_chosen + r_rejected)^2) to the loss (TRL's "
                    "center_rewards_coefficient), keeping rewards centred on 0");
    sub->add_option("--chat-template", o->sft.chat_template_file,
                    "sft: a Jinja chat template file used instead of the tokenizer's (saved with "
                    "the model as chat_template.jinja)");
    sub->add_flag("!--no-completion-only-loss", o->sft.completion_only_loss,
                  "sft: train on every token, prompts included (default: the answers only, "
                  "TRL's completion_only_loss)");
    sub->add_flag("--packing", o->sft.packing,
                  "sft: pack several examples into each row of --max-length tokens (TRL's "
                  "packing); with bfd, attention and positions stop at each example's end");
    sub->add_option("--packing-strategy", o->sft.packing_strategy,
                    "sft --packing: bfd (best-fit decreasing, longer examples cut), bfd_split "
                    "(longer examples split into pieces) or wrapped (concatenated and cut into "
                    "rows, across example boundaries)")
        ->check(CLI::IsMember({"bfd", "bfd_split", "wrapped"}))
        ->capture_default_str();
    sub->add_flag("--strict-data", o->sft.strict_data,
                  "sft: a malformed record is an error (file:line) instead of skipped");
    const std::vector<CLI::Option*> lora_opts = add_lora_options(sub, o->use_peft, o->lora);
    sub->add_option("--train", o->data.train_file,
                    "training data file (translation: SRC_FILE,TGT_FILE or a .jsonl file)")
        ->required();
    sub->add_option("--eval,--validation", o->data.eval_file,
                    "held-out data file (translation: as --train)");
    add_language_options(sub, *o);
    sub->add_option(
        "--tokenizer", o->translation.tokenizer_dir,
        "translation: tokenizer folder: Marian's, a BART / T5 tokenizer.json, or BART's "
        "vocab.json + merges.txt (default: --model's, or --config's folder)");
    sub->add_option("--label-smoothing", o->translation.label_smoothing,
                    "translation: label smoothing factor (Seq2SeqTrainer's LabelSmoother)")
        ->check(CLI::Range(0.0, 0.999))
        ->capture_default_str();
    sub->add_flag("--freeze-pad-embedding", o->translation.freeze_pad_embedding,
                  "translation: keep the <pad> row of the token embeddings fixed (zero when "
                  "training from --config), as Marian-NMT does: CTranslate2 starts the decoder "
                  "from a zero vector where transformers embeds <pad>, so only then does the saved "
                  "folder translate the same in both. Off by default, as transformers (whose tied "
                  "output layer moves the row)");
    sub->add_option("--max-source-length", o->translation.max_source_length,
                    "translation: source tokens per pair (longer ones are truncated)")
        ->capture_default_str();
    sub->add_option("--max-target-length", o->translation.max_target_length,
                    "translation: target tokens per pair (longer ones are truncated)")
        ->capture_default_str();
    sub->add_flag("--no-truncation", o->no_truncation,
                  "translation: a pair longer than the max lengths is an error, not truncated");
    sub->add_option("--eval-split", o->data.eval_fraction,
                    "fraction of the training data held out (seeded) when --eval is not given")
        ->check(CLI::Range(0.0, 0.9))
        ->capture_default_str();
    sub->add_option("--similarity-loss", o->data.similarity_loss,
                    "bi-encoder: mnrl | cosine (default: cosine when rows have scores)");
    sub->add_option("--max-train-examples", o->data.max_train_examples,
                    "use only the first N training examples (-1: all)");
    sub->add_option("--max-eval-examples", o->data.max_eval_examples,
                    "use only the first N held-out examples (-1: all)");
    add_column_options(sub, *o);
    add_trainer_options(sub, o->trainer);
    sub->add_flag("--json", o->json, "print the result as one JSON object (no progress bar)");
    CLI::Option* max_length = sub->get_option("--max-length");
    CLI::Option* max_grad_norm = sub->get_option("--max-grad-norm");
    CLI::Option* logging_steps = sub->get_option("--logging-steps");
    out.push_back({sub, [o, max_length, lora_opts, max_grad_norm, logging_steps] {
                     o->max_length_given = max_length->count() > 0;
                     o->max_grad_norm_given = max_grad_norm->count() > 0;
                     o->logging_steps_given = logging_steps->count() > 0;
                     for (CLI::Option* opt : lora_opts)
                       o->use_peft = o->use_peft || opt->count() > 0;
                     if (o->use_peft && o->data.task != "sft" && o->data.task != "dpo")
                       throw ValueError("--use-peft / --lora-* are for --task sft and dpo");
                     return run_finetune(*o);
                   }});
  }
  {
    auto o = std::make_shared<FinetuneCli>();
    CLI::App* sub = app.add_subcommand(
        "evaluate",
        "Evaluate a fine-tuned Hugging Face folder on a labelled file with the task's metrics\n"
        "(eval_loss plus accuracy/F1, entity F1, SQuAD EM/F1 or Pearson/Spearman).\n"
        "Translation models (encoder-decoder folders, or --task translation): --data is\n"
        "SRC_FILE,TGT_FILE or JSONL as for finetune; the sources are translated with the\n"
        "folder's generation defaults (--num-beams, --max-new-tokens override them) and scored\n"
        "against the targets with\n"
        "sacrebleu's corpus BLEU (13a, exp smoothing) and chrF2 (eval_bleu, eval_chrf), plus\n"
        "eval_loss (MarianMTModel) and eval_gen_len.\n"
        "Examples: lmforge evaluate --model runs/sst2 --data heldout.tsv\n"
        "          lmforge evaluate --model runs/en-fr --data test.en,test.fr --num-beams 4 "
        "--json");
    sub->add_option("--model", o->data.model_dir, "fine-tuned Hugging Face folder")->required();
    sub->add_option("--data", o->data.eval_file, "labelled data file")->required();
    sub->add_option("--task", o->data.task, "as for finetune (default: from the architecture)");
    add_language_options(sub, *o);
    sub->add_option("--num-beams", o->num_beams,
                    "translation: beam search with this many beams (default: the folder's)");
    sub->add_option("--max-new-tokens", o->max_new_tokens,
                    "translation: new tokens per translation (default: the folder's, else 128)");
    sub->add_option("--translations-out", o->translations_out,
                    "translation: write the translations to this file, one per line");
    sub->add_option("--max-eval-examples", o->data.max_eval_examples,
                    "use only the first N examples (-1: all)");
    add_column_options(sub, *o);
    sub->add_flag("--json", o->json, "print the metrics as one JSON object");
    out.push_back({sub, [o] { return run_evaluate(*o); }});
  }
  {
    struct MergeCli {
      std::string base, adapter, out;
    };
    auto o = std::make_shared<MergeCli>();
    CLI::App* sub = app.add_subcommand(
        "merge-lora",
        "Fold a LoRA adapter (PEFT's adapter_config.json + adapter_model.safetensors, e.g. from\n"
        "finetune --task sft --use-peft) into its base model and write a plain Hugging Face\n"
        "folder (as PEFT's merge_and_unload + save_pretrained): W += (alpha / r) B A on every\n"
        "adapted layer; tokenizer files from the adapter folder, else the base's.\n"
        "Example: lmforge merge-lora --lora runs/sft-lora --model ./smollm2 -o runs/sft-merged");
    sub->add_option("--lora", o->adapter, "the adapter folder")->required();
    sub->add_option("--model", o->base,
                    "the base model folder (default: the adapter's base_model_name_or_path)");
    sub->add_option("-o,--output-dir", o->out, "the merged folder to write")->required();
    out.push_back({sub, [o] {
                     const int64_t n = train::merge_lora_folder(o->base, o->adapter, o->out);
                     fmt::print("merged {} LoRA layers into {}\n", n, o->out);
                     return 0;
                   }});
  }
}

}  // namespace lmf::cli
