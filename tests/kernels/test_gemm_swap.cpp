// matmul's swapped form for a row-major right operand with many columns (C^T = B^T A^T, then a
// transpose): results against a float64 reference, including a transposed left operand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "kernels/cpu/gemm.h"
#include "lmforge/ops/ops.h"

namespace {

using lmf::Tensor;

void expect_matches(const Tensor& a, const Tensor& b, bool ta) {
  lmf::NoGradGuard no_grad;
  const Tensor c = lmf::matmul(a, b, ta, false).contiguous();
  const Tensor ac = (ta ? a.transpose(0, 1) : a).contiguous(), bc = b.contiguous();
  const int64_t m = c.size(0), n = c.size(1), k = ac.size(1);
  for (int64_t i = 0; i < m; i += 7) {
    for (int64_t j = 0; j < n; j += 5) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p)
        s += double(ac.data<float>()[i * k + p]) * double(bc.data<float>()[p * n + j]);
      ASSERT_NEAR(c.data<float>()[i * n + j], s, 1e-4 * (1 + std::abs(s))) << i << ", " << j;
    }
  }
}

TEST(GemmSwap, WideRowMajorRightOperandMatchesReference) {
  lmf::cpu::GemmDesc d;
  d.m = 70, d.n = 2100, d.k = 40, d.a_rs = 40, d.a_cs = 1, d.b_rs = 2100, d.b_cs = 1, d.c_rs = 2100;
  ASSERT_TRUE(lmf::cpu::gemm_swap_pays(d) || std::getenv("LMFORGE_NO_GEMM_SWAP"));
  expect_matches(lmf::randn({70, 40}), lmf::randn({40, 2100}), false);
  expect_matches(lmf::randn({40, 70}), lmf::randn({40, 2100}), true);  // dW = dZ^T X form
}

TEST(GemmSwap, LinearGradientsThroughWideLayerMatchReference) {
  // FFN-down shape: its input gradient and weight gradient both take the swapped form.
  Tensor x = lmf::randn({64, 2048}), w = lmf::randn({64, 2048}, 0.0, 0.05);
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  const Tensor g = lmf::randn({64, 64});
  lmf::sum(lmf::mul(lmf::linear(x, w, Tensor()), g)).backward();
  // dx = g w, dw = g^T x
  for (int64_t i = 0; i < 64; i += 9)
    for (int64_t j = 0; j < 2048; j += 97) {
      double s = 0;
      for (int64_t o = 0; o < 64; ++o)
        s += double(g.data<float>()[i * 64 + o]) * double(w.data<float>()[o * 2048 + j]);
      ASSERT_NEAR(x.grad().data<float>()[i * 2048 + j], s, 1e-4 * (1 + std::abs(s)));
    }
  for (int64_t o = 0; o < 64; o += 3)
    for (int64_t j = 0; j < 2048; j += 101) {
      double s = 0;
      for (int64_t i = 0; i < 64; ++i)
        s += double(g.data<float>()[i * 64 + o]) * double(x.data<float>()[i * 2048 + j]);
      ASSERT_NEAR(w.grad().data<float>()[o * 2048 + j], s, 1e-4 * (1 + std::abs(s)));
    }
}

}  // namespace
