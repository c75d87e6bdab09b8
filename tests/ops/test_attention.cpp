// scaled_dot_product_attention: op-table cases against a float64 reference (masks, causal, GQA,
// cross-attention, probabilities), dropout behaviour, bad-input errors and PyTorch goldens.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ops/op_harness.h"

namespace lmf::test {
namespace {

// How the op-table case maps its inputs (q, k, v, then optional masks) onto AttentionOptions.
struct AttnCase {
  int kp = -1;    // input index of key_padding_mask
  int mask = -1;  // input index of attn_mask
  bool causal = false;
  double scale = 0.0;
  bool probs = false;     // the op returns result.probs instead of result.out
  bool permuted = false;  // q, k, v are given as [B, T, H, D] and permuted to [B, H, T, D]
};

AttentionOptions options_for(const AttnCase& c, const std::vector<Tensor>& in) {
  AttentionOptions o;
  if (c.kp >= 0) o.key_padding_mask = in[c.kp];
  if (c.mask >= 0) o.attn_mask = in[c.mask];
  o.causal = c.causal;
  o.scale = c.scale;
  o.return_probs = c.probs;
  return o;
}

// Reads element (b, h, i, j) of a mask broadcast (right-aligned) to [B, H, Tq, Tk].
double mask_at(const Ref& m, int64_t b, int64_t h, int64_t i, int64_t j) {
  const int64_t idx[4] = {b, h, i, j};
  const int64_t r = static_cast<int64_t>(m.shape.size());
  int64_t off = 0;
  for (int64_t d = 0; d < r; ++d) {
    const int64_t n = m.shape[d];
    off = off * n + (n == 1 ? 0 : idx[4 - r + d]);
  }
  return m[off];
}

// Permutes [B, T, H, D] to [B, H, T, D].
Ref permute_bthd(const Ref& x) {
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3);
  Ref y({B, H, T, D});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t d = 0; d < D; ++d)
          y[((b * H + h) * T + t) * D + d] = x[((b * T + t) * H + h) * D + d];
  return y;
}

Ref ref_attention(const std::vector<Ref>& in, const AttnCase& c, bool mask_is_bool) {
  const Ref q = c.permuted ? permute_bthd(in[0]) : in[0];
  const Ref k = c.permuted ? permute_bthd(in[1]) : in[1];
  const Ref v = c.permuted ? permute_bthd(in[2]) : in[2];
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), Tk = k.size(2), Dv = v.size(3);
  const double scale = c.scale != 0.0 ? c.scale : 1.0 / std::sqrt(static_cast<double>(D));
  Ref out({B, H, Tq, Dv}), probs({B, H, Tq, Tk});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kv = h / (H / Hkv);
      for (int64_t i = 0; i < Tq; ++i) {
        std::vector<double> s(Tk);
        std::vector<bool> ok(Tk, true);
        double mx = -INFINITY;
        for (int64_t j = 0; j < Tk; ++j) {
          double acc = 0;
          for (int64_t d = 0; d < D; ++d)
            acc += q[((b * H + h) * Tq + i) * D + d] * k[((b * Hkv + kv) * Tk + j) * D + d];
          s[j] = acc * scale;
          if (c.kp >= 0 && in[c.kp][b * Tk + j] == 0) ok[j] = false;
          if (c.causal && j > i + (Tk - Tq)) ok[j] = false;
          if (c.mask >= 0) {
            const double m = mask_at(in[c.mask], b, h, i, j);
            if (mask_is_bool && m == 0) ok[j] = false;
            if (!mask_is_bool) s[j] += m;
          }
          if (ok[j]) mx = std::max(mx, s[j]);
        }
        if (mx == -INFINITY) continue;  // every key masked: zeros
        double sum = 0;
        for (int64_t j = 0; j < Tk; ++j) sum += ok[j] ? std::exp(s[j] - mx) : 0.0;
        for (int64_t j = 0; j < Tk; ++j) {
          const double p = ok[j] ? std::exp(s[j] - mx) / sum : 0.0;
          probs[((b * H + h) * Tq + i) * Tk + j] = p;
          for (int64_t e = 0; e < Dv; ++e)
            out[((b * H + h) * Tq + i) * Dv + e] += p * v[((b * Hkv + kv) * Tk + j) * Dv + e];
        }
      }
    }
  return c.probs ? probs : out;
}

