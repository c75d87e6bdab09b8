// lmforge's side of bench/compare_translation.py: translation timings of an encoder-decoder folder
// (tasks::generate_seq2seq, the API `lmforge translate` uses) on pre-tokenized sources, without
// process start, model load or tokenization: a warm-up batch, then every batch timed. Prints one
// JSON line (time, generated tokens, the best hypothesis' ids per source, peak RSS). <pad> is
// suppressed (bad_words_ids [[pad]]) unless the folder's generation config sets bad words.
//
// Usage: bench_translate --model DIR --source-ids ids.json [--batch 1] [--beams 1]
//                        [--new-tokens N (exactly N new tokens; 0: stop at </s>)]
//                        [--max-new-tokens 128]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/core/error.h"
#include "lmforge/core/runtime.h"
#include "lmforge/tasks/seq2seq.h"

int main(int argc, char** argv) {
  std::string model, ids_path;
  int64_t batch = 1, beams = 1, new_tokens = 0, max_new = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--model")
      model = v;
    else if (a == "--source-ids")
      ids_path = v;
    else if (a == "--batch")
      batch = std::stoll(v);
    else if (a == "--beams")
      beams = std::stoll(v);
    else if (a == "--new-tokens")
      new_tokens = std::stoll(v);
    else if (a == "--max-new-tokens")
      max_new = std::stoll(v);
  }
  if (model.empty() || ids_path.empty() || batch < 1 || beams < 1) {
    std::fprintf(stderr,
                 "usage: bench_translate --model DIR --source-ids ids.json [--batch B] "
                 "[--beams K] [--new-tokens N] [--max-new-tokens M]\n");
    return 2;
  }
  try {
    lmf::tasks::Seq2SeqLM lm = lmf::tasks::load_seq2seq_lm(model);
    const std::vector<std::vector<int64_t>> sources =
        nlohmann::json::parse(std::ifstream(ids_path));
    LMF_CHECK(!sources.empty(), lmf::ValueError, "{}: no sources", ids_path);
    lmf::tasks::GenerationConfig cfg = lm.generation;
    cfg.do_sample = false;
    cfg.num_beams = beams;
    cfg.num_return_sequences = 1;
    cfg.max_length.reset();
    cfg.max_new_tokens = new_tokens > 0 ? new_tokens : max_new;
    if (new_tokens > 0) cfg.min_new_tokens = new_tokens;
    // <pad> never generated, as Opus-MT configs say and CTranslate2's conversion implies.
    const int64_t pad = lm.model->spec().pad_token_id;
    if (pad >= 0 && cfg.bad_words_ids.empty()) cfg.bad_words_ids = {{pad}};
    auto run = [&](size_t b0, size_t b1, std::vector<std::vector<int64_t>>* out) {
      const std::vector<std::vector<int64_t>> chunk(sources.begin() + b0, sources.begin() + b1);
      const auto r = lmf::tasks::generate_seq2seq(*lm.model, chunk, cfg);
      int64_t n = 0;
      std::vector<std::vector<int64_t>> best(chunk.size());
      for (const auto& s : r.sequences)
        if (best[s.prompt_index].empty()) best[s.prompt_index] = s.output_ids;
      for (auto& b : best) {
        n += static_cast<int64_t>(b.size());
        if (out) out->push_back(std::move(b));
      }
      return n;
    };
    run(0, std::min<size_t>(sources.size(), batch), nullptr);  // warm-up: packs the weights
    std::vector<std::vector<int64_t>> outputs;
    int64_t tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t b0 = 0; b0 < sources.size(); b0 += batch)
      tokens += run(b0, std::min<size_t>(sources.size(), b0 + batch), &outputs);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    nlohmann::json j{{"total_s", s},
                     {"generated_tokens", tokens},
                     {"sources", sources.size()},
                     {"batch", batch},
                     {"beams", beams},
                     {"threads", lmf::num_threads()},
                     {"rss_mb", ru.ru_maxrss / 1024.0},
                     {"output_ids", outputs}};
    std::printf("%s\n", j.dump().c_str());
  } catch (const lmf::Error& e) {
    std::fprintf(stderr, "bench_translate: %s\n", e.what());
    return 2;
  }
  return 0;
}
