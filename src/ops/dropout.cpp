// Inverted dropout. The keep-mask is drawn from a counter-based hash seeded by one draw from the
// generator, and kept for the backward pass.
#include "kernels/cpu/random.h"
#include "lmforge/ops/ops.h"

namespace lmf {

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  LMF_CHECK(x.defined(), ValueError, "dropout: x is an undefined tensor");
  LMF_CHECK(p >= 0.0 && p < 1.0, ValueError, "dropout: p={} must be in [0, 1)", p);
  if (!training || p == 0.0) return x;
  LMF_CHECK(is_floating(x.dtype()), DTypeError, "dropout: x must be floating point, got {}",
            x.describe());
  if (x.dtype() != DType::f32) return dropout(x.to(DType::f32), p, training, gen).to(x.dtype());
  Generator& g = gen ? *gen : default_generator();
  const uint64_t seed = g.next_u64();
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  Tensor xc = x.detach().contiguous();
  Tensor keep = Tensor::empty(x.shape(), DType::boolean);
  Tensor out = Tensor::empty(x.shape(), DType::f32);
  cpu::random_dropout_forward(xc.data<float>(), xc.numel(), p, scale, seed, keep.data<bool>(),
                              out.data<float>());
  record(out, "dropout", {x}, [keep, scale](const Tensor& grad) {
    Tensor gc = grad.contiguous();
    Tensor gx = Tensor::empty(gc.shape(), DType::f32);
    cpu::random_dropout_backward(gc.data<float>(), keep.data<bool>(), gc.numel(), scale,
                                 gx.data<float>());
    return std::vector<Tensor>{gx};
  });
  return out;
}

}  // namespace lmf