Tensor bool_tensor(const std::vector<int64_t>& v, const Shape& s) {
  return Tensor::from_vector<int64_t>(v, s).to(DType::boolean);
}

OpCase attention_case(std::string name, int64_t B, int64_t H, int64_t Hkv, int64_t Tq, int64_t Tk,
                      int64_t D, int64_t Dv, AttnCase c = {},
                      std::function<std::vector<Tensor>()> masks = nullptr,
                      bool mask_is_bool = false) {
  OpCase oc;
  oc.name = "attention/" + std::move(name);
  oc.inputs = [=] {
    std::vector<Tensor> in;
    if (c.permuted) {
      in = {randn({B, Tq, H, D}), randn({B, Tk, Hkv, D}), randn({B, Tk, Hkv, Dv})};
    } else {
      in = {randn({B, H, Tq, D}), randn({B, Hkv, Tk, D}), randn({B, Hkv, Tk, Dv})};
    }
    if (masks)
      for (auto& m : masks()) in.push_back(m);
    return in;
  };
  oc.op = [c](const std::vector<Tensor>& in) {
    Tensor q = in[0], k = in[1], v = in[2];
    if (c.permuted) {
      q = q.permute({0, 2, 1, 3});
      k = k.permute({0, 2, 1, 3});
      v = v.permute({0, 2, 1, 3});
    }
    AttentionResult r = scaled_dot_product_attention(q, k, v, options_for(c, in));
    return c.probs ? r.probs : r.out;
  };
  oc.reference = [c, mask_is_bool](const std::vector<Ref>& in) {
    return ref_attention(in, c, mask_is_bool);
  };
  if (!c.probs) oc.grad_inputs = {0, 1, 2};
  return oc;
}

