// The packed-weight small-batch kernel (kernels/cpu/gemm_small.cpp, ops::pack_linear_weight):
// against a float64 reference on tails in m, n and k (several k blocks, partial panels), every
// activation, one and two threads; the ops entry's fallbacks; and the nn rules that keep packed
// copies from going stale (prepare_inference, train, load_state_dict, replaced weights, fused
// q/k/v equal to three projections).
#include <gtest/gtest.h>

#include <cmath>

#include "../ops/activation_ref.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/gemm.h"
#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/nn/attention.h"
#include "lmforge/nn/feed_forward.h"
#include "lmforge/nn/init.h"
#include "lmforge/nn/layers.h"
#include "lmforge/ops/ops.h"

namespace {

using lmf::Activation;
using lmf::Tensor;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  EXPECT_EQ(ac.shape(), bc.shape());
  double worst = 0;
  for (int64_t i = 0; i < ac.numel(); ++i)
    worst = std::max(worst, std::abs(double(ac.data<float>()[i]) - double(bc.data<float>()[i])));
  return worst;
}

struct Restore {
  int64_t bound = lmf::cpu::packed_gemm_max_m();
  int threads = lmf::num_threads();
  ~Restore() {
    lmf::cpu::set_packed_gemm_max_m(bound);
    lmf::set_num_threads(threads);
  }
};

// Largest |got - want| / (1 + |want|) against float64, over the whole output.
double max_rel_err(const Tensor& got, const Tensor& x, const Tensor& w, const Tensor& b,
                   Activation act) {
  const Tensor xc = x.contiguous(), gc = got.contiguous();
  const int64_t m = xc.size(0), k = xc.size(1), n = w.size(0);
  double worst = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = b.defined() ? b.data<float>()[j] : 0.0;
      for (int64_t p = 0; p < k; ++p)
        s += double(xc.data<float>()[i * k + p]) * double(w.data<float>()[j * k + p]);
      const double want = lmf::test::activation_ref(act, s);
      worst = std::max(worst, std::abs(gc.data<float>()[i * n + j] - want) / (1 + std::abs(want)));
    }
  return worst;
}

TEST(GemmPacked, MatchesReferenceOnTailsBlocksAndActivations) {
  if (!lmf::kernels::cpu_has_avx512()) GTEST_SKIP() << "packed kernel needs AVX-512";
  Restore restore;
  lmf::cpu::set_packed_gemm_max_m(1 << 20);
  lmf::NoGradGuard no_grad;
  for (int threads : {1, 2}) {
    lmf::set_num_threads(threads);
    // m: every row-block split up to 2 blocks and beyond; n: partial panels; k: > kKc (256).
    for (int64_t m : {1, 5, 12, 13, 16, 25, 130})
      for (int64_t n : {1, 17, 32, 33, 100})
        for (int64_t k : {1, 16, 31, 257, 600}) {
          const Tensor x = lmf::randn({m, k});
          const Tensor w = lmf::randn({n, k}, 0.0, 0.1);
          const Tensor b = (m + n + k) % 2 ? lmf::randn({n}) : Tensor();
          const auto p = lmf::pack_linear_weight(w);
          ASSERT_TRUE(p);
          const Tensor y = lmf::linear(x, *p, b);
          ASSERT_EQ(y.shape(), (lmf::Shape{m, n}));
          ASSERT_LT(max_rel_err(y, x, w, b, Activation::none), 2e-5)
              << "m=" << m << " n=" << n << " k=" << k << " threads=" << threads;
        }
    for (Activation a : {Activation::relu, Activation::gelu, Activation::gelu_tanh,
                         Activation::silu, Activation::tanh}) {
      const Tensor x = lmf::randn({16, 384});
      const Tensor w = lmf::randn({1536, 384}, 0.0, 0.05);  // big enough for two threads
      const Tensor b = lmf::randn({1536});
      const Tensor y = lmf::linear(x, *lmf::pack_linear_weight(w), b, a);
      EXPECT_LT(max_rel_err(y, x, w, b, a), 2e-5) << "activation " << static_cast<int>(a);
    }
  }
}

