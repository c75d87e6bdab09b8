// lmforge's side of bench/compare_decoder.py: greedy generation timings on a decoder (folder or
// GGUF file) for a given prompt, measured as the Python side measures transformers and llama.cpp:
// the time of a generate call with 1 new token (prefill) and with N new tokens (end-of-sequence
// suppressed by min_new_tokens), after a warm-up. Prints one JSON line.
//
// Usage: bench_generate --model PATH --prompt-ids ids.json [--new-tokens 128] [--batch 1]
//                       [--prompt-len N] [--prefill-repeat R]
// --prefill-repeat R: prefill_s is the median of R one-token calls (default 1), which also gives
// a profiler a long window of prefill alone. --prefill-chunk N: GenerateOptions::prefill_chunk.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/core/error.h"
#include "lmforge/core/runtime.h"
#include "lmforge/tasks/causal_lm.h"

int main(int argc, char** argv) {
  std::string model, ids_path;
  int64_t new_tokens = 128, batch = 1, prompt_len = 0, prefill_repeat = 1, prefill_chunk = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--model")
      model = v;
    else if (a == "--prompt-ids")
      ids_path = v;
    else if (a == "--new-tokens")
      new_tokens = std::stoll(v);
    else if (a == "--batch")
      batch = std::stoll(v);
    else if (a == "--prompt-len")
      prompt_len = std::stoll(v);
    else if (a == "--prefill-chunk")
      prefill_chunk = std::stoll(v);
    else if (a == "--prefill-repeat")
      prefill_repeat = std::max<int64_t>(1, std::stoll(v));
  }
  if (model.empty() || ids_path.empty()) {
    std::fprintf(
        stderr,
        "usage: bench_generate --model PATH --prompt-ids ids.json "
        "[--new-tokens N] [--batch B] [--prompt-len L] [--prefill-repeat R] [--prefill-chunk N]\n");
    return 2;
  }
  try {
    lmf::tasks::CausalLM lm = lmf::tasks::load_causal_lm(model);
    std::vector<int64_t> ids = nlohmann::json::parse(std::ifstream(ids_path));
    if (prompt_len == 0 && batch > 1) prompt_len = 64;
    if (prompt_len > 0 && prompt_len < static_cast<int64_t>(ids.size())) ids.resize(prompt_len);
    const std::vector<std::vector<int64_t>> prompts(batch, ids);
    auto run = [&](int64_t n) {
      lmf::tasks::GenerationConfig cfg = lm.generation;
      cfg.do_sample = false;
      cfg.num_beams = 1;
      cfg.max_new_tokens = n;
      cfg.min_new_tokens = n;
      cfg.repetition_penalty = 1.0;
      const auto t0 = std::chrono::steady_clock::now();
      lmf::tasks::GenerateOptions opt;
      if (prefill_chunk >= 0) opt.prefill_chunk = prefill_chunk;
      const auto r = lmf::tasks::generate(*lm.model, prompts, cfg, opt);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (const auto& seq : r.sequences)
        LMF_CHECK(static_cast<int64_t>(seq.output_ids.size()) == n, lmf::ValueError,
                  "generated {} tokens, expected {}", seq.output_ids.size(), n);
      return std::make_pair(s, r.stats);
    };
    run(4);  // warm-up: packs the weights, touches the cache
    std::vector<double> prefill_times;
    for (int64_t r = 0; r < prefill_repeat; ++r) {
      prefill_times.push_back(run(1).first);
      if (std::getenv("LMF_BENCH_VERBOSE")) std::fprintf(stderr, "prefill %.4f s\n", prefill_times.back());
    }
    std::sort(prefill_times.begin(), prefill_times.end());
    const double t1 = prefill_times[prefill_times.size() / 2];
    const auto [tn, sn] = run(new_tokens);
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    // Where the resident memory is now: anonymous (heap, packed weights, cache) vs file-backed
    // (mapped weights, code), from /proc/self/status (Linux; zeros elsewhere).
    double rss_anon_mb = 0, rss_file_mb = 0;
    {
      std::ifstream st("/proc/self/status");
      for (std::string line; std::getline(st, line);) {
        if (line.rfind("RssAnon:", 0) == 0) rss_anon_mb = std::stod(line.substr(8)) / 1024.0;
        if (line.rfind("RssFile:", 0) == 0) rss_file_mb = std::stod(line.substr(8)) / 1024.0;
      }
    }
    nlohmann::json j{{"prefill_s", t1},
                     {"total_s", tn},
                     {"prompt_tokens", ids.size()},
                     {"batch", batch},
                     {"new_tokens", new_tokens},
                     {"threads", lmf::num_threads()},
                     {"internal_prefill_tok_s", sn.prefill_tokens_per_second()},
                     {"internal_decode_tok_s", sn.decode_tokens_per_second()},
                     {"cache_bytes", sn.cache_bytes},
                     {"rss_mb", ru.ru_maxrss / 1024.0},
                     {"rss_anon_mb_end", rss_anon_mb},
                     {"major_faults", ru.ru_majflt},
                     {"minor_faults", ru.ru_minflt},
                     {"rss_file_mb_end", rss_file_mb}};
    std::printf("%s\n", j.dump().c_str());
  } catch (const lmf::Error& e) {
    std::fprintf(stderr, "bench_generate: %s\n", e.what());
    return 2;
  }
  return 0;
}
