// layer_norm and rms_norm: op-table cases (affine / not, f32 / bf16) and bad input.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/op_harness.h"

namespace lmf::test {
namespace {

// Layer norm over the last dim; w / b may be empty Refs.
Ref layer_norm_ref(const Ref& x, const Ref* w, const Ref* b, double eps) {
  const int64_t h = x.shape.back(), rows = x.numel() / h;
  Ref y(x.shape);
  for (int64_t r = 0; r < rows; ++r) {
    double m = 0, v = 0;
    for (int64_t c = 0; c < h; ++c) m += x[r * h + c];
    m /= h;
    for (int64_t c = 0; c < h; ++c) v += (x[r * h + c] - m) * (x[r * h + c] - m);
    v /= h;
    for (int64_t c = 0; c < h; ++c) {
      double o = (x[r * h + c] - m) / std::sqrt(v + eps);
      if (w) o *= (*w)[c];
      if (b) o += (*b)[c];
      y[r * h + c] = o;
    }
  }
  return y;
}

Ref rms_norm_ref(const Ref& x, const Ref* w, double eps) {
  const int64_t h = x.shape.back(), rows = x.numel() / h;
  Ref y(x.shape);
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0;
    for (int64_t c = 0; c < h; ++c) ms += x[r * h + c] * x[r * h + c];
    ms /= h;
    for (int64_t c = 0; c < h; ++c)
      y[r * h + c] = x[r * h + c] / std::sqrt(ms + eps) * (w ? (*w)[c] : 1.0);
  }
  return y;
}

// inputs: x, then weight (when has_w), then bias (when has_b).
OpCase ln_case(const std::string& name, Shape s, bool has_w, bool has_b, double eps = 1e-5) {
  OpCase c;
  c.name = name;
  c.dtypes = {DType::f32, DType::bf16};
  const int64_t h = s.back();
  c.inputs = [=] {
    std::vector<Tensor> in{randn(s, 0.5, 2.0)};
    if (has_w) in.push_back(randn({h}, 1.0, 0.5));
    if (has_b) in.push_back(randn({h}));
    return in;
  };
  c.op = [=](const std::vector<Tensor>& in) {
    return layer_norm(in[0], has_w ? in[1] : Tensor(), has_b ? in[has_w ? 2 : 1] : Tensor(), eps);
  };
  c.reference = [=](const std::vector<Ref>& in) {
    return layer_norm_ref(in[0], has_w ? &in[1] : nullptr, has_b ? &in[has_w ? 2 : 1] : nullptr,
                          eps);
  };
  for (int i = 0; i < 1 + has_w + has_b; ++i) c.grad_inputs.push_back(i);
  return c;
}

OpCase rms_case(const std::string& name, Shape s, bool has_w, double eps = 1e-6) {
  OpCase c;
  c.name = name;
  c.dtypes = {DType::f32, DType::bf16};
  const int64_t h = s.back();
  c.inputs = [=] {
    std::vector<Tensor> in{randn(s, 0.3, 1.5)};
    if (has_w) in.push_back(randn({h}, 1.0, 0.5));
    return in;
  };
  c.op = [=](const std::vector<Tensor>& in) {
    return rms_norm(in[0], has_w ? in[1] : Tensor(), eps);
  };
  c.reference = [=](const std::vector<Ref>& in) {
    return rms_norm_ref(in[0], has_w ? &in[1] : nullptr, eps);
  };
  for (int i = 0; i < 1 + has_w; ++i) c.grad_inputs.push_back(i);
  return c;
}

LMF_REGISTER_OP_CASES({
    ln_case("layer_norm/affine", {2, 3, 16}, true, true),
    ln_case("layer_norm/plain", {4, 37}, false, false),
    ln_case("layer_norm/weight_only", {5, 24}, true, false),
    ln_case("layer_norm/bias_only", {5, 24}, false, true),
    ln_case("layer_norm/large", {128, 768}, true, true, 1e-12),
    ln_case("layer_norm/vector", {19}, true, true),
    rms_case("rms_norm/weight", {2, 3, 16}, true),
    rms_case("rms_norm/plain", {4, 37}, false),
    rms_case("rms_norm/large", {96, 512}, true, 1e-5),
});

}  // namespace

