// rotary_embedding and sinusoidal_position_encoding against float64 references, and bad input.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/op_harness.h"

namespace lmf::test {
namespace {

// HF LLaMA: inv_freq[i] = theta^(-2i/D), out = x cos + rotate_half(x) sin over the two halves.
Ref ref_rope(const Ref& x, const Ref& pos, double theta) {
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3), half = D / 2;
  Ref out(x.shape);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const double p = pos.shape.size() == 1 ? pos[t] : pos[b * T + t];
        const int64_t row = ((b * H + h) * T + t) * D;
        for (int64_t i = 0; i < half; ++i) {
          const double a = p / std::pow(theta, 2.0 * i / D);
          const double x1 = x[row + i], x2 = x[row + i + half];
          out[row + i] = x1 * std::cos(a) - x2 * std::sin(a);
          out[row + i + half] = x2 * std::cos(a) + x1 * std::sin(a);
        }
      }
  return out;
}

OpCase rope_case(std::string name, Shape xs, std::function<Tensor()> pos, double theta) {
  OpCase c;
  c.name = "rope/" + std::move(name);
  c.dtypes = {DType::f32, DType::bf16};
  c.inputs = [xs, pos] { return std::vector<Tensor>{randn(xs), pos()}; };
  c.op = [theta](const std::vector<Tensor>& in) { return rotary_embedding(in[0], in[1], theta); };
  c.reference = [theta](const std::vector<Ref>& in) { return ref_rope(in[0], in[1], theta); };
  c.grad_inputs = {0};
  return c;
}

// transformers' rotary embedding after rope_scaling: precomputed inv_freq [D/2] (any values) and
// cos/sin scaled by attention_scaling.
Ref ref_rope_freq(const Ref& x, const Ref& pos, const std::vector<double>& inv, double scaling) {
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3), half = D / 2;
  Ref out(x.shape);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const double p = pos.shape.size() == 1 ? pos[t] : pos[b * T + t];
        const int64_t row = ((b * H + h) * T + t) * D;
        for (int64_t i = 0; i < half; ++i) {
          const double a = p * inv[i], c = std::cos(a) * scaling, s = std::sin(a) * scaling;
          const double x1 = x[row + i], x2 = x[row + i + half];
          out[row + i] = x1 * c - x2 * s;
          out[row + i + half] = x2 * c + x1 * s;
        }
      }
  return out;
}

OpCase rope_freq_case(std::string name, Shape xs, std::function<Tensor()> pos,
                      std::vector<float> inv, double scaling) {
  OpCase c;
  c.name = "rope_inv_freq/" + std::move(name);
  c.dtypes = {DType::f32, DType::bf16};
  c.inputs = [xs, pos] { return std::vector<Tensor>{randn(xs), pos()}; };
  c.op = [inv, scaling](const std::vector<Tensor>& in) {
    const Tensor f = Tensor::from_vector(inv, {static_cast<int64_t>(inv.size())});
    return rotary_embedding(in[0], in[1], f, scaling);
  };
  c.reference = [inv, scaling](const std::vector<Ref>& in) {
    return ref_rope_freq(in[0], in[1], std::vector<double>(inv.begin(), inv.end()), scaling);
  };
  c.grad_inputs = {0};
  return c;
}

OpCase sinusoidal_case(int64_t T, int64_t D) {
  OpCase c;
  c.name = fmt::format("sinusoidal/T{}_D{}", T, D);
  c.inputs = [] { return std::vector<Tensor>{}; };
  c.op = [T, D](const std::vector<Tensor>&) { return sinusoidal_position_encoding(T, D); };
  c.reference = [T, D](const std::vector<Ref>&) {
    Ref p({T, D});
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; 2 * i < D; ++i) {
        const double a = t / std::pow(10000.0, 2.0 * i / D);
        p[t * D + 2 * i] = std::sin(a);
        if (2 * i + 1 < D) p[t * D + 2 * i + 1] = std::cos(a);
      }
    return p;
  };
  return c;
}

