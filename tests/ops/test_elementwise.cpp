// Elementwise ops: op-table cases (broadcasting, scalar, unary math; f32 and bf16) and bad input.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/op_harness.h"

namespace lmf::test {
namespace {

using Fn2 = double (*)(double, double);
using Fn1 = std::function<double(double)>;

// numpy broadcasting of two float64 references.
Ref broadcast2(const Ref& a, const Ref& b, Fn2 f) {
  const Shape out = broadcast_shapes(a.shape, b.shape, "reference");
  Ref r(out);
  const int64_t rank = static_cast<int64_t>(out.size());
  for (int64_t i = 0; i < r.numel(); ++i) {
    int64_t rem = i, ia = 0, ib = 0, sa = 1, sb = 1;
    for (int64_t d = rank - 1; d >= 0; --d) {
      const int64_t idx = rem % out[d];
      rem /= out[d];
      const int64_t da = d - (rank - static_cast<int64_t>(a.shape.size()));
      const int64_t db = d - (rank - static_cast<int64_t>(b.shape.size()));
      if (da >= 0) {
        if (a.shape[da] != 1) ia += idx * sa;
        sa *= a.shape[da];
      }
      if (db >= 0) {
        if (b.shape[db] != 1) ib += idx * sb;
        sb *= b.shape[db];
      }
    }
    r[i] = f(a[ia], b[ib]);
  }
  return r;
}

Ref map1(const Ref& a, const Fn1& f) {
  Ref r(a.shape);
  for (int64_t i = 0; i < a.numel(); ++i) r[i] = f(a[i]);
  return r;
}

double radd(double a, double b) {
  return a + b;
}
double rsub(double a, double b) {
  return a - b;
}
double rmul(double a, double b) {
  return a * b;
}
double rdiv(double a, double b) {
  return a / b;
}

// Normal values pushed at least 0.1 away from zero (kinks of relu, poles of div).
Tensor away_from_zero(const Shape& s) {
  std::vector<float> v = randn(s).to_vector<float>();
  for (float& x : v) x += x < 0 ? -0.1f : 0.1f;
  return Tensor::from_vector(v, s);
}
Tensor positive(const Shape& s) {
  return rand(s, 0.5, 2.0);
}

const std::vector<DType> kBoth{DType::f32, DType::bf16};

OpCase binary_case(const std::string& name, Fn2 ref, std::function<Tensor(Tensor, Tensor)> op,
                   Shape sa, Shape sb, bool b_nonzero = false, bool transpose_a = false) {
  OpCase c;
  c.name = name;
  c.dtypes = kBoth;
  c.inputs = [=] {
    Tensor a = randn(sa);
    if (transpose_a) a = a.transpose(0, 1);  // a non-contiguous view (strided path)
    return std::vector<Tensor>{a, b_nonzero ? away_from_zero(sb) : randn(sb)};
  };
  c.op = [op](const std::vector<Tensor>& in) { return op(in[0], in[1]); };
  c.reference = [ref](const std::vector<Ref>& in) { return broadcast2(in[0], in[1], ref); };
  c.grad_inputs = {0, 1};
  return c;
}

OpCase unary_case(const std::string& name, Fn1 ref, std::function<Tensor(Tensor)> op,
                  std::function<Tensor(const Shape&)> gen, Shape s = {3, 5, 7}) {
  OpCase c;
  c.name = name;
  c.dtypes = kBoth;
  c.inputs = [=] { return std::vector<Tensor>{gen(s)}; };
  c.op = [op](const std::vector<Tensor>& in) { return op(in[0]); };
  c.reference = [ref](const std::vector<Ref>& in) { return map1(in[0], ref); };
  c.grad_inputs = {0};
  return c;
}

Tensor normal(const Shape& s) {
  return randn(s);
}

double gelu_erf_ref(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}
double gelu_tanh_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
double sigmoid_ref(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

auto op_add = [](Tensor a, Tensor b) { return add(a, b); };
auto op_sub = [](Tensor a, Tensor b) { return sub(a, b); };
auto op_mul = [](Tensor a, Tensor b) { return a * b; };
auto op_div = [](Tensor a, Tensor b) { return a / b; };

LMF_REGISTER_OP_CASES({
    binary_case("add/same", radd, op_add, {3, 4}, {3, 4}),
    binary_case("add/row", radd, op_add, {2, 3, 4}, {4}),
    binary_case("add/row_left", radd, op_add, {4}, {2, 3, 4}),
    binary_case("add/bcast_both", radd, op_add, {2, 1, 4}, {3, 1}),
    binary_case("add/middle", radd, op_add, {2, 3, 4}, {3, 1}),
    binary_case("add/scalar_tensor", radd, op_add, {2, 3}, {}),
    binary_case("add/scalar_tensor_left", radd, op_add, {}, {2, 3}),
    binary_case("add/transposed", radd, op_add, {4, 3}, {3, 4}, false, true),
    binary_case("add/row_large", radd, op_add, {256, 300}, {300}),
    binary_case("add/same_large", radd, op_add, {200, 201}, {200, 201}),
    binary_case("add/bcast_large", radd, op_add, {64, 1, 700}, {5, 1}),
    binary_case("sub/same", rsub, op_sub, {3, 4}, {3, 4}),
    binary_case("sub/row", rsub, op_sub, {2, 3, 4}, {4}),
    binary_case("sub/row_left", rsub, op_sub, {4}, {2, 3, 4}),
    binary_case("sub/bcast_both", rsub, op_sub, {2, 1, 4}, {3, 1}),
    binary_case("mul/same", rmul, op_mul, {3, 4}, {3, 4}),
    binary_case("mul/row", rmul, op_mul, {2, 3, 4}, {4}),
    binary_case("mul/bcast_both", rmul, op_mul, {2, 1, 4}, {3, 1}),
    binary_case("mul/scalar_tensor", rmul, op_mul, {2, 3}, {1}),
    binary_case("mul/transposed", rmul, op_mul, {4, 3}, {4}, false, true),
    binary_case("div/same", rdiv, op_div, {3, 4}, {3, 4}, true),
    binary_case("div/row", rdiv, op_div, {2, 3, 4}, {4}, true),
    binary_case("div/bcast_both", rdiv, op_div, {2, 1, 4}, {3, 1}, true),
    binary_case("div/scalar_tensor", rdiv, op_div, {2, 3}, {}, true),
    unary_case(
        "add_scalar", [](double x) { return x + 1.5; }, [](Tensor a) { return add(a, 1.5); },
        normal),
    unary_case(
        "sub_scalar", [](double x) { return x - 0.25; }, [](Tensor a) { return a - 0.25; }, normal),
    unary_case(
        "mul_scalar", [](double x) { return x * -3.0; }, [](Tensor a) { return mul(a, -3.0); },
        normal),
    unary_case(
        "div_scalar", [](double x) { return x / 4.0; }, [](Tensor a) { return a / 4.0; }, normal),
    unary_case(
        "neg", [](double x) { return -x; }, [](Tensor a) { return -a; }, normal),
    unary_case(
        "exp", [](double x) { return std::exp(x); }, [](Tensor a) { return exp(a); }, normal),
    unary_case(
        "exp/large", [](double x) { return std::exp(x); }, [](Tensor a) { return exp(a); }, normal,
        {300, 200}),
    unary_case(
        "log", [](double x) { return std::log(x); }, [](Tensor a) { return log(a); }, positive),
    unary_case(
        "sqrt", [](double x) { return std::sqrt(x); }, [](Tensor a) { return sqrt(a); }, positive),
    unary_case(
        "pow/square", [](double x) { return x * x; }, [](Tensor a) { return pow(a, 2.0); }, normal),
    unary_case(
        "pow/cube", [](double x) { return x * x * x; }, [](Tensor a) { return pow(a, 3.0); },
        normal),
    unary_case(
        "pow/fractional", [](double x) { return std::pow(x, -1.5); },
        [](Tensor a) { return pow(a, -1.5); }, positive),
    unary_case(
        "relu", [](double x) { return x > 0 ? x : 0.0; }, [](Tensor a) { return relu(a); },
        away_from_zero),
    unary_case(
        "gelu", gelu_erf_ref, [](Tensor a) { return gelu(a); }, normal),
    unary_case(
        "gelu/wide", gelu_erf_ref, [](Tensor a) { return gelu(a); },
        [](const Shape& s) { return randn(s, 0.0, 4.0); }, {300, 200}),
    unary_case(
        "gelu_tanh", gelu_tanh_ref, [](Tensor a) { return gelu(a, true); }, normal),
    unary_case(
        "silu", [](double x) { return x * sigmoid_ref(x); }, [](Tensor a) { return silu(a); },
        normal),
    unary_case(
        "tanh", [](double x) { return std::tanh(x); }, [](Tensor a) { return tanh(a); },
        [](const Shape& s) { return randn(s, 0.0, 2.0); }),
    unary_case(
        "sigmoid", sigmoid_ref, [](Tensor a) { return sigmoid(a); },
        [](const Shape& s) { return randn(s, 0.0, 3.0); }),
    unary_case(
        "exp/transposed", [](double x) { return std::exp(x); }, [](Tensor a) { return exp(a); },
        [](const Shape& s) { return randn(s).transpose(0, 2); }),
});

}  // namespace

// Expects `fn` to throw E with a message containing every one of `parts`.
template <class E, class Fn>
void expect_throw_with(Fn fn, std::initializer_list<const char*> parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception thrown";
  } catch (const E& e) {
    for (const char* p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(Elementwise, IncompatibleBroadcastThrowsShapeError) {
  expect_throw_with<ShapeError>([] { add(randn({2, 3}), randn({4})); }, {"add", "[2, 3]", "[4]"});
  expect_throw_with<ShapeError>([] { mul(randn({2, 3, 4}), randn({3, 3})); }, {"mul"});
  EXPECT_THROW(div(randn({5}), randn({2, 4})), ShapeError);
}

TEST(Elementwise, IntegerInputsThrowDTypeError) {
  expect_throw_with<DTypeError>([] { exp(Tensor::arange(4)); }, {"exp", "i64"});
  expect_throw_with<DTypeError>([] { add(Tensor::arange(4), randn({4})); }, {"add", "i64"});
  EXPECT_THROW(gelu(Tensor::zeros({3}, DType::i32)), DTypeError);
  EXPECT_THROW(mul(Tensor::arange(3), 2.0), DTypeError);
}

TEST(Elementwise, GeluMatchesHuggingFaceFormulas) {
  Tensor x = Tensor::from_vector<float>({-3.f, -1.f, -0.1f, 0.f, 0.3f, 1.f, 2.5f, 6.f}, {8});
  std::vector<float> e = gelu(x).to_vector<float>(), t = gelu(x, true).to_vector<float>();
  std::vector<float> xs = x.to_vector<float>();
  for (size_t i = 0; i < xs.size(); ++i) {
    const double v = xs[i];
    EXPECT_NEAR(e[i], 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))), 1e-6) << v;
    EXPECT_NEAR(t[i], 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))),
                1e-6)
        << v;
  }
  EXPECT_NEAR(gelu(Tensor::scalar(1.0)).item(), 0.8413447460685429, 1e-6);
  EXPECT_NEAR(gelu(Tensor::scalar(1.0), true).item(), 0.8411919906082768, 1e-6);
}