LMF_REGISTER_OP_CASES({
    [] {
      OpCase c = attention_case("self_nomask", 2, 2, 2, 5, 5, 4, 4);
      c.dtypes = {DType::f32, DType::bf16};
      return c;
    }(),
    attention_case(
        "key_padding_bool", 2, 2, 2, 4, 6, 4, 4, {.kp = 3},
        [] {
          return std::vector<Tensor>{bool_tensor({1, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1}, {2, 6})};
        }),
    attention_case("key_padding_int", 2, 2, 2, 4, 4, 4, 4, {.kp = 3},
                   [] {
                     return std::vector<Tensor>{
                         Tensor::from_vector<int64_t>({1, 1, 1, 0, 1, 1, 0, 0}, {2, 4})};
                   }),
    attention_case("causal_square", 2, 2, 2, 5, 5, 4, 4, {.causal = true}),
    attention_case("causal_cache", 2, 2, 2, 3, 7, 4, 4, {.causal = true}),
    attention_case("cross", 2, 3, 3, 3, 7, 4, 5),
    attention_case("gqa_h4_kv2", 2, 4, 2, 4, 5, 4, 3),
    attention_case(
        "gqa_h4_kv1_causal_padding", 2, 4, 1, 4, 6, 4, 4, {.kp = 3, .causal = true},
        [] {
          return std::vector<Tensor>{bool_tensor({1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0}, {2, 6})};
        }),
    attention_case("float_mask", 2, 2, 2, 4, 5, 4, 4, {.mask = 3},
                   [] {
                     return std::vector<Tensor>{randn({2, 1, 4, 5})};
                   }),
    attention_case("float_mask_2d", 2, 2, 2, 4, 5, 4, 4, {.mask = 3},
                   [] {
                     return std::vector<Tensor>{randn({4, 5})};
                   }),
    attention_case(
        "bool_mask", 1, 2, 2, 3, 4, 4, 4, {.mask = 3},
        [] {
          return std::vector<Tensor>{
              bool_tensor({1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1, 1},
                          {1, 2, 3, 4})};
        },
        true),
    attention_case("custom_scale", 2, 2, 2, 4, 4, 4, 4, {.scale = 0.3}),
    // Row 1 of batch 0 has no key to attend (bool mask), and batch 1 is padded out entirely.
    attention_case(
        "fully_masked_rows", 2, 2, 2, 3, 4, 4, 4, {.kp = 3, .mask = 4},
        [] {
          return std::vector<Tensor>{
              bool_tensor({1, 1, 1, 1, 0, 0, 0, 0}, {2, 4}),
              bool_tensor({1, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
                          {2, 1, 3, 4})};
        },
        true),
    attention_case("causal_more_queries_than_keys", 1, 2, 2, 5, 3, 4, 4, {.causal = true}),
    // A float attn_mask that requires grad (T5's relative position bias) gets the scores'
    // gradient, summed over its broadcast dims; with scale 1 (T5), another scale and causal.
    [] {
      OpCase c =
          attention_case("float_mask_grad_t5", 2, 2, 2, 4, 5, 4, 4, {.mask = 3, .scale = 1.0}, [] {
            return std::vector<Tensor>{randn({1, 2, 4, 5})};
          });
      c.grad_inputs = {0, 1, 2, 3};
      return c;
    }(),
    [] {
      OpCase c = attention_case("float_mask_grad_2d_scaled_causal", 2, 2, 2, 4, 4, 4, 4,
                                {.mask = 3, .causal = true, .scale = 0.3}, [] {
                                  return std::vector<Tensor>{randn({4, 4})};
                                });
      c.grad_inputs = {0, 1, 2, 3};
      return c;
    }(),
    [] {
      OpCase c = attention_case("float_mask_grad_only_mask", 1, 2, 1, 3, 4, 4, 4, {.mask = 3}, [] {
        return std::vector<Tensor>{randn({1, 2, 3, 4})};
      });
      c.grad_inputs = {3};
      return c;
    }(),
    attention_case("permuted_inputs", 2, 3, 3, 4, 5, 4, 4, {.permuted = true}),
    attention_case(
        "probs_gqa_causal_padding", 2, 4, 2, 4, 6, 4, 4, {.kp = 3, .causal = true, .probs = true},
        [] {
          return std::vector<Tensor>{bool_tensor({1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0}, {2, 6})};
        }),
});

// ---- plain tests -------------------------------------------------------------------------------

template <class E>
void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one mentioning " << needle;
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("scaled_dot_product_attention"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(Attention, RejectsBadShapesAndDtypes) {
  const Tensor q = randn({2, 4, 3, 8}), k = randn({2, 2, 5, 8}), v = randn({2, 2, 5, 6});
  auto sdpa = [](const Tensor& a, const Tensor& b, const Tensor& c, AttentionOptions o = {}) {
    return [=] { scaled_dot_product_attention(a, b, c, o); };
  };
  expect_error<ShapeError>(sdpa(randn({2, 3, 8}), k, v), "[2, 3, 8]");
  expect_error<ShapeError>(sdpa(q, randn({3, 2, 5, 8}), randn({3, 2, 5, 6})), "[3, 2, 5, 8]");
  expect_error<ShapeError>(sdpa(q, randn({2, 2, 5, 7}), v), "[2, 2, 5, 7]");
  expect_error<ShapeError>(sdpa(q, k, randn({2, 2, 4, 6})), "[2, 2, 4, 6]");
  expect_error<ShapeError>(sdpa(q, randn({2, 3, 5, 8}), randn({2, 3, 5, 6})), "multiple");
  expect_error<DTypeError>(sdpa(q, k.to(DType::bf16), v), "bf16[2, 2, 5, 8]");
  expect_error<DTypeError>(sdpa(q.to(DType::i64), k.to(DType::i64), v.to(DType::i64)), "i64");

  AttentionOptions o;
  o.key_padding_mask = Tensor::ones({2, 4}, DType::boolean);
  expect_error<ShapeError>(sdpa(q, k, v, o), "key_padding_mask");
  o.key_padding_mask = Tensor::ones({2, 5}, DType::f32);
  expect_error<DTypeError>(sdpa(q, k, v, o), "key_padding_mask");
  o = {};
  o.attn_mask = Tensor::zeros({4, 5});
  expect_error<ShapeError>(sdpa(q, k, v, o), "[4, 5]");
  o.attn_mask = Tensor::zeros({1, 2, 4, 3, 5});
  expect_error<ShapeError>(sdpa(q, k, v, o), "attn_mask");
  o.attn_mask = Tensor::zeros({3, 5}, DType::i64);
  expect_error<DTypeError>(sdpa(q, k, v, o), "attn_mask");
  o = {};
  o.dropout_p = 1.0;
  o.training = true;
  expect_error<ValueError>(sdpa(q, k, v, o), "dropout_p");
}

TEST(Attention, ReturnedProbsAreDetachedAndRowsSumToOne) {
  manual_seed(7);
  Tensor q = randn({1, 2, 3, 4}).set_requires_grad(true);
  Tensor k = randn({1, 2, 5, 4}), v = randn({1, 2, 5, 4});
  AttentionOptions o;
  o.return_probs = true;
  o.causal = true;
  AttentionResult r = scaled_dot_product_attention(q, k, v, o);
  ASSERT_TRUE(r.probs.defined());
  EXPECT_TRUE(r.out.requires_grad());
  EXPECT_FALSE(r.probs.requires_grad());
  EXPECT_EQ(r.probs.shape(), (Shape{1, 2, 3, 5}));
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t i = 0; i < 3; ++i) {
      double s = 0;
      for (int64_t j = 0; j < 5; ++j) s += r.probs.at({0, h, i, j});
      EXPECT_NEAR(s, 1.0, 1e-6);
      if (i < 2) {
        EXPECT_EQ(r.probs.at({0, h, i, 4}), 0.0) << "causal: query " << i << " sees key 4";
      } else {
        EXPECT_GT(r.probs.at({0, h, i, 4}), 0.0);
      }
    }
  EXPECT_FALSE(scaled_dot_product_attention(q, k, v).probs.defined());
}

// The inference path (no gradient) reads q/k/v through their strides, writes out as
// [B, Tq, H, Dv] and uses its own loops for small per-head blocks; the autograd path (checked
// against float64 by the op table) packs everything. Both must agree, on small and large blocks.
TEST(Attention, InferencePathEqualsAutogradPathOnStridedViews) {
  manual_seed(11);
  struct Case {
    int64_t B, H, Hkv, T, D;
    bool causal, padding;
  };
  for (const Case& c : {Case{1, 4, 4, 16, 32, false, false}, Case{2, 4, 2, 7, 8, true, true},
                        Case{2, 2, 1, 128, 64, false, true}, Case{1, 3, 3, 5, 24, true, false}}) {
    // A fused projection [B, T, (H + 2 Hkv) D] split into strided head views, as attention does.
    const Tensor qkv = randn({c.B, c.T, (c.H + 2 * c.Hkv) * c.D});
    auto heads = [&](int64_t start, int64_t n) {
      return qkv.narrow(2, start * c.D, n * c.D).reshape({c.B, c.T, n, c.D}).permute({0, 2, 1, 3});
    };
    const Tensor q = heads(0, c.H), k = heads(c.H, c.Hkv), v = heads(c.H + c.Hkv, c.Hkv);
    AttentionOptions o;
    o.causal = c.causal;
    if (c.padding) {
      Tensor pad = Tensor::ones({c.B, c.T}, DType::i64);
      pad.narrow(1, c.T - 2, 2).select(0, c.B - 1).fill_(0);
      o.key_padding_mask = pad;
    }
    Tensor inference;
    {
      NoGradGuard no_grad;
      inference = scaled_dot_product_attention(q, k, v, o).out;
    }
    const Tensor qg = q.contiguous().set_requires_grad(true);
    const Tensor training = scaled_dot_product_attention(qg, k.contiguous(), v.contiguous(), o).out;
    ASSERT_EQ(inference.shape(), training.shape());
    const std::vector<float> a = inference.contiguous().to_vector<float>();
    const std::vector<float> b = training.detach().contiguous().to_vector<float>();
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
    EXPECT_LT(worst, 1e-5) << "B=" << c.B << " H=" << c.H << " Hkv=" << c.Hkv << " T=" << c.T
                           << " D=" << c.D;
  }
}

// k/v with fewer batch rows than q (each serving g consecutive query rows: beam search's copies
// of a source in cross-attention) give exactly what the k/v rows repeated g times give, outputs
// and probabilities, for decode steps (Tq 1), several query rows and GQA; gradients, causal masks
// and attn_mask are refused.
TEST(Attention, SharedKeyRowsEqualRepeatedRowsExactly) {
  manual_seed(12);
  struct Case {
    int64_t Bk, g, H, Hkv, Tq, Tk, D;
  };
  for (const Case& c : {Case{2, 4, 4, 4, 1, 9, 64}, Case{3, 5, 2, 1, 3, 17, 16},
                        Case{1, 2, 3, 3, 1, 300, 32}}) {
    const int64_t B = c.Bk * c.g;
    // q as the projections leave it: [B, Tq, H, D] storage viewed as [B, H, Tq, D].
    const Tensor q = randn({B, c.Tq, c.H, c.D}).permute({0, 2, 1, 3});
    const Tensor k = randn({c.Bk, c.Hkv, c.Tk, c.D}), v = randn({c.Bk, c.Hkv, c.Tk, c.D});
    Tensor pad = Tensor::ones({c.Bk, c.Tk}, DType::i64);
    pad.narrow(1, c.Tk - 2, 2).select(0, c.Bk - 1).fill_(0);
    std::vector<Tensor> kr, vr, pr;
    for (int64_t r = 0; r < B; ++r) {
      kr.push_back(k.select(0, r / c.g));
      vr.push_back(v.select(0, r / c.g));
      pr.push_back(pad.select(0, r / c.g));
    }
    NoGradGuard no_grad;
    AttentionOptions o;
    o.return_probs = true;
    o.key_padding_mask = stack(pr, 0);
    const AttentionResult want = scaled_dot_product_attention(q, stack(kr, 0), stack(vr, 0), o);
    o.key_padding_mask = pad;
    const AttentionResult got = scaled_dot_product_attention(q, k, v, o);
    ASSERT_EQ(got.out.shape(), want.out.shape());
    ASSERT_EQ(got.probs.shape(), want.probs.shape());
    EXPECT_EQ(got.out.contiguous().to_vector<float>(), want.out.contiguous().to_vector<float>())
        << "Bk=" << c.Bk << " g=" << c.g << " Tq=" << c.Tq;
    EXPECT_EQ(got.probs.contiguous().to_vector<float>(),
              want.probs.contiguous().to_vector<float>());
    // A packed [B, H, Tq, D] q (not the projections' layout) is laid out as needed first.
    EXPECT_EQ(scaled_dot_product_attention(q.contiguous(), k, v, o).out.contiguous().to_vector<float>(),
              want.out.contiguous().to_vector<float>());
  }
  const Tensor q = randn({4, 2, 1, 8}), k = randn({2, 2, 5, 8}), v = randn({2, 2, 5, 8});
  AttentionOptions causal;
  causal.causal = true;
  EXPECT_THROW(scaled_dot_product_attention(q, k, v, causal), ValueError);
  AttentionOptions masked;
  masked.attn_mask = Tensor::ones({1, 5}, DType::boolean);
  EXPECT_THROW(scaled_dot_product_attention(q, k, v, masked), ValueError);
  EXPECT_THROW(scaled_dot_product_attention(randn({3, 2, 1, 8}), k, v), ShapeError);  // 3 % 2
  AttentionOptions wrong_pad;
  wrong_pad.key_padding_mask = Tensor::ones({4, 5}, DType::i64);  // q's batch, not k's
  EXPECT_THROW(scaled_dot_product_attention(q, k, v, wrong_pad), ShapeError);
  const Tensor qg = q.clone().set_requires_grad(true);
  EXPECT_THROW(scaled_dot_product_attention(qg, k, v), ValueError);
}

TEST(Attention, FullyMaskedRowIsZeroNotNan) {
  Tensor q = randn({1, 1, 2, 4}), k = randn({1, 1, 3, 4}), v = randn({1, 1, 3, 4});
  AttentionOptions o;
  o.key_padding_mask = Tensor::zeros({1, 3}, DType::i32);
  o.return_probs = true;
  AttentionResult r = scaled_dot_product_attention(q, k, v, o);
  for (float x : r.out.to_vector<float>()) EXPECT_EQ(x, 0.0f);
  for (float x : r.probs.to_vector<float>()) EXPECT_EQ(x, 0.0f);
}

AttentionResult dropout_run(uint64_t seed, double p, bool training, const Tensor& q,
                            const Tensor& k, const Tensor& v) {
  manual_seed(seed);
  AttentionOptions o;
  o.dropout_p = p;
  o.training = training;
  o.return_probs = true;
  return scaled_dot_product_attention(q, k, v, o);
}

TEST(AttentionDropout, SameSeedSameResultAndPZeroIsNoDropout) {
  manual_seed(1);
  Tensor q = randn({2, 2, 6, 4}), k = randn({2, 2, 6, 4}), v = randn({2, 2, 6, 4});
  const auto a = dropout_run(5, 0.3, true, q, k, v).out.to_vector<float>();
  const auto b = dropout_run(5, 0.3, true, q, k, v).out.to_vector<float>();
  const auto c = dropout_run(6, 0.3, true, q, k, v).out.to_vector<float>();
  const auto plain = scaled_dot_product_attention(q, k, v).out.to_vector<float>();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, plain);
  EXPECT_EQ(dropout_run(5, 0.0, true, q, k, v).out.to_vector<float>(), plain);
  EXPECT_EQ(dropout_run(5, 0.3, false, q, k, v).out.to_vector<float>(), plain);
}

