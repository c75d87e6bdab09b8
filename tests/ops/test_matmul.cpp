// matmul and linear: op-table cases (float64 references, finite-difference gradients) for every
// layout variant, plus bad-input, fused-vs-unfused and cache tests.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cpu/gemm.h"
#include "ops/op_harness.h"
#include "activation_ref.h"

namespace lmf::test {
namespace {

// Element offset of batch entry `flat` (row-major over `batch`) in an operand whose batch dims
// `own` are right-aligned to `batch` and contiguous, each matrix `mat` elements long.
int64_t batch_offset(int64_t flat, const Shape& batch, const Shape& own, int64_t mat) {
  int64_t off = 0, scale = mat;
  for (size_t i = batch.size(); i-- > 0;) {
    const int64_t idx = flat % batch[i];
    flat /= batch[i];
    const int64_t j = static_cast<int64_t>(i) - static_cast<int64_t>(batch.size() - own.size());
    if (j < 0) continue;
    if (own[j] != 1) off += idx * scale;
    scale *= own[j];
  }
  return off;
}

// torch.matmul on float64 references, with optional transposes of the last two dims.
Ref ref_matmul(const Ref& a0, const Ref& b0, bool ta, bool tb) {
  Ref a = a0, b = b0;
  const bool av = a.shape.size() == 1, bv = b.shape.size() == 1;
  if (av) a.shape = {1, a.shape[0]}, ta = false;
  if (bv) b.shape = {b.shape[0], 1}, tb = false;
  const size_t ra = a.shape.size(), rb = b.shape.size();
  const int64_t m = ta ? a.shape[ra - 1] : a.shape[ra - 2];
  const int64_t k = ta ? a.shape[ra - 2] : a.shape[ra - 1];
  const int64_t n = tb ? b.shape[rb - 2] : b.shape[rb - 1];
  const Shape ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  const Shape batch = broadcast_shapes(ab, bb, "ref");
  Shape os = batch;
  os.push_back(m);
  os.push_back(n);
  Ref out(os);
  const int64_t count = shape_numel(batch);
  for (int64_t t = 0; t < count; ++t) {
    const int64_t ao = batch_offset(t, batch, ab, m * k), bo = batch_offset(t, batch, bb, k * n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) {
          const double x = a[ao + (ta ? p * m + i : i * k + p)];
          const double y = b[bo + (tb ? j * k + p : p * n + j)];
          s += x * y;
        }
        out[t * m * n + i * n + j] = s;
      }
  }
  Shape final_shape = batch;
  if (!av) final_shape.push_back(m);
  if (!bv) final_shape.push_back(n);
  out.shape = final_shape;
  return out;
}

Ref ref_linear(const std::vector<Ref>& in, Activation act) {
  const Ref& x = in[0];
  const Ref& w = in[1];
  const int64_t out_f = w.shape[0], k = w.shape[1], rows = x.numel() / k;
  Shape os = x.shape;
  os.back() = out_f;
  Ref out(os);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out_f; ++o) {
      double s = in.size() > 2 ? in[2][o] : 0.0;
      for (int64_t p = 0; p < k; ++p) s += x[r * k + p] * w[o * k + p];
      out[r * out_f + o] = lmf::test::activation_ref(act, s);
    }
  return out;
}

const std::vector<DType> kBoth{DType::f32, DType::bf16};
constexpr double kTol = 2e-5;      // f32 against float64, K <= 16
constexpr double kBf16Tol = 6e-3;  // one bf16 rounding of the output (2^-9 relative) plus slack

OpCase mm_case(std::string name, Shape sa, Shape sb, bool ta = false, bool tb = false) {
  OpCase c;
  c.name = "matmul/" + name;
  c.dtypes = kBoth;
  c.inputs = [sa, sb] { return std::vector<Tensor>{randn(sa), randn(sb)}; };
  c.op = [ta, tb](const std::vector<Tensor>& x) { return matmul(x[0], x[1], ta, tb); };
  c.reference = [ta, tb](const std::vector<Ref>& r) { return ref_matmul(r[0], r[1], ta, tb); };
  c.grad_inputs = {0, 1};
  c.tol = kTol;
  c.bf16_tol = kBf16Tol;
  return c;
}

