// The small-m linear kernel (kernels/cpu/gemm_small.cpp) against the oneDNN path and a float64
// reference: tails in m, n and k, padded rows, every activation, one and two threads.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/gemm.h"
#include "lmforge/core/runtime.h"
#include "lmforge/ops/ops.h"
#include "../ops/activation_ref.h"

namespace {

using lmf::Activation;
using lmf::Tensor;

// Restores the small-m bound and thread count a test changes.
struct Restore {
  int64_t bound = lmf::cpu::small_gemm_max_m();
  int threads = lmf::num_threads();
  ~Restore() {
    lmf::cpu::set_small_gemm_max_m(bound);
    lmf::set_num_threads(threads);
  }
};

void check_shape(int64_t m, int64_t n, int64_t k, Activation act, bool bias, bool padded) {
  lmf::NoGradGuard no_grad;
  // padded: x is a column slice of a wider tensor, so its row stride exceeds k.
  Tensor x = padded ? lmf::randn({m, k + 5}).narrow(1, 2, k) : lmf::randn({m, k});
  const Tensor w = lmf::randn({n, k}, 0.0, 0.2);
  const Tensor b = bias ? lmf::randn({n}) : Tensor();
  lmf::cpu::set_small_gemm_max_m(1 << 20);
  const Tensor small = lmf::linear(x, w, b, act).contiguous();
  lmf::cpu::set_small_gemm_max_m(0);
  const Tensor dnnl = lmf::linear(x, w, b, act).contiguous();
  const Tensor xc = x.contiguous();
  const float* xp = xc.data<float>();
  const float* wp = w.data<float>();
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = bias ? b.data<float>()[j] : 0.0;
      for (int64_t p = 0; p < k; ++p) s += double(xp[i * k + p]) * double(wp[j * k + p]);
      const double want = lmf::test::activation_ref(act, s);
      const float got = small.data<float>()[i * n + j];
      ASSERT_NEAR(got, want, 1e-5 * (1 + std::abs(want)))
          << "m=" << m << " n=" << n << " k=" << k << " at (" << i << ", " << j << ")";
      ASSERT_NEAR(got, dnnl.data<float>()[i * n + j], 1e-5 * (1 + std::abs(want)));
    }
  }
}

TEST(GemmSmall, MatchesReferenceOnTailsAndActivations) {
  if (!lmf::kernels::cpu_has_avx512()) GTEST_SKIP() << "small-m kernel needs AVX-512";
  Restore restore;
  for (int threads : {1, 2}) {
    lmf::set_num_threads(threads);
    for (int64_t m : {1, 3, 4, 7, 16})
      for (int64_t n : {1, 5, 8, 33})
        for (int64_t k : {1, 15, 16, 17, 70})
          check_shape(m, n, k, Activation::none, (m + n) % 2 == 0, k == 17);
    for (Activation a : {Activation::relu, Activation::gelu, Activation::gelu_tanh, Activation::silu,
                         Activation::tanh})
      check_shape(5, 37, 48, a, true, false);
    check_shape(16, 384, 384, Activation::gelu, true, false);  // two threads split the columns
  }
}

TEST(GemmSmall, TakenOnlyForSmallRowMajorF32) {
  Restore restore;
  lmf::cpu::set_small_gemm_max_m(32);
  lmf::cpu::GemmDesc d;
  d.m = 16, d.n = 64, d.k = 32, d.a_rs = 32, d.a_cs = 1, d.b_rs = 1, d.b_cs = 32, d.c_rs = 64;
  EXPECT_EQ(lmf::cpu::gemm_small_applies(d), lmf::kernels::cpu_has_avx512());
  lmf::cpu::GemmDesc big = d;
  big.m = 33;
  EXPECT_FALSE(lmf::cpu::gemm_small_applies(big));
  lmf::cpu::GemmDesc row_major_b = d;  // B as [k, n] row-major: not a Linear weight
  row_major_b.b_rs = 64, row_major_b.b_cs = 1;
  EXPECT_FALSE(lmf::cpu::gemm_small_applies(row_major_b));
  lmf::cpu::GemmDesc bf16 = d;
  bf16.ab_type = bf16.c_type = lmf::DType::bf16;
  EXPECT_FALSE(lmf::cpu::gemm_small_applies(bf16));
}

}  // namespace