// The fused residual form must equal layer_norm(add(x, r)) exactly where it runs (same
// arithmetic on the rounded sum), and fall back to it for gradients and broadcasting.
TEST(Norm, AddLayerNormEqualsLayerNormOfTheSum) {
  manual_seed(3);
  for (DType t : {DType::f32, DType::bf16}) {
    const Tensor x = randn({3, 5, 48}).to(t), r = randn({3, 5, 48}).to(t);
    const Tensor w = randn({48}).to(t), b = randn({48}).to(t);
    Tensor fused, want;
    {
      NoGradGuard no_grad;
      fused = add_layer_norm(x, r, w, b, 1e-12);
      want = layer_norm(add(x, r), w, b, 1e-12);
    }
    ASSERT_EQ(fused.shape(), want.shape());
    const std::vector<float> a = fused.to(DType::f32).to_vector<float>();
    const std::vector<float> e = want.to(DType::f32).to_vector<float>();
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], e[i]) << dtype_name(t) << " at " << i;
  }
  // Broadcast residual and autograd: the unfused path, gradients included.
  const Tensor x = randn({2, 4, 8}).set_requires_grad(true), r = randn({8});
  const Tensor y = add_layer_norm(x, r, Tensor::ones({8}), Tensor::zeros({8}));
  EXPECT_TRUE(y.requires_grad());
  sum(mul(y, y)).backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_THROW(add_layer_norm(randn({2, 8}), randn({2, 8}), randn({7}), Tensor()), ShapeError);
}

TEST(Norm, LayerNormWeightOfWrongSizeThrowsShapeError) {
  Tensor x = randn({2, 8});
  try {
    layer_norm(x, randn({7}), Tensor());
    ADD_FAILURE() << "no exception";
  } catch (const ShapeError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("layer_norm"), std::string::npos) << m;
    EXPECT_NE(m.find("[7]"), std::string::npos) << m;
  }
  EXPECT_THROW(layer_norm(x, Tensor(), randn({2, 8})), ShapeError);
  EXPECT_THROW(rms_norm(x, randn({16})), ShapeError);
}

TEST(Norm, IntegerInputThrowsDTypeError) {
  EXPECT_THROW(layer_norm(Tensor::arange(8).reshape({2, 4}), Tensor(), Tensor()), DTypeError);
  EXPECT_THROW(rms_norm(Tensor::arange(8).reshape({2, 4}), Tensor()), DTypeError);
}

TEST(Norm, LayerNormOutputHasZeroMeanUnitVariance) {
  Tensor y = layer_norm(randn({8, 300}, 100.0, 0.01), Tensor(), Tensor(), 0.0);
  for (int r = 0; r < 8; ++r) {
    double m = 0, v = 0;
    for (int c = 0; c < 300; ++c) m += y.at({r, c});
    m /= 300;
    for (int c = 0; c < 300; ++c) v += (y.at({r, c}) - m) * (y.at({r, c}) - m);
    EXPECT_NEAR(m, 0.0, 1e-4);
    EXPECT_NEAR(v / 300, 1.0, 1e-3);
  }
}

TEST(Norm, RmsNormBf16RoundsBeforeTheWeightLikeHf) {
  // HF LlamaRMSNorm: weight * (x * rsqrt(mean(x^2) + eps)).to(bf16)
  Tensor x = randn({3, 64}).to(DType::bf16), w = randn({64}).to(DType::bf16);
  Tensor y = rms_norm(x, w, 1e-6);
  ASSERT_EQ(y.dtype(), DType::bf16);
  for (int r = 0; r < 3; ++r) {
    double ms = 0;
    for (int c = 0; c < 64; ++c) ms += x.at({r, c}) * x.at({r, c});
    const float rs = static_cast<float>(1.0 / std::sqrt(ms / 64 + 1e-6));
    for (int c = 0; c < 64; ++c) {
      const float h = bf16_to_f32(f32_to_bf16(static_cast<float>(x.at({r, c})) * rs));
      const float want = bf16_to_f32(f32_to_bf16(static_cast<float>(w.at({c})) * h));
      EXPECT_NEAR(y.at({r, c}), want, std::abs(want) * 1e-2 + 1e-6);
    }
  }
}

}  // namespace lmf::test
