// Position encodings: rotary embedding (differentiable in x, from a base theta or from precomputed
// inverse frequencies with an attention scaling) and the sinusoidal table.
#include "kernels/cpu/rope.h"

#include <cmath>

#include "lmforge/ops/ops.h"

namespace lmf {

namespace {

// The frequencies and scaling of one call; theta-form calls keep double angles (their original
// behaviour), inv_freq-form calls round angles to f32 as transformers does.
struct RopeFreqs {
  std::vector<double> inv_freq;
  double scaling = 1.0;
  bool f32_angles = false;
  bool interleaved = false;  // pairs (2i, 2i + 1), llama.cpp's q/k layout
};

// Checks x and positions; returns positions as contiguous i64 and the position batch (1 or B).
std::pair<Tensor, int64_t> check_rope(const char* who, const Tensor& x, const Tensor& positions) {
  LMF_CHECK(x.defined() && positions.defined(), ValueError, "{}: x and positions must be defined",
            who);
  LMF_CHECK(is_floating(x.dtype()), DTypeError, "{}: x must be floating, got {}", who,
            x.describe());
  LMF_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, ShapeError,
            "{}: x must be [B, H, T, D] with D even, got {}", who, x.describe());
  LMF_CHECK(!is_floating(positions.dtype()) && positions.dtype() != DType::boolean, DTypeError,
            "{}: positions must be integer, got {} (x {})", who, positions.describe(),
            x.describe());
  const int64_t B = x.size(0), T = x.size(2);
  const bool flat = positions.dim() == 1 && positions.size(0) == T;
  const bool batched = positions.dim() == 2 && positions.size(0) == B && positions.size(1) == T;
  LMF_CHECK(flat || batched, ShapeError,
            "{}: positions must be [T] = [{}] or [B, T] = [{}, {}], got {} (x {})", who, T, B, T,
            positions.describe(), x.describe());
  return {positions.to(DType::i64).contiguous(), flat ? 1 : B};
}

RopeFreqs freqs_from(const char* who, const Tensor& x, const Tensor& inv_freq, double scaling,
                     bool interleaved) {
  LMF_CHECK(inv_freq.defined() && is_floating(inv_freq.dtype()) && inv_freq.dim() == 1 &&
                inv_freq.size(0) * 2 == x.size(3),
            ShapeError, "{}: inv_freq must be floating [D/2] = [{}] for x {}, got {}", who,
            x.size(3) / 2, x.describe(), inv_freq.defined() ? inv_freq.describe() : "undefined");
  LMF_CHECK(std::isfinite(scaling) && scaling > 0.0, ValueError,
            "{}: attention_scaling={} must be positive", who, scaling);
  const std::vector<float> f = inv_freq.to_vector<float>();
  return {std::vector<double>(f.begin(), f.end()), scaling, true, interleaved};
}

Tensor rope_f32(const Tensor& x, const Tensor& pos, int64_t pos_batch, const RopeFreqs& f) {
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3);
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty(x.shape());
  kernels::rotary_embedding(xc.data<float>(), pos.data<int64_t>(), pos_batch, B, H, T, D,
                            f.inv_freq.data(), f.scaling, f.f32_angles, false, out.data<float>(),
                            nullptr, f.interleaved);
  record(out, "rotary_embedding", {x}, [pos, pos_batch, f, B, H, T, D](const Tensor& g) {
    const Tensor gc = g.to(DType::f32).contiguous();
    Tensor dx = Tensor::empty({B, H, T, D});
    kernels::rotary_embedding(gc.data<float>(), pos.data<int64_t>(), pos_batch, B, H, T, D,
                              f.inv_freq.data(), f.scaling, f.f32_angles, true, dx.data<float>(),
                              nullptr, f.interleaved);
    return std::vector<Tensor>{dx};
  });
  return out;
}

Tensor rope_any(const Tensor& x, const Tensor& pos, int64_t pos_batch, const RopeFreqs& f) {
  if (x.dtype() == DType::f32) return rope_f32(x, pos, pos_batch, f);
  return rope_f32(x.to(DType::f32), pos, pos_batch, f).to(x.dtype());
}

}  // namespace

Tensor rotary_embedding(const Tensor& x, const Tensor& positions, double theta) {
  auto [pos, pos_batch] = check_rope("rotary_embedding", x, positions);
  LMF_CHECK(theta > 0.0, ValueError, "rotary_embedding: theta={} must be positive", theta);
  const int64_t D = x.size(3);
  RopeFreqs f;
  f.inv_freq.resize(D / 2);
  for (int64_t i = 0; i < D / 2; ++i)
    f.inv_freq[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(D));
  return rope_any(x, pos, pos_batch, f);
}

Tensor rotary_embedding(const Tensor& x, const Tensor& positions, const Tensor& inv_freq,
                        double attention_scaling, bool interleaved) {
  auto [pos, pos_batch] = check_rope("rotary_embedding", x, positions);
  return rope_any(x, pos, pos_batch,
                  freqs_from("rotary_embedding", x, inv_freq, attention_scaling, interleaved));
}

void rotary_embedding_into(const Tensor& x, const Tensor& positions, const Tensor& inv_freq,
                           double attention_scaling, const Tensor& out, bool interleaved) {
  constexpr const char* who = "rotary_embedding_into";
  auto [pos, pos_batch] = check_rope(who, x, positions);
  const RopeFreqs f = freqs_from(who, x, inv_freq, attention_scaling, interleaved);
  LMF_CHECK(out.defined() && out.shape() == x.shape() && out.dtype() == DType::f32 &&
                x.dtype() == DType::f32 && out.strides()[3] == 1,
            ShapeError, "{}: out must be f32 of x's shape {} with a contiguous last dim, got {}",
            who, x.describe(), out.defined() ? out.describe() : "undefined");
  LMF_CHECK(!needs_grad({x}), ValueError,
            "{}: x requires grad; use rotary_embedding (this form records no backward)", who);
  const Tensor xs = x.strides()[3] == 1 ? x.detach() : x.detach().contiguous();
  kernels::RopeStrides st;
  for (int j = 0; j < 3; ++j) {
    st.x[j] = xs.strides()[j];
    st.out[j] = out.strides()[j];
  }
  kernels::rotary_embedding(xs.data<float>(), pos.data<int64_t>(), pos_batch, x.size(0), x.size(1),
                            x.size(2), x.size(3), f.inv_freq.data(), f.scaling, f.f32_angles, false,
                            out.data<float>(), &st, f.interleaved);
}

Tensor sinusoidal_position_encoding(int64_t length, int64_t dim) {
  LMF_CHECK(length >= 0 && dim >= 0, ShapeError,
            "sinusoidal_position_encoding: length {} and dim {} must be non-negative", length, dim);
  Tensor out = Tensor::empty({length, dim});
  kernels::sinusoidal_position_encoding(length, dim, out.data<float>());
  return out;
}

}  // namespace lmf
