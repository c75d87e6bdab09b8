#include <gtest/gtest.h>

#include <cmath>

#include "lmforge/core/runtime.h"
#include "lmforge/tasks/pooling.h"

using namespace lmf;

namespace {
// hidden [2, 3, 4], second sequence has one padding position.
struct Fixture {
  Tensor h = randn({2, 3, 4});
  Tensor mask = Tensor::from_vector<int64_t>({1, 1, 1, 1, 1, 0}, {2, 3});
};
}  // namespace

TEST(Pooling, MeanMaxClsAndSqrtLenMatchSentenceTransformersFormulas) {
  manual_seed(3);
  Fixture f;
  const auto hv = f.h.to_vector<float>();
  auto H = [&](int b, int t, int d) { return static_cast<double>(hv[(b * 3 + t) * 4 + d]); };
  const int len[2] = {3, 2};
  Tensor mean = tasks::pool(f.h, f.mask, tasks::Pooling::mean);
  Tensor mx = tasks::pool(f.h, f.mask, tasks::Pooling::max);
  Tensor cls = tasks::pool(f.h, f.mask, tasks::Pooling::cls);
  Tensor sq = tasks::pool(f.h, f.mask, tasks::Pooling::mean_sqrt_len);
  ASSERT_EQ(mean.shape(), (Shape{2, 4}));
  for (int b = 0; b < 2; ++b)
    for (int d = 0; d < 4; ++d) {
      double s = 0, m = -1e30;
      for (int t = 0; t < len[b]; ++t) s += H(b, t, d), m = std::max(m, H(b, t, d));
      EXPECT_NEAR(mean.at({b, d}), s / len[b], 1e-6);
      EXPECT_NEAR(sq.at({b, d}), s / std::sqrt(len[b]), 1e-6);
      EXPECT_NEAR(mx.at({b, d}), m, 1e-6);
      EXPECT_NEAR(cls.at({b, d}), H(b, 0, d), 0);
    }
}

TEST(Pooling, NormalizeAndCosineMatrix) {
  Tensor x = Tensor::from_vector<float>({3, 4, 0, 0}, {2, 2});
  Tensor n = tasks::l2_normalize(x);
  EXPECT_NEAR(n.at({0, 0}), 0.6, 1e-7);
  EXPECT_NEAR(n.at({0, 1}), 0.8, 1e-7);
  EXPECT_EQ(n.at({1, 0}), 0.0);  // a zero row stays zero (no NaN)
  Tensor a = Tensor::from_vector<float>({1, 0, 1, 1}, {2, 2});
  Tensor c = tasks::cosine_similarity_matrix(a, a);
  EXPECT_NEAR(c.at({0, 1}), 1 / std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(c.at({1, 1}), 1.0, 1e-6);
}

TEST(Pooling, RejectsBadInput) {
  Fixture f;
  EXPECT_THROW(tasks::pool(f.h, Tensor::ones({2, 4}), tasks::Pooling::mean), ShapeError);
  EXPECT_THROW(tasks::pool(f.h.select(0, 0), f.mask, tasks::Pooling::mean), ShapeError);
  EXPECT_THROW(tasks::pool(f.h, f.mask, tasks::Pooling::pooler), ValueError);
  EXPECT_THROW(tasks::parse_pooling("avg"), ValueError);
  EXPECT_THROW(tasks::cosine_similarity_matrix(Tensor::ones({2, 3}), Tensor::ones({2, 4})), ShapeError);
}
