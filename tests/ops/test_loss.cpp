// Op-table cases, bad-input tests and a PyTorch golden cross-check for cross_entropy, mse_loss
// and binary_cross_entropy_with_logits.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "ops/op_harness.h"

namespace lmf::test {
namespace {

const char* red_name(Reduction r) {
  return r == Reduction::none ? "none" : r == Reduction::mean ? "mean" : "sum";
}

Ref reduce_ref(const Ref& per, int64_t count, Reduction r) {
  if (r == Reduction::none) return per;
  double s = 0;
  for (double v : per.v) s += v;
  return Ref({}, r == Reduction::sum ? s : s / static_cast<double>(count));
}

Ref ce_ref(const Ref& x, const Ref& t, int64_t ignore, double eps, Reduction red) {
  const bool batched = x.shape.size() == 2;
  const int64_t n = batched ? x.shape[0] : 1, c = x.shape.back();
  Ref per(t.shape);
  int64_t valid = 0;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t tr = static_cast<int64_t>(t[r]);
    if (tr == ignore) continue;
    ++valid;
    const double* xr = x.v.data() + r * c;
    double m = xr[0], sx = 0, se = 0;
    for (int64_t j = 0; j < c; ++j) m = std::max(m, xr[j]);
    for (int64_t j = 0; j < c; ++j) se += std::exp(xr[j] - m), sx += xr[j];
    const double lse = m + std::log(se);
    per[r] = (1 - eps) * (lse - xr[tr]) + eps * (lse - sx / static_cast<double>(c));
  }
  return reduce_ref(per, valid, red);
}

OpCase ce_case(std::string name, Shape shape, std::vector<int64_t> targets, double scale,
               int64_t ignore, double eps, Reduction red, bool i32 = false) {
  const Shape t_shape = shape.size() == 2 ? Shape{shape[0]} : Shape{};
  return OpCase{
      .name = std::move(name),
      .dtypes = {DType::f32, DType::bf16},
      .inputs =
          [=] {
            Tensor t = Tensor::from_vector(targets, t_shape);
            return std::vector<Tensor>{randn(shape, 0.0, scale), i32 ? t.to(DType::i32) : t};
          },
      .op =
          [=](const std::vector<Tensor>& in) {
            return cross_entropy(in[0], in[1], ignore, eps, red);
          },
      .reference =
          [=](const std::vector<Ref>& in) { return ce_ref(in[0], in[1], ignore, eps, red); },
      .grad_inputs = {0},
      .tol = 2e-5,
      .bf16_tol = 3e-2};
}

OpCase mse_case(Shape shape, Reduction red) {
  return OpCase{.name = std::string("mse_loss/") + red_name(red),
                .dtypes = {DType::f32, DType::bf16},
                .inputs =
                    [=] {
                      return std::vector<Tensor>{randn(shape), randn(shape)};
                    },
                .op = [=](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], red); },
                .reference =
                    [=](const std::vector<Ref>& in) {
                      Ref per(in[0].shape);
                      for (int64_t i = 0; i < per.numel(); ++i)
                        per[i] = (in[0][i] - in[1][i]) * (in[0][i] - in[1][i]);
                      return reduce_ref(per, per.numel(), red);
                    },
                .grad_inputs = {0, 1},
                .bf16_tol = 5e-2};
}

OpCase bce_case(Shape shape, Reduction red, double scale) {
  return OpCase{.name = std::string("bce_with_logits/") + red_name(red),
                .dtypes = {DType::f32, DType::bf16},
                .inputs =
                    [=] {
                      return std::vector<Tensor>{randn(shape, 0.0, scale), rand(shape)};
                    },
                .op =
                    [=](const std::vector<Tensor>& in) {
                      return binary_cross_entropy_with_logits(in[0], in[1], red);
                    },
                .reference =
                    [=](const std::vector<Ref>& in) {
                      Ref per(in[0].shape);
                      for (int64_t i = 0; i < per.numel(); ++i) {
                        const double x = in[0][i], y = in[1][i];
                        // log(1 + e^x) - x y, written without overflow.
                        per[i] = std::max(x, 0.0) - x * y + std::log1p(std::exp(-std::abs(x)));
                      }
                      return reduce_ref(per, per.numel(), red);
                    },
                .grad_inputs = {0, 1},
                .bf16_tol = 5e-2};
}

const std::vector<int64_t> kTargets6 = {3, -100, 0, 4, -100, 1};

