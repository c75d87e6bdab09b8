// The lmforge command line.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>

#include "commands.h"
#include "commands_heads.h"
#include "lmforge/core/runtime.h"
#include "lmforge/train/report.h"
#include "lmforge/train/toy_demo.h"

namespace {

std::string seq_str(const std::vector<int64_t>& v) {
  std::string s;
  for (int64_t x : v) s += std::to_string(x) + " ";
  if (!s.empty()) s.pop_back();
  return s;
}

int run_demo(const lmf::train::ToyDemoOptions& opt, bool json, const std::string& metrics_path,
             const std::string& plot_path) {
  std::ofstream metrics;
  if (!metrics_path.empty()) {
    metrics.open(metrics_path);
    if (!metrics) throw lmf::IoError("cannot write metrics to '" + metrics_path + "'");
  }
  if (!json)
    fmt::print(
        "lmforge demo: training a {}-layer Transformer encoder (hidden {}, {} heads) from scratch\n"
        "to {} sequences of {} symbols (batch {}, {} steps, AdamW lr {}, {} threads)\n\n",
        opt.layers, opt.hidden, opt.heads, opt.task, opt.seq_len, opt.batch, opt.steps, opt.lr,
        lmf::num_threads());
  lmf::train::ProgressBar bar(opt.steps, "train", stderr, std::max<int64_t>(opt.steps / 15, 1));
  auto res = lmf::train::run_toy_demo(opt, [&](const lmf::train::ToyDemoStep& s) {
    if (!json) bar.update(s.step, s.loss, s.lr, s.tokens_per_s);
    if (metrics.is_open())
      metrics << fmt::format(
                     R"({{"step": {}, "loss": {:.6f}, "lr": {:.6g}, "tokens_per_s": {:.1f}}})",
                     s.step, s.loss, s.lr, s.tokens_per_s)
              << "\n";
  });
  if (!json) bar.finish();
  if (!plot_path.empty()) {
    lmf::train::Series s{"training loss", {}, res.losses};
    for (size_t i = 0; i < res.losses.size(); ++i) s.x.push_back(static_cast<double>(i + 1));
    lmf::train::write_svg_plot(plot_path, "lmforge demo: " + opt.task + " task", "step",
                               "cross-entropy loss", {s}, true);
  }
  const double first = res.losses.front(), last = res.losses.back();
  if (json) {
    fmt::print(
        R"({{"task": "{}", "steps": {}, "parameters": {}, "first_loss": {:.6f}, "final_loss": {:.6f}, "eval_loss": {:.6f}, "eval_token_accuracy": {:.4f}, "eval_sequence_accuracy": {:.4f}, "seconds": {:.2f}}})"
        "\n",
        opt.task, opt.steps, res.parameters, first, last, res.eval_loss, res.eval_token_accuracy,
        res.eval_sequence_accuracy, res.seconds);
  } else {
    fmt::print("\nloss: {:.4f} (step 1) -> {:.4f} (step {}); trained in {:.1f} s, {} parameters\n",
               first, last, opt.steps, res.seconds, res.parameters);
    fmt::print(
        "held-out (512 fresh sequences): loss {:.4f}, token accuracy {:.1f} %, "
        "whole-sequence accuracy {:.1f} %\n\n",
        res.eval_loss, 100 * res.eval_token_accuracy, 100 * res.eval_sequence_accuracy);
    for (const auto& [in, out] : res.examples)
      fmt::print("  input  {}\n  output {}\n\n", seq_str(in), seq_str(out));
    if (!plot_path.empty()) fmt::print("loss curve written to {}\n", plot_path);
  }
  return last < first ? 0 : 3;
}

void register_tokenize_command(CLI::App& app, lmf::cli::Commands& out) {
  auto opt = std::make_shared<TokenizeOptions>();
  CLI::App* sub = add_tokenize_command(app, *opt);
  out.push_back({sub, [opt] { return run_tokenize_command(*opt); }});
}

// Every subcommand besides demo and the task heads (HeadCommands below).
const lmf::cli::Registrar kRegistrars[] = {
    lmf::cli::register_embed_commands,    lmf::cli::register_inspect_command,
    lmf::cli::register_train_commands,    lmf::cli::register_generate_commands,
    lmf::cli::register_bleu_command,      lmf::cli::register_tokenizer_command,
    lmf::cli::register_translate_command,
    register_tokenize_command,
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "lmforge: train and run Transformer language models in native C++.\n\n"
      "Environment:\n  LMFORGE_NUM_THREADS    worker threads (default: all cores)\n"
      "  LMFORGE_PACKED_GEMM_M  inputs of up to this many tokens (default 128) run the Linear\n"
      "                         layers on a packed copy of their weights made on first use:\n"
      "                         faster small batches, one more copy of the weights in memory;\n"
      "                         0 turns it off\n"
      "  LMFORGE_BLOCK_CACHE_MB freed blocks of 1 MiB and more are kept for reuse up to this\n"
      "                         many MiB (default 1024; 0 returns them to the system at once)\n",
      "lmforge"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "lmforge 0.1.0");
  int threads = 0;
  app.add_option("--threads", threads, "worker threads (overrides LMFORGE_NUM_THREADS)")
      ->check(CLI::Range(1, 4096));

