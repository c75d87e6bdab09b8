// Decoding flags shared by generate, chat and translate (defined in cmd_generate.cpp): the
// GenerationConfig overrides and the Ctrl-C scope that cancels a running generation.
#pragma once
#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/tasks/generate.h"

namespace lmf::cli {

extern const char* const kSamplingHelp;

// Set by SIGINT inside a SigintScope; GenerateOptions::cancel points at it.
extern std::atomic<bool> g_cancel;
// Ctrl-C stops the current generation, not the program (a second Ctrl-C while nothing is being
// generated ends it as usual).
struct SigintScope {
  SigintScope();
  ~SigintScope();
  void (*prev_)(int);
};

struct SamplingFlags {
  std::optional<int64_t> max_new_tokens, min_new_tokens, top_k, num_beams, num_return_sequences,
      no_repeat_ngram_size;
  std::optional<double> temperature, top_p, min_p, repetition_penalty, length_penalty;
  std::optional<std::string> early_stopping;
  std::optional<uint64_t> seed;
  bool do_sample = false, greedy = false;
  std::vector<std::string> stop;
};

// --max-new-tokens, --do-sample, --temperature, --top-k, ... --seed, --stop on `sub`.
void add_sampling_flags(CLI::App* sub, SamplingFlags& f);
// The flags over the model's defaults (no max_new_tokens and max_length <= 20: 256 new tokens);
// validated (ValueError naming the flag).
tasks::GenerationConfig apply_flags(tasks::GenerationConfig g, const SamplingFlags& f);

}  // namespace lmf::cli