TEST(Elementwise, ActivationDispatchesToEachFunction) {
  Tensor x = randn({4, 6});
  auto same = [](const Tensor& a, const Tensor& b) {
    return a.to_vector<float>() == b.to_vector<float>();
  };
  EXPECT_TRUE(same(activation(x, Activation::none), x));
  EXPECT_TRUE(same(activation(x, Activation::relu), relu(x)));
  EXPECT_TRUE(same(activation(x, Activation::gelu), gelu(x)));
  EXPECT_TRUE(same(activation(x, Activation::gelu_tanh), gelu(x, true)));
  EXPECT_TRUE(same(activation(x, Activation::silu), silu(x)));
  EXPECT_TRUE(same(activation(x, Activation::tanh), tanh(x)));
  EXPECT_FALSE(same(gelu(x), gelu(x, true)));
}

TEST(Elementwise, DivisionByZeroFollowsIeee) {
  Tensor a = Tensor::from_vector<float>({1.f, -1.f, 0.f}, {3});
  std::vector<float> r = div(a, Tensor::zeros({3})).to_vector<float>();
  EXPECT_TRUE(std::isinf(r[0]) && r[0] > 0);
  EXPECT_TRUE(std::isinf(r[1]) && r[1] < 0);
  EXPECT_TRUE(std::isnan(r[2]));
  EXPECT_EQ(exp(Tensor::from_vector<float>({-INFINITY}, {1})).item(), 0.0);
}

