// oneDNN f32 GEMM rate by operand layout (row- or column-major A and B) at the shapes of a linear
// layer's backward (BERT-base, M = batch x seq rows), process CPU time, medians: which
// formulation of dX = dZ W and dW = dZ^T X runs fastest.
// Usage: bench_gemm_layouts [M] [reps]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../src/kernels/cpu/gemm.h"
#include "lmforge/core/runtime.h"

namespace {

double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// C[m, n] = op(A) op(B); ta: A stored as [k, m] row-major; tb: B stored as [n, k] row-major.
double time_gemm(int64_t m, int64_t n, int64_t k, bool ta, bool tb, int reps) {
  std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n);
  lmf::cpu::GemmDesc d;
  d.m = m, d.n = n, d.k = k;
  d.a_rs = ta ? 1 : k, d.a_cs = ta ? m : 1;
  d.b_rs = tb ? 1 : n, d.b_cs = tb ? k : 1;
  d.c_rs = n;
  lmf::cpu::gemm(d, a.data(), b.data(), nullptr, c.data());
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const double c0 = cpu_s();
    lmf::cpu::gemm(d, a.data(), b.data(), nullptr, c.data());
    t.push_back(cpu_s() - c0);
  }
  std::sort(t.begin(), t.end());
  return 2.0 * double(m) * double(n) * double(k) / t[t.size() / 2] * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 1024;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  lmf::cpu::set_small_gemm_max_m(0);
  std::printf("threads %d, M = %lld; GFLOP/s per CPU-second (process CPU time)\n",
              lmf::num_threads(), static_cast<long long>(rows));
  std::printf("%6s %6s %6s | %8s %8s %8s %8s\n", "m", "n", "k", "A.B", "A.Bt", "At.B", "At.Bt");
  const int64_t feats[][2] = {{768, 768}, {3072, 768}, {768, 3072}};
  for (const auto& f : feats) {
    const int64_t out = f[0], in = f[1];
    // dX [rows, in] = dZ [rows, out] W [out, in]; dW [out, in] = dZ^T X (k = rows);
    // forward [rows, out] = X W^T (k = in).
    const int64_t shapes[][3] = {{rows, in, out}, {out, in, rows}, {in, rows, out}};
    for (const auto& s : shapes) {
      std::printf("%6lld %6lld %6lld |", static_cast<long long>(s[0]), static_cast<long long>(s[1]),
                  static_cast<long long>(s[2]));
      for (int v = 0; v < 4; ++v)
        std::printf(" %8.1f", time_gemm(s[0], s[1], s[2], v & 2, v & 1, reps));
      std::printf("\n");
    }
  }
  return 0;
}