TEST(GemmPacked, FusedWeightsEqualTheirConcatenation) {
  if (!lmf::kernels::cpu_has_avx512()) GTEST_SKIP() << "packed kernel needs AVX-512";
  lmf::NoGradGuard no_grad;
  const Tensor x = lmf::randn({2, 7, 40});
  // Parts whose sizes end on a panel boundary (64, 32, 32) and parts that straddle panels.
  for (std::vector<int64_t> rows : {std::vector<int64_t>{64, 32, 32}, {20, 36, 20}}) {
    std::vector<Tensor> ws;
    for (int64_t r : rows) ws.push_back(lmf::randn({r, 40}));
    const auto p = lmf::pack_linear_weights(ws);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->out_features(), rows[0] + rows[1] + rows[2]);
    const Tensor b = lmf::randn({p->out_features()});
    const Tensor want = lmf::linear(x, lmf::concat(ws, 0), b);
    EXPECT_LT(max_abs_diff(lmf::linear(x, *p, b), want), 1e-5);
  }
}

TEST(GemmPacked, OpsFallBackAndReportErrorsLikeLinear) {
  Restore restore;
  const Tensor w = lmf::randn({8, 4});
  const auto p = lmf::pack_linear_weight(w);
  if (!p) GTEST_SKIP() << "packing does not apply on this CPU";
  lmf::cpu::set_packed_gemm_max_m(4);
  const Tensor big = lmf::randn({9, 4});  // more rows than the bound: the unpacked path
  EXPECT_LT(max_abs_diff(lmf::linear(big, *p), lmf::linear(big, w)), 1e-6);
  EXPECT_THROW(lmf::linear(lmf::randn({2, 5}), *p), lmf::ShapeError);
  // An input that needs a gradient takes the autograd path and gets one.
  Tensor x = lmf::randn({2, 4});
  x.set_requires_grad(true);
  lmf::sum(lmf::linear(x, *p)).backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_EQ(lmf::pack_linear_weight(w.to(lmf::DType::bf16)), nullptr);
}

TEST(GemmPacked, PreparedLinearNeverUsesAStaleCopy) {
  if (!lmf::kernels::cpu_has_avx512()) GTEST_SKIP() << "packed kernel needs AVX-512";
  lmf::nn::Linear lin(12, 40);
  const Tensor x = lmf::randn({3, 12});
  lmf::NoGradGuard no_grad;
  const Tensor before = lin.forward(x);
  lin.prepare_inference();
  EXPECT_FALSE(lin.is_packed());  // packed on first use only
  EXPECT_LT(max_abs_diff(lin.forward(x), before), 1e-6);
  EXPECT_TRUE(lin.is_packed());
  // load_state_dict copies into the same storage: the copy must go.
  lmf::nn::StateDict sd;
  sd["weight"] = lmf::randn({40, 12});
  sd["bias"] = lmf::randn({40});
  lin.load_state_dict(sd);
  EXPECT_FALSE(lin.is_packed());
  const Tensor want = lmf::linear(x, sd["weight"], sd["bias"]);
  EXPECT_LT(max_abs_diff(lin.forward(x), want), 1e-5);
  // A replaced weight tensor (tying) is packed again.
  lin.weight() = lmf::randn({40, 12});
  const Tensor want2 = lmf::linear(x, lin.weight(), lin.bias());
  EXPECT_LT(max_abs_diff(lin.forward(x), want2), 1e-5);
  // train(true) drops the copy; in-place changes in training mode are then seen.
  lin.train();
  EXPECT_FALSE(lin.is_packed());
  lin.weight().copy_(lmf::mul(lin.weight(), 2.0));
  const Tensor want3 = lmf::linear(x, lin.weight(), lin.bias());
  EXPECT_LT(max_abs_diff(lin.forward(x), want3), 1e-5);
  EXPECT_FALSE(lin.is_packed());  // not prepared any more
}

TEST(GemmPacked, FusedQkvAttentionEqualsThreeProjections) {
  if (!lmf::kernels::cpu_has_avx512()) GTEST_SKIP() << "packed kernel needs AVX-512";
  for (auto cfg :
       {lmf::nn::AttentionConfig::bert(48, 4), lmf::nn::AttentionConfig::llama(48, 4, 2)}) {
    lmf::nn::MultiHeadAttention attn(cfg);
    lmf::nn::init::normal_(attn.q_proj().weight(), 0.0, 0.2);  // non-zero biases matter too
    attn.eval();
    lmf::NoGradGuard no_grad;
    const Tensor x = lmf::randn({2, 5, 48});
    const Tensor want = attn.forward(x).out;
    attn.prepare_inference();
    const Tensor got = attn.forward(x).out;
    EXPECT_LT(max_abs_diff(got, want), 1e-5);
    EXPECT_FALSE(attn.q_proj().is_packed());  // the fused copy replaced the three projections
  }
}

}  // namespace