LMF_REGISTER_OP_CASES({
    rope_case(
        "positions_1d", {2, 3, 5, 8},
        [] {
          return Tensor::from_vector<int64_t>({0, 3, 7, 100, 2}, {5});
        },
        10000.0),
    rope_case(
        "positions_2d_i32", {2, 2, 4, 6},
        [] {
          return Tensor::from_vector<int32_t>({0, 1, 2, 3, 9, 10, 11, 12}, {2, 4});
        },
        500.0),
    rope_freq_case(
        "linear_scaled", {2, 3, 5, 8},
        [] {
          return Tensor::from_vector<int64_t>({0, 3, 7, 40, 2}, {5});
        },
        {0.5f, 0.05f, 0.005f, 0.0005f}, 1.0),
    rope_freq_case(
        "attention_scaling_2d", {2, 2, 3, 4},
        [] {
          return Tensor::from_vector<int64_t>({0, 1, 2, 5, 6, 7}, {2, 3});
        },
        {1.0f, 0.1f}, 1.3),
    sinusoidal_case(7, 8),
    sinusoidal_case(5, 7),
});

TEST(Rope, RejectsBadInput) {
  const Tensor pos = Tensor::arange(4);
  EXPECT_THROW(rotary_embedding(randn({1, 2, 4, 5}), pos), ShapeError);
  EXPECT_THROW(rotary_embedding(randn({2, 4, 6}), pos), ShapeError);
  EXPECT_THROW(rotary_embedding(randn({1, 2, 4, 6}), Tensor::arange(3)), ShapeError);
  EXPECT_THROW(rotary_embedding(randn({1, 2, 4, 6}), Tensor::zeros({2, 4}, DType::i64)),
               ShapeError);
  EXPECT_THROW(rotary_embedding(randn({1, 2, 4, 6}), Tensor::zeros({4})), DTypeError);
  EXPECT_THROW(rotary_embedding(randn({1, 2, 4, 6}), pos, 0.0), ValueError);
  try {
    rotary_embedding(randn({1, 2, 4, 5}), pos);
    ADD_FAILURE() << "odd head size accepted";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("rotary_embedding"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("[1, 2, 4, 5]"), std::string::npos);
  }
  EXPECT_THROW(sinusoidal_position_encoding(-1, 4), ShapeError);
}

// The no-gradient form writes into a strided slot (a KV cache's) exactly what the op returns, from
// a strided input (a view of a fused projection); bad inv_freq / scaling are clear errors.
TEST(Rope, IntoStridedSlotEqualsOp) {
  manual_seed(5);
  const Tensor fused = randn({2, 3, 2 * 4 * 8});  // [B, T, (q | k) heads * D]
  const Tensor x = fused.narrow(2, 32, 32).reshape({2, 3, 4, 8}).permute({0, 2, 1, 3});
  const Tensor pos = Tensor::from_vector<int64_t>({4, 5, 6}, {3});
  const Tensor inv = Tensor::from_vector<float>({0.9f, 0.2f, 0.03f, 0.001f}, {4});
  const Tensor want = rotary_embedding(x, pos, inv, 0.75);
  Tensor cache = Tensor::zeros({2, 4, 10, 8});
  rotary_embedding_into(x, pos, inv, 0.75, cache.narrow(2, 2, 3));
  const auto a = cache.narrow(2, 2, 3).contiguous().to_vector<float>();
  const auto b = want.contiguous().to_vector<float>();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << i;
  EXPECT_EQ(cache.narrow(2, 0, 2).contiguous().to_vector<float>(),
            std::vector<float>(2 * 4 * 2 * 8, 0.0f));
  EXPECT_THROW(rotary_embedding(x, pos, Tensor::ones({3})), ShapeError);
  EXPECT_THROW(rotary_embedding(x, pos, inv, 0.0), ValueError);
  EXPECT_THROW(rotary_embedding_into(x, pos, inv, 1.0, Tensor::zeros({2, 4, 3, 6})), ShapeError);
}

// Rotation keeps the norm of each (i, i + D/2) pair, and position 0 is the identity.
TEST(Rope, PreservesNormsAndPositionZeroIsIdentity) {
  manual_seed(4);
  const Tensor x = randn({1, 1, 2, 8});
  const Tensor out = rotary_embedding(x, Tensor::from_vector<int64_t>({0, 37}, {2}));
  for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(out.at({0, 0, 0, i}), x.at({0, 0, 0, i}));
  for (int64_t i = 0; i < 4; ++i) {
    const double a = std::hypot(x.at({0, 0, 1, i}), x.at({0, 0, 1, i + 4}));
    const double b = std::hypot(out.at({0, 0, 1, i}), out.at({0, 0, 1, i + 4}));
    EXPECT_NEAR(a, b, 1e-5);
  }
}

}  // namespace
}  // namespace lmf::test
