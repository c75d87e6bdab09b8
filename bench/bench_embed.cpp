// The sentence-embedding job end to end, lmforge side: SentenceEmbedder::encode (tokenize, sort
// by length, batches of 32, forward, pooling, normalisation) on one sentence per line of a text
// file, timed after a warm-up call. Prints one JSON line; bench/compare_embed.py alternates it
// with sentence-transformers' SentenceTransformer.encode on the same sentences.
// Usage: bench_embed --model DIR --sentences FILE [--iters 5] [--single]
//   --single: one encode() call per sentence (interactive use) instead of one for the whole list.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "lmforge/tasks/embed.h"

namespace {
double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

int main(int argc, char** argv) {
  std::string model, file;
  int iters = 5;
  bool single = false;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--single") {
      single = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "option %s needs a value\n", argv[i]);
      return 2;
    }
    const std::string v = argv[++i];
    if (k == "--model")
      model = v;
    else if (k == "--sentences")
      file = v;
    else if (k == "--iters")
      iters = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (model.empty() || file.empty() || iters < 1) {
    std::fprintf(stderr, "usage: bench_embed --model DIR --sentences FILE [--iters N] [--single]\n");
    return 2;
  }
  try {
    std::vector<std::string> texts;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) texts.push_back(line);
    if (texts.empty()) {
      std::fprintf(stderr, "bench_embed: no sentences in %s\n", file.c_str());
      return 2;
    }
    const auto t_load = std::chrono::steady_clock::now();
    const auto emb = lmf::tasks::SentenceEmbedder::from_pretrained(model);
    const double load_s = since(t_load);
    auto run = [&] {
      const auto t = std::chrono::steady_clock::now();
      double sink = 0;
      if (single) {
        for (const std::string& s : texts) sink += emb.encode({s}).contiguous().data<float>()[0];
      } else {
        sink += emb.encode(texts).contiguous().data<float>()[0];
      }
      volatile double keep = sink;
      (void)keep;
      return since(t);
    };
    run();  // warm-up
    std::string ts;
    for (int i = 0; i < iters; ++i) ts += (ts.empty() ? "" : ", ") + std::to_string(run());
    std::printf("{\"sentences\": %zu, \"load_s\": %.4f, \"times_s\": [%s]}\n", texts.size(), load_s,
                ts.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_embed: %s\n", e.what());
    return 2;
  }
  return 0;
}