LMF_REGISTER_OP_CASES({
    ce_case("cross_entropy/mean_ignore_rows", {6, 5}, kTargets6, 2.0, -100, 0.0, Reduction::mean),
    ce_case("cross_entropy/sum_ignore_rows", {6, 5}, kTargets6, 2.0, -100, 0.0, Reduction::sum),
    ce_case("cross_entropy/none_ignore_rows", {6, 5}, kTargets6, 2.0, -100, 0.0, Reduction::none),
    ce_case("cross_entropy/smoothing_mean", {6, 5}, kTargets6, 1.0, -100, 0.1, Reduction::mean),
    ce_case("cross_entropy/smoothing_sum", {6, 5}, kTargets6, 1.0, -100, 0.1, Reduction::sum),
    ce_case("cross_entropy/smoothing_none", {6, 5}, kTargets6, 1.0, -100, 0.1, Reduction::none),
    ce_case("cross_entropy/custom_ignore_index_i32", {5, 4}, {2, 0, 2, 3, 1}, 1.0, 2, 0.3,
            Reduction::mean, true),
    ce_case("cross_entropy/large_logits", {4, 7}, {6, 0, 3, 2}, 40.0, -100, 0.0, Reduction::mean),
    ce_case("cross_entropy/wide_rows", {3, 300}, {299, 0, 150}, 1.0, -100, 0.05, Reduction::mean),
    ce_case("cross_entropy/1d_mean", {9}, {4}, 1.0, -100, 0.0, Reduction::mean),
    ce_case("cross_entropy/1d_none_smoothing", {9}, {0}, 1.0, -100, 0.2, Reduction::none),
    mse_case({3, 4, 2}, Reduction::none),
    mse_case({3, 4, 2}, Reduction::mean),
    mse_case({3, 4, 2}, Reduction::sum),
    bce_case({4, 5}, Reduction::none, 3.0),
    bce_case({4, 5}, Reduction::mean, 3.0),
    bce_case({4, 5}, Reduction::sum, 3.0),
});

// ---- golden from PyTorch -----------------------------------------------------------------------

TEST(CrossEntropyGolden, MatchesPyTorch) {
  std::ifstream f(std::string(LMF_FIXTURES_DIR) + "/loss_goldens.json");
  ASSERT_TRUE(f) << "missing " << LMF_FIXTURES_DIR
                 << "/loss_goldens.json; run python3 scripts/reference/gen_loss_goldens.py";
  const nlohmann::json j = nlohmann::json::parse(f);
  ASSERT_GE(j["cases"].size(), 5u);
  for (const auto& c : j["cases"]) {
    const std::string name = c["name"];
    const Shape shape = c["logits_shape"].get<Shape>();
    const auto logits = c["logits"].get<std::vector<float>>();
    const auto targets = c["targets"].get<std::vector<int64_t>>();
    const Shape t_shape = shape.size() == 2 ? Shape{shape[0]} : Shape{};
    for (const auto& r : c["results"]) {
      const std::string red = r["reduction"];
      const Reduction reduction = red == "none"   ? Reduction::none
                                  : red == "mean" ? Reduction::mean
                                                  : Reduction::sum;
      Tensor x = Tensor::from_vector(logits, shape).set_requires_grad(true);
      Tensor loss = cross_entropy(x, Tensor::from_vector(targets, t_shape), c["ignore_index"],
                                  c["label_smoothing"], reduction);
      const auto want = r["loss"].get<std::vector<double>>();
      const auto got = loss.to_vector<float>();
      ASSERT_EQ(got.size(), want.size()) << name << " " << red;
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], want[i], 1e-5 * std::max(1.0, std::abs(want[i])))
            << name << " " << red << " loss[" << i << "]";
      loss.backward(Tensor::from_vector(r["grad_out"].get<std::vector<float>>(), loss.shape()));
      const auto gwant = r["grad"].get<std::vector<double>>();
      const auto ggot = x.grad().to_vector<float>();
      ASSERT_EQ(ggot.size(), gwant.size());
      for (size_t i = 0; i < ggot.size(); ++i)
        EXPECT_NEAR(ggot[i], gwant[i], 1e-5) << name << " " << red << " grad[" << i << "]";
    }
  }
}

// ---- plain tests -------------------------------------------------------------------------------

Tensor targets(std::vector<int64_t> v) {
  const Shape s{static_cast<int64_t>(v.size())};
  return Tensor::from_vector(v, s);
}

TEST(CrossEntropy, AllIgnoredMeanIsNaNWithZeroGradient) {
  Tensor x = randn({3, 4}).set_requires_grad(true);
  Tensor t = targets({-100, -100, -100});
  Tensor loss = cross_entropy(x, t);
  EXPECT_TRUE(std::isnan(loss.item()));
  loss.backward();
  for (float g : x.grad().to_vector<float>()) EXPECT_EQ(g, 0.0f);
  EXPECT_EQ(cross_entropy(x, t, -100, 0.0, Reduction::sum).item(), 0.0);
  EXPECT_TRUE(std::isnan(cross_entropy(x, t, -100, 0.1, Reduction::mean).item()));
}