// A case whose inputs are strided views, built by `make` from fresh random tensors.
OpCase mm_view_case(std::string name, std::function<std::vector<Tensor>()> make, bool ta = false,
                    bool tb = false) {
  OpCase c = mm_case(std::move(name), {1, 1}, {1, 1}, ta, tb);
  c.inputs = std::move(make);
  return c;
}

OpCase linear_case(std::string name, Shape sx, int64_t out_f, bool bias, Activation act) {
  OpCase c;
  c.name = "linear/" + name;
  c.dtypes = kBoth;
  c.inputs = [sx, out_f, bias] {
    std::vector<Tensor> v{randn(sx), randn({out_f, sx.back()}, 0.0, 0.5)};
    if (bias) v.push_back(randn({out_f}));
    return v;
  };
  c.op = [act](const std::vector<Tensor>& x) {
    return linear(x[0], x[1], x.size() > 2 ? x[2] : Tensor(), act);
  };
  c.reference = [act](const std::vector<Ref>& r) { return ref_linear(r, act); };
  c.grad_inputs = bias ? std::vector<int>{0, 1, 2} : std::vector<int>{0, 1};
  c.tol = kTol;
  c.bf16_tol = kBf16Tol;
  return c;
}

LMF_REGISTER_OP_CASES({
    mm_case("2d", {5, 7}, {7, 3}),
    mm_case("batched", {3, 4, 6}, {3, 6, 5}),
    mm_case("broadcast_batch", {2, 1, 4, 6}, {3, 6, 5}),
    mm_case("batched_times_2d", {2, 3, 4, 6}, {6, 5}),
    mm_case("2d_times_batched", {4, 6}, {3, 6, 5}),
    mm_case("vec_times_mat", {6}, {6, 5}),
    mm_case("mat_times_vec", {4, 6}, {6}),
    mm_case("vec_times_vec", {6}, {6}),
    mm_case("vec_times_batched", {6}, {3, 6, 5}),
    mm_case("batched_times_vec", {2, 4, 6}, {6}),
    mm_case("trans_a", {6, 4}, {6, 5}, true, false),
    mm_case("trans_b", {4, 6}, {5, 6}, false, true),
    mm_case("trans_both", {6, 4}, {5, 6}, true, true),
    mm_case("batched_trans_a_2d_trans_b", {3, 6, 4}, {5, 6}, true, true),
    mm_case("batched_times_2d_trans_b", {2, 4, 6}, {5, 6}, false, true),
    mm_case("broadcast_trans_both", {3, 1, 6, 4}, {2, 5, 6}, true, true),
    mm_view_case("transposed_view",
                 [] {
                   return std::vector<Tensor>{randn({7, 5}).transpose(0, 1), randn({7, 3})};
                 }),
    mm_view_case(
        "transposed_view_trans_a",
        [] {
          return std::vector<Tensor>{randn({7, 5}).transpose(0, 1), randn({5, 3})};
        },
        true, false),
    mm_view_case("permuted_heads",
                 [] {
                   return std::vector<Tensor>{randn({2, 5, 3, 4}).permute({0, 2, 1, 3}),
                                              randn({2, 5, 3, 4}).permute({0, 2, 3, 1})};
                 }),
    mm_view_case("strided_columns",
                 [] {
                   return std::vector<Tensor>{randn({4, 6, 2}).select(2, 1),
                                              randn({3, 6, 5}).narrow(2, 1, 3)};
                 }),
    mm_view_case("expanded_batch",
                 [] {
                   return std::vector<Tensor>{randn({1, 4, 6}).expand({3, 4, 6}), randn({3, 6, 5})};
                 }),
    linear_case("2d_bias", {6, 8}, 5, true, Activation::none),
    linear_case("3d_bias", {2, 3, 8}, 5, true, Activation::none),
    linear_case("no_bias", {2, 3, 8}, 5, false, Activation::none),
    linear_case("vector_input", {8}, 5, true, Activation::none),
    linear_case("relu", {2, 3, 8}, 5, true, Activation::relu),
    linear_case("gelu_erf", {2, 3, 8}, 5, true, Activation::gelu),
    linear_case("gelu_tanh", {2, 3, 8}, 5, true, Activation::gelu_tanh),
    linear_case("silu", {2, 3, 8}, 5, true, Activation::silu),
    linear_case("tanh", {2, 3, 8}, 5, true, Activation::tanh),
    linear_case("gelu_no_bias", {4, 8}, 5, false, Activation::gelu),
});