// With v = identity the output is the dropped probability matrix itself: each entry is either 0
// or p/(1-p_drop), and about p_drop of them are zero.
TEST(AttentionDropout, OutputIsInvertedDropoutOfProbabilities) {
  const int64_t T = 64;
  std::vector<float> eye(T * T, 0.0f);
  for (int64_t i = 0; i < T; ++i) eye[i * T + i] = 1.0f;
  manual_seed(2);
  Tensor q = randn({1, 2, T, 8}), k = randn({1, 2, T, 8});
  Tensor v = Tensor::from_vector(eye, {1, 1, T, T}).expand({1, 2, T, T});
  const double p = 0.25;
  AttentionResult r = dropout_run(9, p, true, q, k, v);
  const auto out = r.out.to_vector<float>(), probs = r.probs.to_vector<float>();
  int64_t zeros = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 0.0f) {
      ++zeros;
    } else {
      EXPECT_NEAR(out[i], probs[i] / (1 - p), 1e-6 * (1 + probs[i]));
    }
  }
  EXPECT_NEAR(static_cast<double>(zeros) / out.size(), p, 0.03);
}

// The backward with dropout matches central differences of the op itself, re-seeded before each
// evaluation so that every evaluation draws the same mask.
TEST(AttentionDropout, BackwardMatchesFiniteDifferencesWithFixedSeed) {
  manual_seed(3);
  const Tensor q0 = randn({1, 4, 3, 4}), k0 = randn({1, 2, 5, 4}), v0 = randn({1, 2, 5, 3});
  const Tensor w = randn({1, 4, 3, 3});
  const std::vector<float> wv = w.to_vector<float>();
  auto loss = [&](const Tensor& q, const Tensor& k, const Tensor& v) {
    manual_seed(11);
    AttentionOptions o;
    o.dropout_p = 0.4;
    o.training = true;
    o.causal = true;
    return scaled_dot_product_attention(q, k, v, o).out;
  };
  Tensor q = q0.clone().set_requires_grad(true), k = k0.clone().set_requires_grad(true),
         v = v0.clone().set_requires_grad(true);
  loss(q, k, v).backward(w);
  const std::vector<Tensor> base{q0, k0, v0}, grads{q.grad(), k.grad(), v.grad()};
  const float h = 1e-2f;
  for (int which = 0; which < 3; ++which) {
    const auto g = grads[which].to_vector<float>();
    for (int64_t e = 0; e < base[which].numel(); ++e) {
      std::vector<Tensor> plus = base, minus = base;
      auto bump = [&](Tensor& t, float d) {
        t = t.clone();
        t.data<float>()[e] += d;
      };
      bump(plus[which], h);
      bump(minus[which], -h);
      auto f = [&](const std::vector<Tensor>& in) {
        const auto o = loss(in[0], in[1], in[2]).to_vector<float>();
        double s = 0;
        for (size_t i = 0; i < o.size(); ++i) s += static_cast<double>(o[i]) * wv[i];
        return s;
      };
      const double num = (f(plus) - f(minus)) / (2 * h);
      EXPECT_NEAR(g[e], num, 5e-3 * std::max(1.0, std::abs(num)))
          << "input " << which << "[" << e << "]";
    }
  }
}

