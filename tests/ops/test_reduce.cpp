// Reductions: op-table cases for sum / mean / max / argmax over single, multiple and negative
// dims with and without keepdim, plus bad input.
#include <gtest/gtest.h>

#include <algorithm>

#include "ops/op_harness.h"

namespace lmf::test {
namespace {

// Reference reduction of `a` over `dims` (normalised, any order) with f(acc, v) and an initial
// value; `finish(acc, count)` maps the accumulator to the result.
Ref reduce_ref(const Ref& a, std::vector<int64_t> dims, bool keepdim,
               const std::function<double(double, double)>& f, double init,
               const std::function<double(double, int64_t)>& finish) {
  const int64_t rank = static_cast<int64_t>(a.shape.size());
  if (dims.empty())
    for (int64_t d = 0; d < rank; ++d) dims.push_back(d);
  for (auto& d : dims) d = d < 0 ? d + rank : d;
  auto reduced = [&](int64_t d) { return std::find(dims.begin(), dims.end(), d) != dims.end(); };
  Shape out_shape, keep_shape;
  int64_t count = 1;
  for (int64_t d = 0; d < rank; ++d) {
    keep_shape.push_back(reduced(d) ? 1 : a.shape[d]);
    if (!reduced(d))
      out_shape.push_back(a.shape[d]);
    else if (keepdim)
      out_shape.push_back(1);
    if (reduced(d)) count *= a.shape[d];
  }
  Ref acc(keep_shape, init);
  for (int64_t i = 0; i < a.numel(); ++i) {
    int64_t rem = i, o = 0, stride = 1;
    for (int64_t d = rank - 1; d >= 0; --d) {
      const int64_t idx = rem % a.shape[d];
      rem /= a.shape[d];
      if (!reduced(d)) o += idx * stride;
      stride *= keep_shape[d];
    }
    acc[o] = f(acc[o], a[i]);
  }
  Ref r(out_shape);
  for (int64_t i = 0; i < r.numel(); ++i) r[i] = finish(acc[i], count);
  return r;
}

OpCase sum_case(const std::string& name, Shape s, std::vector<int64_t> dims, bool keepdim,
                bool mean_op) {
  OpCase c;
  c.name = name;
  c.dtypes = {DType::f32, DType::bf16};
  c.inputs = [=] { return std::vector<Tensor>{randn(s)}; };
  c.op = [=](const std::vector<Tensor>& in) {
    if (dims.empty() && !keepdim) return mean_op ? mean(in[0]) : sum(in[0]);
    return mean_op ? mean(in[0], dims, keepdim) : sum(in[0], dims, keepdim);
  };
  c.reference = [=](const std::vector<Ref>& in) {
    return reduce_ref(
        in[0], dims, keepdim, [](double a, double v) { return a + v; }, 0.0,
        [mean_op](double a, int64_t n) { return mean_op ? a / n : a; });
  };
  c.grad_inputs = {0};
  return c;
}

// Index of the maximum along dim d, as a reference (first maximum).
Ref argmax_ref(const Ref& a, int64_t dim, bool keepdim, bool values) {
  const int64_t rank = static_cast<int64_t>(a.shape.size());
  const int64_t d = dim < 0 ? dim + rank : dim;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= a.shape[i];
  for (int64_t i = d + 1; i < rank; ++i) inner *= a.shape[i];
  const int64_t red = a.shape[d];
  Shape out;
  for (int64_t i = 0; i < rank; ++i)
    if (i != d)
      out.push_back(a.shape[i]);
    else if (keepdim)
      out.push_back(1);
  Ref r(out);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t best = 0;
      for (int64_t k = 1; k < red; ++k)
        if (a[(o * red + k) * inner + i] > a[(o * red + best) * inner + i]) best = k;
      r[o * inner + i] = values ? a[(o * red + best) * inner + i] : static_cast<double>(best);
    }
  return r;
}

OpCase max_case(const std::string& name, Shape s, int64_t dim, bool keepdim, bool arg) {
  OpCase c;
  c.name = name;
  c.dtypes = arg ? std::vector<DType>{DType::f32} : std::vector<DType>{DType::f32, DType::bf16};
  c.inputs = [=] { return std::vector<Tensor>{randn(s)}; };
  c.op = [=](const std::vector<Tensor>& in) {
    return arg ? argmax(in[0], dim, keepdim) : max(in[0], dim, keepdim);
  };
  c.reference = [=](const std::vector<Ref>& in) { return argmax_ref(in[0], dim, keepdim, !arg); };
  if (!arg) c.grad_inputs = {0};
  return c;
}

LMF_REGISTER_OP_CASES({
    sum_case("sum/all", {3, 4, 5}, {}, false, false),
    sum_case("sum/all_large", {300, 700}, {}, false, false),
    sum_case("sum/dim1", {3, 4, 5}, {1}, false, false),
    sum_case("sum/last_keepdim", {3, 4, 5}, {-1}, true, false),
    sum_case("sum/first", {6, 5}, {0}, false, false),
    sum_case("sum/multi", {2, 3, 4, 5}, {0, 2}, false, false),
    sum_case("sum/multi_neg_keepdim", {2, 3, 4, 5}, {-1, 1}, true, false),
    sum_case("sum/adjacent", {2, 3, 4, 5}, {1, 2}, false, false),
    sum_case("sum/rows_large", {64, 1000}, {-1}, false, false),
    sum_case("sum/cols_large", {1000, 70}, {0}, true, false),
    sum_case("sum/size_one_dim", {3, 1, 4}, {1}, false, false),
    sum_case("mean/all", {3, 4, 5}, {}, false, true),
    sum_case("mean/last", {3, 4, 5}, {-1}, false, true),
    sum_case("mean/multi_keepdim", {2, 3, 4, 5}, {0, 3}, true, true),
    max_case("max/dim1", {3, 4, 5}, 1, false, false),
    max_case("max/last_keepdim", {3, 4, 5}, -1, true, false),
    max_case("max/first", {6, 5}, 0, false, false),
    max_case("argmax/last", {3, 4, 5}, -1, false, true),
    max_case("argmax/dim0_keepdim", {7, 4}, 0, true, true),
});

}  // namespace

