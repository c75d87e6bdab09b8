// Fused attention forward+backward at BERT-base shapes vs the time its six GEMMs (forward QK^T,
// PV; backward dV, dP, dQ, dK) would take at the rate of a bare large oneDNN f32 matmul.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "lmforge/ops/ops.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double time_ms(const std::function<void()>& fn) {
  const double t0 = now_ms();
  fn();
  return now_ms() - t0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A bare oneDNN f32 matmul M x K x N (plain row-major layouts), built once.
struct DnnlMatmul {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::memory a, b, c;
  dnnl::matmul prim;
  DnnlMatmul(int64_t m, int64_t k, int64_t n) {
    using tag = dnnl::memory::format_tag;
    const auto f32 = dnnl::memory::data_type::f32;
    dnnl::memory::desc ad({m, k}, f32, tag::ab), bd({k, n}, f32, tag::ab), cd({m, n}, f32, tag::ab);
    a = dnnl::memory(ad, eng);
    b = dnnl::memory(bd, eng);
    c = dnnl::memory(cd, eng);
    std::fill_n(static_cast<float*>(a.get_data_handle()), m * k, 0.01f);
    std::fill_n(static_cast<float*>(b.get_data_handle()), k * n, 0.02f);
    prim = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(ad, bd, cd), eng));
  }
  void run() {
    prim.execute(strm, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    strm.wait();
  }
};

}  // namespace

// Prints one table per thread count (2 is the target; 1 is steadier on a shared machine).
int main() {
  const int reps = 7;
  const int64_t gm = 4096, gk = 768, gn = 768;
  DnnlMatmul mm(gm, gk, gn);
  for (int threads : {2, 1}) {
    lmf::set_num_threads(threads);
    mm.run();
    std::printf("threads: %d, medians of %d alternating runs\n", lmf::num_threads(), reps);
    std::printf("%-34s %10s %10s %8s %8s\n", "workload", "lmforge ms", "gemm-only", "ratio",
                "% peak");
    std::vector<double> peak_rates;
    for (int64_t B : {8, 32}) {
      const int64_t H = 12, T = 128, D = 64;
      lmf::manual_seed(1);
      lmf::Tensor q = lmf::randn({B, H, T, D}).set_requires_grad(true);
      lmf::Tensor k = lmf::randn({B, H, T, D}).set_requires_grad(true);
      lmf::Tensor v = lmf::randn({B, H, T, D}).set_requires_grad(true);
      const lmf::Tensor g = lmf::randn({B, H, T, D});
      lmf::AttentionOptions opt;
      opt.key_padding_mask = lmf::Tensor::ones({B, T}, lmf::DType::boolean);
      auto fwd_bwd = [&] {
        q.zero_grad();
        k.zero_grad();
        v.zero_grad();
        lmf::scaled_dot_product_attention(q, k, v, opt).out.backward(g);
      };
      auto fwd_infer = [&] {
        lmf::NoGradGuard ng;
        lmf::scaled_dot_product_attention(q, k, v, opt);
      };
      fwd_bwd();
      fwd_infer();
      std::vector<double> t_train, t_infer, t_gemm;
      for (int r = 0; r < reps; ++r) {
        t_gemm.push_back(time_ms([&] { mm.run(); }));
        t_train.push_back(time_ms(fwd_bwd));
        t_infer.push_back(time_ms(fwd_infer));
      }
      const double rate = 2.0 * gm * gk * gn / (median(t_gemm) * 1e-3);  // FLOP/s
      peak_rates.push_back(rate);
      const double one = 2.0 * B * H * T * T * D;  // FLOPs of one attention GEMM
      const double train_ref = 6 * one / rate * 1e3, infer_ref = 2 * one / rate * 1e3;
      const double tt = median(t_train), ti = median(t_infer);
      std::printf("%-34s %10.2f %10.2f %7.2fx %7.1f%%\n",
                  fmt::format("fwd+bwd B={} H={} T={} D={}", B, H, T, D).c_str(), tt, train_ref,
                  tt / train_ref, 100 * train_ref / tt);
      std::printf("%-34s %10.2f %10.2f %7.2fx %7.1f%%\n",
                  fmt::format("fwd (no grad) B={} H={} T={} D={}", B, H, T, D).c_str(), ti,
                  infer_ref, ti / infer_ref, 100 * infer_ref / ti);
    }
    std::printf(
        "peak: oneDNN f32 matmul %ldx%ldx%ld at %.1f / %.1f GFLOP/s (medians, per workload)\n", gm,
        gk, gn, peak_rates[0] * 1e-9, peak_rates[1] * 1e-9);
  }
  return 0;
}
