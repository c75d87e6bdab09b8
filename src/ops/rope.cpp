// Position encodings: rotary embedding (differentiable in x) and the sinusoidal table.
#include "kernels/cpu/rope.h"

#include "lmforge/ops/ops.h"

namespace lmf {

namespace {

Tensor rope_f32(const Tensor& x, const Tensor& pos, int64_t pos_batch, double theta) {
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3);
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty(x.shape());
  kernels::rotary_embedding(xc.data<float>(), pos.data<int64_t>(), pos_batch, B, H, T, D, theta,
                            false, out.data<float>());
  record(out, "rotary_embedding", {x}, [pos, pos_batch, theta, B, H, T, D](const Tensor& g) {
    const Tensor gc = g.to(DType::f32).contiguous();
    Tensor dx = Tensor::empty({B, H, T, D});
    kernels::rotary_embedding(gc.data<float>(), pos.data<int64_t>(), pos_batch, B, H, T, D, theta,
                              true, dx.data<float>());
    return std::vector<Tensor>{dx};
  });
  return out;
}

}  // namespace

Tensor rotary_embedding(const Tensor& x, const Tensor& positions, double theta) {
  LMF_CHECK(x.defined() && positions.defined(), ValueError,
            "rotary_embedding: x and positions must be defined");
  LMF_CHECK(is_floating(x.dtype()), DTypeError, "rotary_embedding: x must be floating, got {}",
            x.describe());
  LMF_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, ShapeError,
            "rotary_embedding: x must be [B, H, T, D] with D even, got {}", x.describe());
  LMF_CHECK(!is_floating(positions.dtype()) && positions.dtype() != DType::boolean, DTypeError,
            "rotary_embedding: positions must be integer, got {} (x {})", positions.describe(),
            x.describe());
  const int64_t B = x.size(0), T = x.size(2);
  const bool flat = positions.dim() == 1 && positions.size(0) == T;
  const bool batched = positions.dim() == 2 && positions.size(0) == B && positions.size(1) == T;
  LMF_CHECK(flat || batched, ShapeError,
            "rotary_embedding: positions must be [T] = [{}] or [B, T] = [{}, {}], got {} (x {})", T,
            B, T, positions.describe(), x.describe());
  LMF_CHECK(theta > 0.0, ValueError, "rotary_embedding: theta={} must be positive", theta);
  const Tensor pos = positions.to(DType::i64).contiguous();
  const int64_t pos_batch = flat ? 1 : B;
  if (x.dtype() == DType::f32) return rope_f32(x, pos, pos_batch, theta);
  return rope_f32(x.to(DType::f32), pos, pos_batch, theta).to(x.dtype());
}

Tensor sinusoidal_position_encoding(int64_t length, int64_t dim) {
  LMF_CHECK(length >= 0 && dim >= 0, ShapeError,
            "sinusoidal_position_encoding: length {} and dim {} must be non-negative", length, dim);
  Tensor out = Tensor::empty({length, dim});
  kernels::sinusoidal_position_encoding(length, dim, out.data<float>());
  return out;
}

}  // namespace lmf
