// Dropout is random, so plain tests: reproducibility from the generator, the zeroed fraction,
// the 1/(1-p) scale, the backward mask, and the identity in eval mode.
#include <gtest/gtest.h>

#include <cmath>

#include "lmforge/ops/ops.h"

namespace lmf {
namespace {

TEST(Dropout, SameSeedGivesSameMaskDifferentSeedDoesNot) {
  Tensor x = rand({4096}, 1.0, 2.0);
  Generator g1(7), g2(7), g3(8);
  const auto a = dropout(x, 0.3, true, &g1).to_vector<float>();
  const auto b = dropout(x, 0.3, true, &g2).to_vector<float>();
  const auto c = dropout(x, 0.3, true, &g3).to_vector<float>();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // The generator advances: a second call gives a new mask.
  EXPECT_NE(dropout(x, 0.3, true, &g1).to_vector<float>(), a);
}

TEST(Dropout, DefaultGeneratorFollowsManualSeed) {
  Tensor x = rand({1000}, 1.0, 2.0);
  manual_seed(99);
  const auto a = dropout(x, 0.5, true).to_vector<float>();
  manual_seed(99);
  const auto b = dropout(x, 0.5, true).to_vector<float>();
  EXPECT_EQ(a, b);
}

TEST(Dropout, MaskDoesNotDependOnThreadCount) {
  Tensor x = rand({100000}, 1.0, 2.0);
  const int before = num_threads();
  set_num_threads(1);
  Generator g1(3);
  const auto a = dropout(x, 0.2, true, &g1).to_vector<float>();
  set_num_threads(2);
  Generator g2(3);
  const auto b = dropout(x, 0.2, true, &g2).to_vector<float>();
  set_num_threads(before);
  EXPECT_EQ(a, b);
}

TEST(Dropout, ZeroedFractionIsPAndSurvivorsAreScaled) {
  const int64_t n = 200000;
  Tensor x = rand({n}, 1.0, 2.0);  // never zero itself
  for (double p : {0.1, 0.5, 0.9}) {
    Generator g(11);
    Tensor out = dropout(x, p, true, &g);
    const auto xv = x.to_vector<float>(), ov = out.to_vector<float>();
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (ov[i] == 0.0f) {
        ++zeros;
      } else {
        ASSERT_EQ(ov[i], xv[i] * scale) << "p=" << p << " element " << i;
      }
    }
    // 5 standard deviations of a binomial fraction.
    const double frac = static_cast<double>(zeros) / n;
    EXPECT_NEAR(frac, p, 5 * std::sqrt(p * (1 - p) / n)) << "p=" << p;
  }
}

TEST(Dropout, BackwardAppliesTheSameMask) {
  Tensor x = rand({3, 500}, 1.0, 2.0).set_requires_grad(true);
  Generator g(5);
  Tensor out = dropout(x, 0.4, true, &g);
  Tensor seed = randn({3, 500});
  out.backward(seed);
  const auto ov = out.to_vector<float>(), sv = seed.to_vector<float>();
  const auto gv = x.grad().to_vector<float>();
  const float scale = static_cast<float>(1.0 / 0.6);
  int64_t kept = 0;
  for (size_t i = 0; i < ov.size(); ++i) {
    if (ov[i] != 0.0f) {
      ++kept;
      EXPECT_EQ(gv[i], sv[i] * scale);
    } else {
      EXPECT_EQ(gv[i], 0.0f);
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, static_cast<int64_t>(ov.size()));
}

TEST(Dropout, EvalModeAndZeroPAreIdentity) {
  Tensor x = randn({4, 5}).set_requires_grad(true);
  Generator g(1);
  const auto state = g.state();
  Tensor e = dropout(x, 0.5, false, &g);
  EXPECT_TRUE(e.same(x));
  EXPECT_TRUE(dropout(x, 0.0, true, &g).same(x));
  EXPECT_EQ(g.state().s, state.s);  // no draw when nothing is dropped
}

TEST(Dropout, NonContiguousAndBf16Inputs) {
  Tensor x = rand({6, 4}, 1.0, 2.0).transpose(0, 1);
  Generator g(2);
  Tensor out = dropout(x, 0.5, true, &g);
  EXPECT_EQ(out.shape(), (Shape{4, 6}));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 6; ++j) {
      const double v = out.at({i, j});
      EXPECT_TRUE(v == 0.0 || v == static_cast<double>(static_cast<float>(x.at({i, j})) * 2.0f));
    }
  Tensor b = dropout(rand({8}, 1.0, 2.0).to(DType::bf16), 0.5, true, &g);
  EXPECT_EQ(b.dtype(), DType::bf16);
}

TEST(Dropout, BadInputsThrow) {
  Tensor x = randn({3});
  EXPECT_THROW(dropout(x, -0.1, true), ValueError);
  EXPECT_THROW(dropout(x, 1.0, true), ValueError);
  EXPECT_THROW(dropout(x, 1.5, false), ValueError);
  EXPECT_THROW(dropout(x, std::nan(""), true), ValueError);
  EXPECT_THROW(dropout(Tensor::arange(3), 0.5, true), DTypeError);
}

}  // namespace
}  // namespace lmf