// The gate/up pair pack (SwiGLU): act(x Wg^T) * (x Wu^T) against float64 on partial panels,
// several k blocks, one and two threads; its fallback for inputs the kernel does not take; and a
// prepared gated FeedForward equal to its unfused form.
TEST(GemmPacked, GatedPairMatchesReference) {
  if (!lmf::kernels::cpu_has_avx512()) GTEST_SKIP() << "packed kernel needs AVX-512";
  Restore restore;
  lmf::NoGradGuard no_grad;
  for (int threads : {1, 2}) {
    lmf::set_num_threads(threads);
    for (int64_t m : {1, 13, 128})
      for (int64_t n : {17, 64, 100, 1536})
        for (int64_t k : {31, 300}) {
          const Tensor x = lmf::randn({m, k});
          const Tensor g = lmf::randn({n, k}, 0.0, 0.1), u = lmf::randn({n, k}, 0.0, 0.1);
          const auto p = lmf::pack_gated_linear_weights(g, u);
          ASSERT_TRUE(p && p->gated());
          EXPECT_EQ(p->out_features(), n);
          for (Activation a : {Activation::silu, Activation::gelu}) {
            const Tensor y = lmf::gated_linear(x, *p, a);
            ASSERT_EQ(y.shape(), (lmf::Shape{m, n}));
            const Tensor xc = x.contiguous();
            double worst = 0;
            for (int64_t i = 0; i < m; ++i)
              for (int64_t j = 0; j < n; ++j) {
                double sg = 0, su = 0;
                for (int64_t q = 0; q < k; ++q) {
                  sg += double(xc.data<float>()[i * k + q]) * double(g.data<float>()[j * k + q]);
                  su += double(xc.data<float>()[i * k + q]) * double(u.data<float>()[j * k + q]);
                }
                const double want = lmf::test::activation_ref(a, sg) * su;
                worst = std::max(
                    worst, std::abs(y.data<float>()[i * n + j] - want) / (1 + std::abs(want)));
              }
            ASSERT_LT(worst, 2e-5)
                << "m=" << m << " n=" << n << " k=" << k << " threads=" << threads;
          }
        }
  }
  // More rows than the packed bound: the unfused product, same values.
  lmf::cpu::set_packed_gemm_max_m(4);
  const Tensor g = lmf::randn({40, 24}), u = lmf::randn({40, 24}), x = lmf::randn({9, 24});
  const auto p = lmf::pack_gated_linear_weights(g, u);
  ASSERT_TRUE(p);
  const Tensor want = lmf::linear(x, g, Tensor(), Activation::silu) * lmf::linear(x, u);
  EXPECT_LT(max_abs_diff(lmf::gated_linear(x, *p, Activation::silu), want), 1e-6);
  EXPECT_THROW(lmf::pack_gated_linear_weights(g, lmf::randn({41, 24})), lmf::ShapeError);
  EXPECT_THROW(lmf::gated_linear(x, *lmf::pack_linear_weight(g), Activation::silu),
               lmf::ValueError);
}

TEST(GemmPacked, PreparedGatedFeedForwardEqualsUnfused) {
  if (!lmf::kernels::cpu_has_avx512()) GTEST_SKIP() << "packed kernel needs AVX-512";
  lmf::NoGradGuard no_grad;
  lmf::nn::FeedForward ff(lmf::nn::FeedForwardConfig::swiglu(48, 100));
  lmf::manual_seed(3);
  for (auto& [name, t] : ff.named_parameters()) t.copy_(lmf::randn(t.shape(), 0.0, 0.1));
  ff.eval();
  const Tensor x = lmf::randn({2, 9, 48});
  const Tensor want = ff.forward(x);
  ff.prepare_inference();
  const Tensor got = ff.forward(x);
  EXPECT_LT(max_abs_diff(got, want), 1e-5);
  // Replacing a weight after packing is seen (the pack is remade from the new tensors).
  ff.release_inference();
  EXPECT_LT(max_abs_diff(ff.forward(x), want), 1e-6);
}
