// GEMM throughput: lmforge's matmul/linear (op API, Tensor in/out, no grad) against a bare oneDNN
// matmul primitive created once and executed directly, for f32 and bf16 on BERT-base shapes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <dnnl.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "lmforge/ops/ops.h"

namespace {

using lmf::Activation;
using lmf::DType;
using lmf::Tensor;
using Clock = std::chrono::steady_clock;

struct Workload {
  const char* name;
  int64_t m, n, k;
  bool linear;  // linear(x, W[n, k], bias) instead of matmul(a, b[k, n])
  Activation act;
};

struct Result {
  double lmf_ms, bare_ms, lmf_best_ms, bare_best_ms, flops;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A oneDNN matmul set up exactly like the workload: weights read transposed ("ba") for linear,
// bias and GELU fused; created once, executed on preallocated memory.
struct Bare {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul prim;
  std::unordered_map<int, dnnl::memory> args;

  Bare(const Workload& w, DType dt, const Tensor& a, const Tensor& b, const Tensor& bias,
       void* out) {
    using md = dnnl::memory::desc;
    const auto t = dt == DType::bf16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
    md a_md({w.m, w.k}, t, {w.k, 1});
    md b_md({w.k, w.n}, t, w.linear ? dnnl::memory::dims{1, w.k} : dnnl::memory::dims{w.n, 1});
    md c_md({w.m, w.n}, t, {w.n, 1});
    md bias_md({1, w.n}, t, {w.n, 1});
    dnnl::post_ops po;
    if (w.act == Activation::gelu) po.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0, 0);
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
    auto desc = w.linear ? dnnl::matmul::desc(a_md, b_md, bias_md, c_md)
                         : dnnl::matmul::desc(a_md, b_md, c_md);
    prim = dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, eng));
    args = {{DNNL_ARG_SRC, dnnl::memory(a_md, eng, a.data_ptr())},
            {DNNL_ARG_WEIGHTS, dnnl::memory(b_md, eng, b.data_ptr())},
            {DNNL_ARG_DST, dnnl::memory(c_md, eng, out)}};
    if (w.linear) args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias_md, eng, bias.data_ptr()));
  }
  void run() {
    prim.execute(strm, args);
    strm.wait();
  }
};

Result bench(const Workload& w, DType dt, int reps) {
  lmf::NoGradGuard no_grad;
  const Tensor a = lmf::randn({w.m, w.k}, 0.0, 1.0).to(dt);
  const Tensor b =
      (w.linear ? lmf::randn({w.n, w.k}, 0.0, 0.05) : lmf::randn({w.k, w.n}, 0.0, 0.05)).to(dt);
  const Tensor bias = lmf::randn({w.n}).to(dt);
  Tensor bare_out = Tensor::empty({w.m, w.n}, dt);
  Bare bare(w, dt, a, b, bias, bare_out.data_ptr());
  auto run_lmf = [&] { return w.linear ? lmf::linear(a, b, bias, w.act) : lmf::matmul(a, b); };
  run_lmf();  // warm-up: primitive creation, page faults, JIT
  bare.run();
  std::vector<double> tl, tb;
  auto time_lmf = [&] {
    const auto t0 = Clock::now();
    Tensor y = run_lmf();
    tl.push_back(seconds_since(t0));
  };
  auto time_bare = [&] {
    const auto t0 = Clock::now();
    bare.run();
    tb.push_back(seconds_since(t0));
  };
  for (int r = 0; r < reps; ++r) {  // alternate, and flip which goes first each round
    if (r % 2 == 0)
      time_lmf(), time_bare();
    else
      time_bare(), time_lmf();
  }
  return {median(tl) * 1e3, median(tb) * 1e3, *std::min_element(tl.begin(), tl.end()) * 1e3,
          *std::min_element(tb.begin(), tb.end()) * 1e3, 2.0 * w.m * w.n * w.k};
}

