// softmax / log_softmax: op-table cases over the last and middle dims (f32, bf16), bad input.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/op_harness.h"

namespace lmf::test {
namespace {

Ref softmax_ref(const Ref& a, int64_t dim, bool log) {
  const int64_t rank = static_cast<int64_t>(a.shape.size());
  const int64_t d = dim < 0 ? dim + rank : dim;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= a.shape[i];
  for (int64_t i = d + 1; i < rank; ++i) inner *= a.shape[i];
  const int64_t red = a.shape[d];
  Ref r(a.shape);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t k) { return (o * red + k) * inner + i; };
      double m = -INFINITY, s = 0;
      for (int64_t k = 0; k < red; ++k) m = std::max(m, a[at(k)]);
      for (int64_t k = 0; k < red; ++k) s += std::exp(a[at(k)] - m);
      for (int64_t k = 0; k < red; ++k)
        r[at(k)] = log ? a[at(k)] - m - std::log(s) : std::exp(a[at(k)] - m) / s;
    }
  return r;
}

OpCase softmax_case(const std::string& name, Shape s, int64_t dim, bool log, double scale = 2.0) {
  OpCase c;
  c.name = name;
  c.dtypes = {DType::f32, DType::bf16};
  c.inputs = [=] { return std::vector<Tensor>{randn(s, 0.0, scale)}; };
  c.op = [=](const std::vector<Tensor>& in) {
    return log ? log_softmax(in[0], dim) : softmax(in[0], dim);
  };
  c.reference = [=](const std::vector<Ref>& in) { return softmax_ref(in[0], dim, log); };
  c.grad_inputs = {0};
  return c;
}

LMF_REGISTER_OP_CASES({
    softmax_case("softmax/last", {4, 7}, -1, false),
    softmax_case("softmax/last_long", {3, 203}, -1, false),
    softmax_case("softmax/attention_rows", {2, 3, 128, 128}, -1, false),
    softmax_case("softmax/middle", {3, 5, 4}, 1, false),
    softmax_case("softmax/first", {6, 5}, 0, false),
    softmax_case("softmax/middle_wide", {2, 9, 150}, 1, false),
    softmax_case("softmax/large_logits", {4, 33}, -1, false, 30.0),
    softmax_case("log_softmax/last", {4, 7}, -1, true),
    softmax_case("log_softmax/last_long", {3, 203}, -1, true),
    softmax_case("log_softmax/middle", {3, 5, 4}, 1, true),
    softmax_case("log_softmax/middle_wide", {2, 9, 150}, -2, true),
    softmax_case("log_softmax/large_logits", {4, 33}, -1, true, 30.0),
});

}  // namespace

TEST(Softmax, DimOutOfRangeThrowsIndexError) {
  EXPECT_THROW(softmax(randn({2, 3}), 2), IndexError);
  EXPECT_THROW(log_softmax(randn({2, 3}), -3), IndexError);
}

TEST(Softmax, IntegerInputThrowsDTypeError) {
  EXPECT_THROW(softmax(Tensor::arange(4)), DTypeError);
}

TEST(Softmax, MaskedEntriesGetZeroProbability) {
  Tensor x = Tensor::from_vector<float>({1.f, -INFINITY, 2.f, -INFINITY}, {1, 4});
  std::vector<float> p = softmax(x).to_vector<float>();
  EXPECT_EQ(p[1], 0.f);
  EXPECT_EQ(p[3], 0.f);
  EXPECT_NEAR(p[0] + p[2], 1.0, 1e-6);
  EXPECT_NEAR(p[2] / p[0], std::exp(1.0), 1e-5);
}

TEST(Softmax, RowsSumToOne) {
  Tensor p = softmax(randn({64, 512}, 0.0, 5.0));
  Tensor s = sum(p, {-1});
  for (float v : s.to_vector<float>()) EXPECT_NEAR(v, 1.0, 1e-5);
}

}  // namespace lmf::test
