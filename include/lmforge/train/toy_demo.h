// The built-in demo / self-check: trains a small Transformer encoder from scratch to copy or
// reverse random token sequences (per-position classification) and reports the falling loss.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lmf::train {

struct ToyDemoOptions {
  std::string task = "reverse";  // "reverse" or "copy"
  int64_t steps = 300;
  int64_t batch = 32;
  int64_t seq_len = 8;
  int64_t vocab = 10;  // symbols 0..vocab-1 (no special tokens)
  int64_t hidden = 64;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t warmup = 30;
  double lr = 2e-3;
  double weight_decay = 0.01;
  uint64_t seed = 0;
};

struct ToyDemoStep {
  int64_t step;
  double loss, lr, tokens_per_s;
};

struct ToyDemoResult {
  std::vector<double> losses;  // one per step
  double eval_loss = 0;
  double eval_token_accuracy = 0;     // on 512 fresh sequences
  double eval_sequence_accuracy = 0;  // whole sequence right
  double seconds = 0;
  int64_t parameters = 0;
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> examples;  // input, output
};

// Validates the options (ValueError on nonsense) and runs the training.
ToyDemoResult run_toy_demo(const ToyDemoOptions& opt,
                           const std::function<void(const ToyDemoStep&)>& on_step = {});

}  // namespace lmf::train