// Clock estimate from a chain of dependent 64-bit multiplies (3-cycle latency on recent x86
// cores); best of three short runs.
double estimate_ghz() {
#if defined(__x86_64__)
  double best = 0;
  for (int t = 0; t < 3; ++t) {
    uint64_t x = 3;
    const int64_t iters = 4'000'000;
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < iters; ++i) {
      asm volatile(
          "imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0\n\t"
          "imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0"
          : "+r"(x));
    }
    best = std::max(best, iters * 8.0 * 3.0 / seconds_since(t0) / 1e9);
  }
  return best;
#else
  return 0;
#endif
}

std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

}  // namespace

int main() {
  const auto t_start = Clock::now();
  const int threads = lmf::num_threads();
  const int reps = 9;
  const std::vector<Workload> loads{
      {"gemm 4096x3072x768 (matmul)", 4096, 3072, 768, false, Activation::none},
      {"BERT QKV proj (linear+bias)", 4096, 2304, 768, true, Activation::none},
      {"BERT attn out (linear+bias)", 4096, 768, 768, true, Activation::none},
      {"BERT FFN up (linear+bias+gelu)", 4096, 3072, 768, true, Activation::gelu},
      {"BERT FFN down (linear+bias)", 4096, 768, 3072, true, Activation::none},
  };
  const double ghz = estimate_ghz();
  std::printf(
      "bench_gemm: lmforge matmul/linear (op API, Tensor in/out, no grad) vs bare oneDNN %d.%d "
      "matmul primitive (created once, executed directly)\n",
      DNNL_VERSION_MAJOR, DNNL_VERSION_MINOR);
  std::printf(
      "CPU: %s, %d threads; M = tokens (BERT-base, batch 32 x seq 128 = 4096); medians of %d "
      "alternating runs\n",
      cpu_name().c_str(), threads, reps);
  std::printf(
      "%% of peak: peak = best bare-oneDNN rate measured in this run for that dtype. "
      "ratio = lmforge/bare rate from medians; best ratio = from the fastest run of each.\n");
  if (ghz > 0) {
    std::printf(
        "theoretical peak ESTIMATE: %d cores x %.2f GHz (dependent-imul clock estimate) x 64 "
        "f32 / 128 bf16 FLOP/cycle (assumes 2 AVX-512 FMA ports; bf16 via vdpbf16ps) = "
        "%.0f f32 / %.0f bf16 GFLOP/s\n",
        threads, ghz, threads * ghz * 64, threads * ghz * 128);
  }
  for (DType dt : {DType::f32, DType::bf16}) {
    std::vector<Result> rs;
    for (const auto& w : loads) rs.push_back(bench(w, dt, reps));
    double peak = 0;
    for (const auto& r : rs) peak = std::max(peak, r.flops / r.bare_ms / 1e6);
    std::printf("\n%-5s %-32s %9s %9s %12s %12s %7s %9s %9s %11s\n", lmf::dtype_name(dt).data(),
                "workload", "lmf ms", "bare ms", "lmf GFLOP/s", "bare GFLOP/s", "ratio", "lmf %pk",
                "bare %pk", "best ratio");
    for (size_t i = 0; i < loads.size(); ++i) {
      const auto& w = loads[i];
      const auto& r = rs[i];
      const double gl = r.flops / r.lmf_ms / 1e6, gb = r.flops / r.bare_ms / 1e6;
      const std::string shape =
          std::to_string(w.m) + "x" + std::to_string(w.n) + "x" + std::to_string(w.k);
      std::printf("      %-32s %9.2f %9.2f %12.1f %12.1f %6.1f%% %8.1f%% %8.1f%% %10.1f%%   (%s)\n",
                  w.name, r.lmf_ms, r.bare_ms, gl, gb, 100 * gl / gb, 100 * gl / peak,
                  100 * gb / peak, 100 * r.bare_best_ms / r.lmf_best_ms, shape.c_str());
    }
    std::printf("      peak (best bare %s): %.1f GFLOP/s\n", lmf::dtype_name(dt).data(), peak);
  }
  std::printf("\ntotal time %.1f s\n", seconds_since(t_start));
  return 0;
}
