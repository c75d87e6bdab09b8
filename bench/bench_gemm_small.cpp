// Small-m linear (batch-1 inference shapes): lmforge's in-place small-m kernel against the oneDNN
// matmul path, alternating in one process, medians. Thread CPU time is reported too, which
// survives a loaded machine better than wall time for single-threaded runs.
// Usage: bench_gemm_small [reps [m ...]]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
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
  // BERT shapes (MiniLM, BERT-base) or, with LMF_BENCH_SHAPES=smollm2, SmolLM2-135M's.
  const std::vector<Shape> bert = {
      {384, 384, lmf::Activation::none},  {1536, 384, lmf::Activation::gelu},
      {384, 1536, lmf::Activation::none}, {768, 768, lmf::Activation::none},
      {3072, 768, lmf::Activation::gelu}, {768, 3072, lmf::Activation::none}};
  const std::vector<Shape> smollm2 = {{576, 576, lmf::Activation::none},
                                      {192, 576, lmf::Activation::none},
                                      {1536, 576, lmf::Activation::none},
                                      {576, 1536, lmf::Activation::none},
                                      {49152, 576, lmf::Activation::none}};
  const char* which = std::getenv("LMF_BENCH_SHAPES");
  const std::vector<Shape>& shapes = which && std::string(which) == "smollm2" ? smollm2 : bert;
  lmf::NoGradGuard no_grad;
  // Row counts: argv[2..] or batch-1 inference sizes.
  std::vector<int64_t> ms;
  for (int i = 2; i < argc; ++i) ms.push_back(std::atoll(argv[i]));
  if (ms.empty()) ms = {1, 8, 16, 32, 64, 128};
  const char* names[3] = {"in-place", "packed", "oneDNN"};
  std::printf("threads %d; GFLOP/s (wall) and CPU us per call, medians of %d\n%5s %5s %5s %5s |",
              lmf::num_threads(), reps, "m", "n", "k", "act");
  for (const char* nm : names) std::printf(" %9s GF/s   cpu us |", nm);
  std::printf(" packed vs in-place, vs oneDNN\n");
  for (int64_t m : ms) {
    for (const Shape& s : shapes) {
      const lmf::Tensor x = lmf::randn({m, s.k});
      const lmf::Tensor w = lmf::randn({s.n, s.k}, 0.0, 0.05);
      const lmf::Tensor b = lmf::randn({s.n});
      const lmf::Tensor packed = lmf::Tensor::empty({lmf::cpu::packed_floats(s.n, s.k)});
      lmf::cpu::pack_weight_f32(w.data<float>(), s.n, s.k, s.k, packed.data<float>());
      lmf::Tensor y = lmf::Tensor::empty({m, s.n});
      const auto gact =
          s.act == lmf::Activation::gelu ? lmf::cpu::GemmAct::gelu_erf : lmf::cpu::GemmAct::none;
      // Enough calls per sample for ~20 ms of work.
      const double flops = 2.0 * static_cast<double>(m * s.n * s.k);
      const int calls = std::max(3, static_cast<int>(20e-3 * 50e9 / flops));
      std::vector<double> wall[3], cpu[3];
      for (int r = 0; r < reps; ++r) {
        for (int path = 0; path < 3; ++path) {
          lmf::cpu::set_small_gemm_max_m(path == 0 ? 1 << 20 : 0);
          auto call = [&] {
            if (path == 1)
              lmf::cpu::gemm_packed_f32(m, s.n, s.k, x.data<float>(), s.k, packed.data<float>(),
                                        b.data<float>(), gact, y.data<float>(), s.n);
            else
              lmf::linear(x, w, b, s.act);
          };
          call();  // warm-up (primitive creation)
          const double t0 = now_s(), c0 = cpu_s();
          for (int i = 0; i < calls; ++i) call();
          wall[path].push_back((now_s() - t0) / calls);
          cpu[path].push_back((cpu_s() - c0) / calls);
        }
      }
      std::printf("%5lld %5lld %5lld %5s |", static_cast<long long>(m), static_cast<long long>(s.n),
                  static_cast<long long>(s.k), s.act == lmf::Activation::gelu ? "gelu" : "-");
      for (int path = 0; path < 3; ++path)
        std::printf(" %14.1f %8.1f |", flops / median(wall[path]) * 1e-9, median(cpu[path]) * 1e6);
      std::printf(" %5.2fx %5.2fx\n", median(wall[0]) / median(wall[1]),
                  median(wall[2]) / median(wall[1]));
    }
  }
  return 0;
}