TEST(Reduce, DimOutOfRangeThrowsIndexError) {
  Tensor x = randn({2, 3});
  EXPECT_THROW(sum(x, {2}), IndexError);
  EXPECT_THROW(mean(x, {-3}), IndexError);
  EXPECT_THROW(max(x, 5), IndexError);
  EXPECT_THROW(argmax(x, -4), IndexError);
  try {
    sum(x, {7});
    ADD_FAILURE() << "no exception";
  } catch (const IndexError& e) {
    EXPECT_NE(std::string(e.what()).find("sum"), std::string::npos) << e.what();
  }
}

TEST(Reduce, RepeatedDimThrows) {
  EXPECT_THROW(sum(randn({2, 3}), {1, -1}), IndexError);
}

TEST(Reduce, IntegerSumThrowsDTypeError) {
  EXPECT_THROW(sum(Tensor::arange(5)), DTypeError);
  EXPECT_THROW(mean(Tensor::arange(5), {0}), DTypeError);
}

TEST(Reduce, ArgmaxIsI64FirstMaximumAndNotDifferentiable) {
  Tensor x = Tensor::from_vector<float>({1, 5, 5, 2, 9, 0}, {2, 3}).set_requires_grad(true);
  Tensor i = argmax(x, 1);
  EXPECT_EQ(i.dtype(), DType::i64);
  EXPECT_FALSE(i.requires_grad());
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(argmax(Tensor::arange(6).reshape({2, 3}), 0).to_vector<int64_t>(),
            (std::vector<int64_t>{1, 1, 1}));
}

TEST(Reduce, MaxGradientGoesToTheArgmax) {
  Tensor x = Tensor::from_vector<float>({1, 7, 3, 8, 2, 4}, {2, 3}).set_requires_grad(true);
  sum(max(x, 1)).backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{0, 1, 0, 1, 0, 0}));
}

TEST(Reduce, SumOfManyF32ValuesIsAccurate) {
  // 1e6 copies of 0.1f: naive f32 accumulation drifts by ~1e-3 relative; double does not.
  Tensor x = Tensor::full({1000, 1000}, 0.1);
  const double want = 1e6 * static_cast<double>(0.1f);
  EXPECT_NEAR(sum(x).item(), want, want * 1e-7);
  EXPECT_NEAR(mean(x, {0, 1}).item(), 0.1f, 1e-8);
}

}  // namespace lmf::test