  lmf::train::ToyDemoOptions demo;
  bool json = false;
  std::string metrics_path, plot_path;
  auto* d = app.add_subcommand(
      "demo",
      "Self-check: train a small Transformer encoder from scratch on a toy task (reverse or copy\n"
      "random symbol sequences) and show the loss falling, then evaluate on fresh sequences.\n"
      "Exit status 0 when the loss fell, 3 when it did not.\n"
      "Example: lmforge demo --steps 300 --plot loss.svg");
  d->add_option("--task", demo.task, "reverse | copy")
      ->check(CLI::IsMember({"reverse", "copy"}))
      ->capture_default_str();
  d->add_option("--steps", demo.steps, "optimizer steps")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  d->add_option("--batch", demo.batch, "sequences per step")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  d->add_option("--seq-len", demo.seq_len, "symbols per sequence")
      ->check(CLI::Range(1, 512))
      ->capture_default_str();
  d->add_option("--hidden", demo.hidden, "model width")
      ->check(CLI::Range(4, 4096))
      ->capture_default_str();
  d->add_option("--layers", demo.layers, "encoder layers")
      ->check(CLI::Range(1, 48))
      ->capture_default_str();
  d->add_option("--heads", demo.heads, "attention heads (must divide --hidden)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  d->add_option("--lr", demo.lr, "peak learning rate (linear warmup, linear decay)")
      ->capture_default_str();
  d->add_option("--seed", demo.seed, "random seed (runs are reproducible)")->capture_default_str();
  d->add_flag("--json", json, "print one JSON object instead of the human report");
  d->add_option("--metrics", metrics_path, "write per-step metrics as JSON lines to this file");
  d->add_option("--plot", plot_path, "write the loss curve as an SVG picture to this file");

  lmf::cli::Commands commands;
  for (auto reg : kRegistrars) reg(app, commands);
  lmf::cli::HeadCommands heads;
  heads.add_to(app);  // fill-mask, classify, ner, qa, nsp

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints help, the version, or the usage error
    return rc == 0 ? 0 : 2;
  }
  try {
    if (threads > 0) lmf::set_num_threads(threads);
    if (*d) return run_demo(demo, json, metrics_path, plot_path);
    for (const auto& c : commands)
      if (*c.app) return c.run();
    if (int rc = heads.run(); rc >= 0) return rc;
  } catch (const lmf::Error& e) {
    fmt::print(stderr, "lmforge: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "lmforge: internal error: {}\n", e.what());
    return 1;
  }
  return 0;
}