TEST(CrossEntropy, HugeLogitsStayFinite) {
  Tensor x = Tensor::from_vector<float>({1e4f, -1e4f, 0.0f, 3e4f, 3e4f, -3e4f}, {2, 3});
  Tensor l = cross_entropy(x, targets({0, 2}), -100, 0.0, Reduction::none);
  EXPECT_NEAR(l.at({0}), 0.0, 1e-6);
  EXPECT_NEAR(l.at({1}), 6e4 + std::log(2.0), 1.0);
  EXPECT_TRUE(std::isfinite(l.at({1})));
}

TEST(CrossEntropy, LargeBatchMatchesReference) {
  // Threaded rows, vocabulary-sized classes, smoothing and ignored rows together.
  Tensor x = randn({64, 1000}, 0.0, 3.0).set_requires_grad(true);
  Tensor t = randint({64}, 0, 1000);
  t.data<int64_t>()[5] = -100;
  Tensor loss = cross_entropy(x, t, -100, 0.1);
  const Ref want = ce_ref(to_ref(x.detach()), to_ref(t), -100, 0.1, Reduction::mean);
  EXPECT_NEAR(loss.item(), want[0], 1e-5 * std::max(1.0, std::abs(want[0])));
  loss.backward();
  Tensor g = x.grad();
  EXPECT_EQ(g.at({5, 17}), 0.0);
  // Each valid row's gradient sums to zero (softmax minus a distribution).
  double row = 0;
  for (int64_t j = 0; j < 1000; ++j) row += g.at({7, j});
  EXPECT_NEAR(row, 0.0, 1e-6);
}

TEST(CrossEntropy, BadInputsThrow) {
  Tensor x = randn({3, 4});
  EXPECT_THROW(cross_entropy(x, targets({0, 1})), ShapeError);
  EXPECT_THROW(cross_entropy(randn({2, 3, 4}), targets({0, 1})), ShapeError);
  EXPECT_THROW(cross_entropy(randn({4}), targets({1})), ShapeError);
  EXPECT_THROW(cross_entropy(x, Tensor::from_vector<float>({0, 1, 2}, {3})), DTypeError);
  EXPECT_THROW(cross_entropy(targets({0, 1, 2}).view({3, 1}), targets({0, 0, 0})), DTypeError);
  EXPECT_THROW(cross_entropy(x, targets({0, 4, 1})), IndexError);
  EXPECT_THROW(cross_entropy(x, targets({0, -1, 1})), IndexError);
  EXPECT_THROW(cross_entropy(x, targets({0, 1, 1}), -100, 1.5), ValueError);
  EXPECT_THROW(cross_entropy(x, targets({0, 1, 1}), -100, -0.1), ValueError);
  EXPECT_NO_THROW(cross_entropy(x, targets({0, 9, 1}), 9));  // ignore_index may be any value
  try {
    cross_entropy(x, targets({0, 1, 11}));
    FAIL() << "no throw";
  } catch (const IndexError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cross_entropy"), std::string::npos) << m;
    EXPECT_NE(m.find("11"), std::string::npos) << m;
  }
}

TEST(MseLoss, BadInputsThrow) {
  EXPECT_THROW(mse_loss(randn({2, 3}), randn({3, 2})), ShapeError);
  EXPECT_THROW(mse_loss(randn({2, 3}), randn({2, 3}).to(DType::bf16)), DTypeError);
  EXPECT_THROW(mse_loss(targets({1, 2}), targets({1, 2})), DTypeError);
  EXPECT_TRUE(std::isnan(mse_loss(randn({0}), randn({0})).item()));
}

TEST(BceWithLogits, StableForHugeLogitsAndBadInputsThrow) {
  Tensor x = Tensor::from_vector<float>({200.0f, -200.0f}, {2});
  Tensor y = Tensor::from_vector<float>({0.0f, 0.0f}, {2});
  Tensor l = binary_cross_entropy_with_logits(x, y, Reduction::none);
  EXPECT_NEAR(l.at({0}), 200.0, 1e-4);
  EXPECT_NEAR(l.at({1}), 0.0, 1e-6);
  EXPECT_THROW(binary_cross_entropy_with_logits(randn({2, 3}), rand({2, 1})), ShapeError);
  EXPECT_THROW(binary_cross_entropy_with_logits(randn({2}), targets({0, 1})), DTypeError);
  EXPECT_THROW(binary_cross_entropy_with_logits(targets({0, 1}), targets({0, 1})), DTypeError);
}

TEST(BceWithLogits, TargetGradientOnlyWhenRequested) {
  Tensor x = randn({3}).set_requires_grad(true);
  Tensor y = rand({3});
  binary_cross_entropy_with_logits(x, y, Reduction::sum).backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(y.grad().defined());
}

}  // namespace
}  // namespace lmf::test
