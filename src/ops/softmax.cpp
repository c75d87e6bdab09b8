// softmax / log_softmax over any dim (last dim is the fast path), f32 and bf16, with backward.
#include "kernels/cpu/softmax.h"

#include "lmforge/ops/ops.h"

namespace lmf {

namespace {

Tensor softmax_impl(const char* op, const Tensor& a, int64_t dim, bool log) {
  LMF_CHECK(a.defined(), ValueError, "{}: input is an undefined tensor", op);
  LMF_CHECK(a.dtype() == DType::f32 || a.dtype() == DType::bf16, DTypeError,
            "{}: got {}; supported dtypes are f32 and bf16 (convert with .to())", op, a.describe());
  const int64_t d = a.dim() == 0 ? 0 : wrap_dim(dim, a.dim(), op);
  int64_t outer = 1, red = a.dim() == 0 ? 1 : a.shape()[d], inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= a.shape()[i];
  for (int64_t i = d + 1; i < a.dim(); ++i) inner *= a.shape()[i];
  const Tensor x = a.detach().contiguous();
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  if (y.numel() > 0) {
    if (a.dtype() == DType::bf16)
      kernels::softmax_fwd(static_cast<const bf16_t*>(x.data_ptr()),
                           static_cast<bf16_t*>(y.data_ptr()), outer, red, inner, log);
    else
      kernels::softmax_fwd(x.data<float>(), y.data<float>(), outer, red, inner, log);
  }
  if (!needs_grad({a})) return y;
  const Tensor yd = y.detach();
  record(y, op, {a}, [=](const Tensor& g) {
    const Tensor gc = g.to(yd.dtype()).contiguous();
    Tensor gx = Tensor::empty(yd.shape(), yd.dtype());
    if (gx.numel() == 0) return std::vector<Tensor>{gx};
    if (yd.dtype() == DType::bf16)
      kernels::softmax_bwd(static_cast<const bf16_t*>(yd.data_ptr()),
                           static_cast<const bf16_t*>(gc.data_ptr()),
                           static_cast<bf16_t*>(gx.data_ptr()), outer, red, inner, log);
    else
      kernels::softmax_bwd(yd.data<float>(), gc.data<float>(), gx.data<float>(), outer, red, inner,
                           log);
    return std::vector<Tensor>{gx};
  });
  return y;
}

}  // namespace

Tensor softmax(const Tensor& a, int64_t dim) {
  return softmax_impl("softmax", a, dim, false);
}
Tensor log_softmax(const Tensor& a, int64_t dim) {
  return softmax_impl("log_softmax", a, dim, true);
}

}  // namespace lmf