TEST(Elementwise, MixedBf16AndF32PromotesToF32) {
  Tensor a = randn({2, 3}), b = randn({3}).to(DType::bf16);
  Tensor c = add(a, b);
  EXPECT_EQ(c.dtype(), DType::f32);
  EXPECT_EQ(add(a.to(DType::bf16), b).dtype(), DType::bf16);
  EXPECT_NEAR(c.at({1, 2}), a.at({1, 2}) + b.at({2}), 1e-6);
}

TEST(Elementwise, BroadcastGradientsHaveInputShapes) {
  Tensor a = randn({2, 1, 4}).set_requires_grad(true);
  Tensor b = randn({3, 1}).set_requires_grad(true);
  sum(mul(a, b)).backward();
  ASSERT_EQ(a.grad().shape(), (Shape{2, 1, 4}));
  ASSERT_EQ(b.grad().shape(), (Shape{3, 1}));
  // d/da sum_j a*b_j = sum_j b_j ; d/db sum a*b = sum of a over the broadcast positions.
  double sb = 0, sa = 0;
  for (int j = 0; j < 3; ++j) sb += b.at({j, 0});
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) sa += a.at({i, 0, k});
  EXPECT_NEAR(a.grad().at({1, 0, 2}), sb, 1e-5);
  EXPECT_NEAR(b.grad().at({2, 0}), sa, 1e-5);
}

}  // namespace lmf::test