template <class E, class Fn>
void expect_error(Fn&& fn, std::vector<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg << " lacks " << p;
  }
}

TEST(MatmulErrors, InnerDimMismatchNamesOpAndShapes) {
  expect_error<ShapeError>(
      [] {
        matmul(randn({2, 3}), randn({4, 5}));
      },
      {"matmul", "[2, 3]", "[4, 5]"});
  expect_error<ShapeError>(
      [] {
        matmul(randn({2, 3}), randn({2, 5}), false, true);
      },
      {"matmul", "[2, 3]", "[2, 5]"});
}

TEST(MatmulErrors, BatchDimsThatDoNotBroadcast) {
  expect_error<ShapeError>(
      [] {
        matmul(randn({2, 3, 4}), randn({3, 4, 5}));
      },
      {"matmul", "[2, 3, 4]", "[3, 4, 5]"});
}

TEST(MatmulErrors, ScalarOperand) {
  expect_error<ShapeError>([] { matmul(Tensor::scalar(2.0), randn({3})); }, {"matmul"});
}

TEST(MatmulErrors, MixedAndIntegerDtypes) {
  expect_error<DTypeError>(
      [] {
        matmul(randn({2, 3}), randn({3, 2}).to(DType::bf16));
      },
      {"matmul", "f32[2, 3]", "bf16[3, 2]"});
  expect_error<DTypeError>(
      [] {
        matmul(randint({2, 3}, 0, 5), randint({3, 2}, 0, 5));
      },
      {"matmul", "i64[2, 3]"});
}

TEST(LinearErrors, BadShapesAndDtypes) {
  expect_error<ShapeError>(
      [] {
        linear(randn({4, 7}), randn({5, 8}));
      },
      {"linear", "[4, 7]", "[5, 8]"});
  expect_error<ShapeError>([] { linear(randn({4, 8}), randn({8})); }, {"linear", "[8]"});
  expect_error<ShapeError>(
      [] {
        linear(randn({4, 8}), randn({5, 8}), randn({4}));
      },
      {"linear", "[4]", "[5, 8]"});
  expect_error<DTypeError>(
      [] {
        linear(randn({4, 8}), randn({5, 8}), randn({5}).to(DType::bf16));
      },
      {"linear"});
  expect_error<DTypeError>(
      [] {
        linear(randint({4, 8}, 0, 3), randint({5, 8}, 0, 3));
      },
      {"linear", "i64"});
}

// The training path (unfused activation, kept pre-activation) must give the fused path's output.
TEST(Linear, TrainingPathMatchesFusedInference) {
  for (Activation act : {Activation::relu, Activation::gelu, Activation::gelu_tanh,
                         Activation::silu, Activation::tanh}) {
    manual_seed(7);
    Tensor x = randn({3, 5, 16}), w = randn({12, 16}, 0.0, 0.3), b = randn({12});
    Tensor fused;
    {
      NoGradGuard ng;
      fused = linear(x, w, b, act);
    }
    Tensor xg = x.detach().set_requires_grad(true);
    Tensor trained = linear(xg, w, b, act);
    ASSERT_TRUE(trained.requires_grad());
    ASSERT_EQ(trained.shape(), fused.shape());
    const auto f = fused.to_vector<float>(), t = trained.to_vector<float>();
    for (size_t i = 0; i < f.size(); ++i)
      ASSERT_NEAR(f[i], t[i], 1e-5 * std::max(1.f, std::abs(f[i])));
  }
}

