// Statistics and determinism of the nn::init initialisers.
#include <gtest/gtest.h>

#include <cmath>

#include "lmforge/nn/init.h"

using namespace lmf;
using namespace lmf::nn;

namespace {
struct Stats {
  double mean, std, min, max;
};
Stats stats_of(const Tensor& t) {
  std::vector<float> v = t.to_vector<float>();
  double s = 0, sq = 0, lo = 1e300, hi = -1e300;
  for (float x : v)
    s += x, sq += double(x) * x, lo = std::min<double>(lo, x), hi = std::max<double>(hi, x);
  const double n = static_cast<double>(v.size()), m = s / n;
  return {m, std::sqrt(sq / n - m * m), lo, hi};
}
constexpr int64_t kN = 200000;
}  // namespace

TEST(Init, NormalHasRequestedMeanAndStd) {
  manual_seed(1);
  Tensor t = Tensor::empty({kN});
  init::normal_(t, 3.0, 0.5);
  Stats s = stats_of(t);
  EXPECT_NEAR(s.mean, 3.0, 5 * 0.5 / std::sqrt(double(kN)));
  EXPECT_NEAR(s.std, 0.5, 0.5 * 0.01);
}

TEST(Init, UniformCoversRangeWithRightVariance) {
  manual_seed(2);
  Tensor t = Tensor::empty({kN});
  init::uniform_(t, -2.0, 4.0);
  Stats s = stats_of(t);
  EXPECT_GE(s.min, -2.0);
  EXPECT_LT(s.max, 4.0);
  EXPECT_LT(s.min, -1.99);
  EXPECT_GT(s.max, 3.99);
  EXPECT_NEAR(s.mean, 1.0, 0.02);
  EXPECT_NEAR(s.std, 6.0 / std::sqrt(12.0), 0.01);
}

TEST(Init, XavierUniformAndNormalUseFans) {
  manual_seed(3);
  Tensor w = Tensor::empty({300, 500});
  auto [fan_in, fan_out] = init::fan_in_and_fan_out(w);
  EXPECT_EQ(fan_in, 500);
  EXPECT_EQ(fan_out, 300);
  init::xavier_uniform_(w, 2.0);
  const double bound = 2.0 * std::sqrt(6.0 / 800.0);
  Stats s = stats_of(w);
  EXPECT_LE(s.max, bound);
  EXPECT_GE(s.min, -bound);
  EXPECT_GT(s.max, 0.99 * bound);
  EXPECT_NEAR(s.std, bound / std::sqrt(3.0), 0.01 * bound);
  init::xavier_normal_(w);
  EXPECT_NEAR(stats_of(w).std, std::sqrt(2.0 / 800.0), 0.01 * std::sqrt(2.0 / 800.0));
  EXPECT_EQ(init::fan_in_and_fan_out(Tensor::empty({4, 3, 5})).first, 15);
  EXPECT_THROW(init::xavier_uniform_(Tensor::empty({5})), ShapeError);
}

TEST(Init, KaimingUniformMatchesTorchLinearDefaultBound) {
  manual_seed(4);
  Tensor w = Tensor::empty({400, 250});
  init::kaiming_uniform_(w, std::sqrt(5.0));
  Stats s = stats_of(w);
  const double bound = 1.0 / std::sqrt(250.0);  // torch nn.Linear's default weight bound
  EXPECT_LE(s.max, bound + 1e-7);
  EXPECT_GT(s.max, 0.99 * bound);
}

TEST(Init, TruncNormalStaysInBounds) {
  manual_seed(5);
  Tensor t = Tensor::empty({kN});
  init::trunc_normal_(t, 0.0, 1.0, -0.5, 0.5);
  Stats s = stats_of(t);
  EXPECT_GE(s.min, -0.5);
  EXPECT_LE(s.max, 0.5);
  // The standard normal truncated to [-0.5, 0.5] has std ~0.2859.
  EXPECT_NEAR(s.std, 0.2859, 0.003);
}

TEST(Init, ConstantsStridedViewsAndBf16) {
  Tensor t = Tensor::empty({3, 4});
  init::ones_(t);
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>(12, 1.f));
  init::zeros_(t.narrow(1, 1, 2));
  EXPECT_EQ(t.at({2, 1}), 0.0);
  EXPECT_EQ(t.at({2, 3}), 1.0);
  init::constant_(t, 0.25);
  EXPECT_EQ(t.at({1, 2}), 0.25);
  // A transposed view gets the values in its own row-major order.
  manual_seed(6);
  Tensor a = Tensor::empty({4, 3});
  init::normal_(a);
  manual_seed(6);
  Tensor b = Tensor::empty({3, 4});
  init::normal_(b.transpose(0, 1));
  EXPECT_EQ(a.to_vector<float>(), b.transpose(0, 1).to_vector<float>());
  Tensor h = Tensor::empty({1000}, DType::bf16);
  init::normal_(h, 0.0, 0.02);
  EXPECT_NEAR(stats_of(h).std, 0.02, 0.002);
  EXPECT_THROW(init::normal_(Tensor::empty({3}, DType::i64)), DTypeError);
}

TEST(Init, ExplicitGeneratorIsIndependentOfDefault) {
  Generator g1(77), g2(77);
  Tensor a = Tensor::empty({16}), b = Tensor::empty({16});
  init::normal_(a, 0, 1, &g1);
  manual_seed(123);
  init::uniform_(Tensor::empty({5}));  // disturbs only the default generator
  init::normal_(b, 0, 1, &g2);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
}

TEST(Init, NoInitGuardSkipsRandomDrawsOnly) {
  lmf::manual_seed(5);
  const double first = lmf::default_generator().normal();
  lmf::manual_seed(5);
  lmf::Tensor t = lmf::Tensor::zeros({4, 3});
  {
    lmf::nn::init::NoInitGuard guard;
    EXPECT_TRUE(lmf::nn::init::random_init_skipped());
    lmf::nn::init::normal_(t, 0.0, 1.0);
    lmf::nn::init::kaiming_uniform_(t, 2.0);
    for (float x : t.to_vector<float>()) EXPECT_EQ(x, 0.0f);
    lmf::nn::init::ones_(t);  // constants still apply
    for (float x : t.to_vector<float>()) EXPECT_EQ(x, 1.0f);
  }
  EXPECT_FALSE(lmf::nn::init::random_init_skipped());
  EXPECT_EQ(lmf::default_generator().normal(), first);  // no draw was made under the guard
  lmf::nn::init::normal_(t, 0.0, 1.0);
  EXPECT_NE(t.to_vector<float>()[0], 1.0f);
}
