// Small-m linear (batch-1 inference shapes): lmforge's in-place small-m kernel against the oneDNN
// matmul path, alternating in one process, medians. Thread CPU time is reported too, which
// survives a loaded machine better than wall time for single-threaded runs.
// Usage: bench_gemm_small [reps]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../src/kernels/cpu/gemm.h"
#include "lmforge/core/runtime.h"
#include "lmforge/ops/ops.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 7;
  struct Shape {
    int64_t n, k;
    lmf::Activation act;
  };
  const Shape shapes[] = {{384, 384, lmf::Activation::none},   {1536, 384, lmf::Activation::gelu},
                          {384, 1536, lmf::Activation::none},  {768, 768, lmf::Activation::none},
                          {3072, 768, lmf::Activation::gelu},  {768, 3072, lmf::Activation::none}};
  lmf::NoGradGuard no_grad;
  std::printf("threads %d\n%6s %6s %6s %5s | %12s %12s | %12s %12s | %7s\n", lmf::num_threads(), "m",
              "n", "k", "act", "small GF/s", "small cpu us", "oneDNN GF/s", "oneDNN cpu us",
              "speedup");
  for (int64_t m : {1, 8, 16, 32, 64}) {
    for (const Shape& s : shapes) {
      const lmf::Tensor x = lmf::randn({m, s.k});
      const lmf::Tensor w = lmf::randn({s.n, s.k}, 0.0, 0.05);
      const lmf::Tensor b = lmf::randn({s.n});
      // Enough calls per sample for ~20 ms of work.
      const double flops = 2.0 * static_cast<double>(m * s.n * s.k);
      const int calls = std::max(3, static_cast<int>(20e-3 * 50e9 / flops));
      std::vector<double> wall[2], cpu[2];
      for (int r = 0; r < reps; ++r) {
        for (int path = 0; path < 2; ++path) {
          lmf::cpu::set_small_gemm_max_m(path == 0 ? 1 << 20 : 0);
          lmf::linear(x, w, b, s.act);  // warm-up (primitive creation)
          const double t0 = now_s(), c0 = cpu_s();
          for (int i = 0; i < calls; ++i) lmf::linear(x, w, b, s.act);
          wall[path].push_back((now_s() - t0) / calls);
          cpu[path].push_back((cpu_s() - c0) / calls);
        }
      }
      const double ws = median(wall[0]), wd = median(wall[1]);
      std::printf("%6lld %6lld %6lld %5s | %12.1f %12.1f | %12.1f %12.1f | %6.2fx\n",
                  static_cast<long long>(m), static_cast<long long>(s.n),
                  static_cast<long long>(s.k), s.act == lmf::Activation::gelu ? "gelu" : "-",
                  flops / ws * 1e-9, median(cpu[0]) * 1e6, flops / wd * 1e-9,
                  median(cpu[1]) * 1e6, wd / ws);
    }
  }
  return 0;
}