// ---- PyTorch goldens ---------------------------------------------------------------------------

Tensor from_json(const nlohmann::json& j) {
  Shape shape = j.at("shape").get<Shape>();
  if (j.at("dtype") == "bool") {
    std::vector<int64_t> d = j.at("data").get<std::vector<int64_t>>();
    return Tensor::from_vector(d, shape).to(DType::boolean);
  }
  return Tensor::from_vector(j.at("data").get<std::vector<float>>(), shape);
}

void expect_all_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const auto a = got.to_vector<float>(), b = want.to_vector<float>();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  EXPECT_LE(worst, tol) << what;
}

nlohmann::json load_goldens() {
  std::ifstream f(std::string(LMF_FIXTURES_DIR) + "/attention_goldens.json");
  EXPECT_TRUE(f.good()) << "missing tests/fixtures/attention_goldens.json";
  return nlohmann::json::parse(f);
}

TEST(AttentionGolden, MatchesTorchGqaPaddingCausal) {
  const nlohmann::json g = load_goldens().at("attention");
  Tensor q = from_json(g.at("q")).set_requires_grad(true);
  Tensor k = from_json(g.at("k")).set_requires_grad(true);
  Tensor v = from_json(g.at("v")).set_requires_grad(true);
  AttentionOptions o;
  o.key_padding_mask = from_json(g.at("key_padding_mask"));
  o.causal = true;
  Tensor out = scaled_dot_product_attention(q, k, v, o).out;
  expect_all_close(out, from_json(g.at("out")), 1e-5, "out");
  out.backward(from_json(g.at("grad_out")));
  expect_all_close(q.grad(), from_json(g.at("grad_q")), 1e-5, "grad_q");
  expect_all_close(k.grad(), from_json(g.at("grad_k")), 1e-5, "grad_k");
  expect_all_close(v.grad(), from_json(g.at("grad_v")), 1e-5, "grad_v");
}

TEST(RopeGolden, MatchesHfRotateHalfFormula) {
  const nlohmann::json g = load_goldens().at("rope");
  const Tensor x = from_json(g.at("x"));
  const Tensor pos =
      Tensor::from_vector(g.at("positions").get<std::vector<int64_t>>(), {x.size(2)});
  const Tensor out = rotary_embedding(x, pos, g.at("theta").get<double>());
  expect_all_close(out, from_json(g.at("out")), 1e-5, "rope out");
}

}  // namespace
}  // namespace lmf::test
