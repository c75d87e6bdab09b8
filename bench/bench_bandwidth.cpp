// Read bandwidth of this machine at a few working-set sizes, lmforge's thread count: the bound
// for batch-1 inference, which streams every f32 weight once per forward (all-MiniLM-L6-v2's
// encoder holds 43 MB of Linear weights, BERT-base 340 MB). Each size is summed 15 times with
// AVX-512 loads split over the threads; prints one JSON line with medians in GB/s.
// Usage: bench_bandwidth [MB ...]   (default 1 43 340 1024)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "lmforge/core/runtime.h"

namespace {

__attribute__((target("avx512f"))) float sum_avx512(const float* a, int64_t n) {
  float total = 0;
#pragma omp parallel reduction(+ : total)
  {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i += 64) {
      s0 = _mm512_add_ps(s0, _mm512_load_ps(a + i));
      s1 = _mm512_add_ps(s1, _mm512_load_ps(a + i + 16));
      s2 = _mm512_add_ps(s2, _mm512_load_ps(a + i + 32));
      s3 = _mm512_add_ps(s3, _mm512_load_ps(a + i + 48));
    }
    total += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  }
  return total;
}

float sum_plain(const float* a, int64_t n) {
  float total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
  for (int64_t i = 0; i < n; ++i) total += a[i];
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> sizes_mb;
  for (int i = 1; i < argc; ++i) sizes_mb.push_back(std::atoll(argv[i]));
  if (sizes_mb.empty()) sizes_mb = {1, 43, 340, 1024};
  const int threads = lmf::num_threads();
  omp_set_num_threads(threads);
  std::string out;
  double sink = 0;
  for (int64_t mb : sizes_mb) {
    if (mb < 1) {
      std::fprintf(stderr, "bench_bandwidth: sizes are whole MB >= 1\n");
      return 2;
    }
    const int64_t n = mb * 1024 * 1024 / 4;
    auto* a = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(n) * 4));
    if (!a) {
      std::fprintf(stderr, "bench_bandwidth: cannot allocate %lld MB\n", static_cast<long long>(mb));
      return 2;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = 1.0f;  // first touch by the reading threads
    std::vector<double> ts;
    for (int r = 0; r < 15; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      sink += __builtin_cpu_supports("avx512f") ? sum_avx512(a, n) : sum_plain(a, n);
      ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::free(a);
    std::sort(ts.begin(), ts.end());
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s\"%lld\": %.2f", out.empty() ? "" : ", ",
                  static_cast<long long>(mb), static_cast<double>(n) * 4 / ts[ts.size() / 2] / 1e9);
    out += buf;
  }
  std::printf("{\"threads\": %d, \"read_gb_s_by_mb\": {%s}, \"checksum\": %.0f}\n", threads,
              out.c_str(), sink);
  return 0;
}