TEST(Matmul, EmptyInnerDimGivesZerosAndLinearGivesActivatedBias) {
  Tensor c = matmul(Tensor::zeros({3, 0}), Tensor::zeros({0, 4}));
  ASSERT_EQ(c.shape(), (Shape{3, 4}));
  for (float v : c.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  Tensor b = Tensor::from_vector<float>({-1.0f, 2.0f}, {2});
  Tensor y = linear(Tensor::zeros({3, 0}), Tensor::zeros({2, 0}), b, Activation::relu);
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{0, 2, 0, 2, 0, 2}));
}

TEST(Matmul, Bf16BackwardGivesBf16GradientsNearF32) {
  manual_seed(3);
  Tensor a = randn({2, 8, 16}), w = randn({12, 16}, 0.0, 0.3), bias = randn({12});
  std::vector<Tensor> f32{a, w, bias},
      b16{a.to(DType::bf16), w.to(DType::bf16), bias.to(DType::bf16)};
  for (auto* set : {&f32, &b16})
    for (auto& t : *set) t = t.detach().set_requires_grad(true);
  Tensor seed = randn({2, 8, 12});
  linear(f32[0], f32[1], f32[2], Activation::gelu).backward(seed);
  linear(b16[0], b16[1], b16[2], Activation::gelu).backward(seed.to(DType::bf16));
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(b16[i].grad().dtype(), DType::bf16);
    const auto g32 = f32[i].grad().to_vector<float>(), g16 = b16[i].grad().to_vector<float>();
    double scale = 0;
    for (float v : g32) scale = std::max(scale, std::abs(double(v)));
    for (size_t j = 0; j < g32.size(); ++j) EXPECT_NEAR(g16[j], g32[j], 0.03 * scale) << i;
  }
}

TEST(Matmul, RepeatedShapesReuseCachedPrimitives) {
  Tensor a = randn({33, 17}), b = randn({17, 9});
  matmul(a, b);
  const size_t n = cpu::gemm_cache_size();
  for (int i = 0; i < 3; ++i) matmul(randn({33, 17}), randn({17, 9}));
  EXPECT_EQ(cpu::gemm_cache_size(), n);
  matmul(randn({34, 17}), b);
  EXPECT_EQ(cpu::gemm_cache_size(), n + 1);
}

TEST(Matmul, LargerProductMatchesNaiveLoop) {
  manual_seed(11);
  Tensor a = randn({70, 130}), b = randn({50, 130});
  Tensor c = matmul(a, b, false, true);
  const Ref want = ref_matmul(to_ref(a), to_ref(b), false, true);
  const Ref got = to_ref(c);
  for (int64_t i = 0; i < got.numel(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-4 * std::max(1.0, std::abs(want[i])));
}

}  // namespace
}  // namespace lmf::test

namespace lmf::test {
namespace {

// Kernel features the ops do not reach yet: accumulate (sum post-op), bf16 in / f32 out, and a
// stride-0 broadcast batch operand.
TEST(GemmKernel, AccumulatesBf16ProductsIntoF32WithBroadcastBatch) {
  const int64_t batch = 3, m = 4, n = 5, k = 6;
  manual_seed(5);
  Tensor a = randn({batch, m, k}).to(DType::bf16), b = randn({k, n}).to(DType::bf16);
  Tensor c0 = randn({batch, m, n}), c = c0.clone();
  cpu::GemmDesc d;
  d.m = m, d.n = n, d.k = k;
  d.batch = {batch};
  d.a_batch_strides = {m * k}, d.b_batch_strides = {0}, d.c_batch_strides = {m * n};
  d.a_rs = k, d.a_cs = 1, d.b_rs = n, d.b_cs = 1, d.c_rs = n;
  d.ab_type = DType::bf16, d.c_type = DType::f32;
  d.accumulate = true;
  cpu::gemm(d, a.data_ptr(), b.data_ptr(), nullptr, c.data_ptr());
  const Ref prod = ref_matmul(to_ref(a), to_ref(b), false, false);
  const Ref got = to_ref(c), before = to_ref(c0);
  for (int64_t i = 0; i < got.numel(); ++i)
    ASSERT_NEAR(got[i], before[i] + prod[i], 1e-4 * std::max(1.0, std::abs(prod[i]))) << i;
}

}  // namespace
}  // namespace lmf::test
