// One timed pass of a tokenizer over a text file (one input per line), printed as a JSON line
// for bench/compare_tokenizers.py, which runs it against HF tokenizers.
// Usage: bench_tokenizers TOKENIZER_JSON TEXT_FILE single|batch
//        bench_tokenizers TOKENIZER_JSON TEXT_FILE dump  (one hash line per input: ids, tokens,
//        offsets, word ids; diff two builds' dumps to check a change is byte-identical)
//        bench_tokenizers - TEXT_FILE split   (GPT-2 pattern: hand scanner vs PCRE2-JIT, MB/s)
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lmforge/tokenizers/byte_level.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace {

std::vector<std::string> read_lines(const char* path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string all = ss.str();
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos <= all.size()) {
    size_t nl = all.find('\n', pos);
    if (nl == std::string::npos) nl = all.size();
    lines.emplace_back(all, pos, nl - pos);
    pos = nl + 1;
  }
  return lines;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int split_bench(const std::vector<std::string>& lines) {
  size_t bytes = 0;
  for (auto& l : lines) bytes += l.size();
  std::vector<lmf::tok::Match> m;
  for (int which = 0; which < 2; ++which) {
    double best = 1e30;
    size_t pieces = 0;
    for (int r = 0; r < 5; ++r) {
      pieces = 0;
      auto t0 = std::chrono::steady_clock::now();
      for (auto& l : lines) {
        which == 0 ? lmf::tok::gpt2_split(l, m) : lmf::tok::gpt2_split_pcre2(l, m);
        pieces += m.size();
      }
      best = std::min(best, seconds_since(t0));
    }
    std::printf("%-14s %8.1f MB/s  (%zu pieces)\n", which == 0 ? "hand scanner" : "PCRE2-JIT",
                bytes / best / 1e6, pieces);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s TOKENIZER_JSON TEXT_FILE single|batch|dump|split\n", argv[0]);
    return 2;
  }
  auto lines = read_lines(argv[2]);
  std::string mode = argv[3];
  if (mode == "split") return split_bench(lines);
  try {
    auto tok = lmf::tok::Tokenizer::from_file(argv[1]);
    tok.set_truncation(std::nullopt);  // as the HF side (no_truncation / no_padding)
    tok.set_padding(std::nullopt);
    if (mode == "dump") {
      for (auto& l : lines) {
        const auto e = tok.encode(l);
        uint64_t h = 1469598103934665603ull;
        auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
        for (size_t i = 0; i < e.size(); ++i) {
          mix(e.ids[i]);
          mix(e.offsets[i].first);
          mix(e.offsets[i].second);
          mix(e.word_ids[i].value_or(~0u));
          for (unsigned char c : e.tokens[i]) mix(c);
        }
        std::printf("%zu %016llx\n", e.size(), static_cast<unsigned long long>(h));
      }
      return 0;
    }
    size_t tokens = 0;
    auto t0 = std::chrono::steady_clock::now();
    double dt;
    if (mode == "single") {
      for (auto& l : lines) tokens += tok.encode(l).size();
      dt = seconds_since(t0);
    } else {
      // Timed up to the results, as the HF side (freeing them is not part of encoding).
      auto encs = tok.encode_batch(lines);
      dt = seconds_since(t0);
      for (auto& e : encs) tokens += e.size();
    }
    std::printf("{\"seconds\": %.6f, \"tokens\": %zu}\n", dt, tokens);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizers: %s\n", e.what());
    return 1;
  }
  return 0;
}
