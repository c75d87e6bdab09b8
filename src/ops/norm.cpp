// layer_norm and rms_norm over the last dim, f32 and bf16, with backward for x, weight and bias.
#include "kernels/cpu/norm.h"

#include "lmforge/ops/ops.h"

namespace lmf {

namespace {

void check_input(const char* op, const Tensor& x) {
  LMF_CHECK(x.defined(), ValueError, "{}: input is an undefined tensor", op);
  LMF_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::bf16, DTypeError,
            "{}: got {}; supported dtypes are f32 and bf16 (convert with .to())", op, x.describe());
  LMF_CHECK(x.dim() >= 1, ShapeError, "{}: input {} needs at least one dim", op, x.describe());
}

// Weight/bias must be [H]; returned contiguous in x's dtype (differentiably converted).
Tensor check_param(const char* op, const char* what, const Tensor& p, const Tensor& x) {
  if (!p.defined()) return p;
  const int64_t h = x.shape().back();
  LMF_CHECK(p.dim() == 1 && p.shape()[0] == h, ShapeError,
            "{}: {} has shape {} but the input {} normalises a last dim of {}; expected [{}]", op,
            what, shape_str(p.shape()), x.describe(), h, h);
  LMF_CHECK(is_floating(p.dtype()), DTypeError, "{}: {} is {}; expected a floating dtype", op, what,
            p.describe());
  return p.to(x.dtype()).contiguous();
}

template <class T>
const T* ptr(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.data_ptr()) : nullptr;
}

template <class Fn>
void visit_float(DType d, Fn&& fn) {
  if (d == DType::bf16)
    fn(bf16_t{});
  else
    fn(float{});
}

}  // namespace

namespace {
// The checked forward of layer_norm(x_in + res) (res null: of x_in alone): weight and bias
// converted to x's dtype (w_in, b_in, still in the graph), what the backward keeps (detached x, w,
// b), the output and the per-row statistics.
struct LayerNormForward {
  Tensor w_in, b_in, x, w, b, y, mean, rstd;
  int64_t rows = 0, cols = 0;
};
LayerNormForward layer_norm_forward(const Tensor& x_in, const Tensor* res, const Tensor& weight,
                                    const Tensor& bias, double eps) {
  check_input("layer_norm", x_in);
  LayerNormForward f;
  f.w_in = check_param("layer_norm", "weight", weight, x_in);
  f.b_in = check_param("layer_norm", "bias", bias, x_in);
  f.w = f.w_in.defined() ? f.w_in.detach() : f.w_in;
  f.b = f.b_in.defined() ? f.b_in.detach() : f.b_in;
  f.cols = x_in.shape().back(), f.rows = f.cols == 0 ? 0 : x_in.numel() / f.cols;
  f.x = x_in.detach().contiguous();
  const Tensor r = res ? res->detach().contiguous() : Tensor();
  f.y = Tensor::empty(f.x.shape(), f.x.dtype());
  f.mean = Tensor::empty({f.rows}), f.rstd = Tensor::empty({f.rows});
  visit_float(f.x.dtype(), [&](auto z) {
    using T = decltype(z);
    T* y = static_cast<T*>(f.y.data_ptr());
    if (res)
      kernels::add_layer_norm_fwd(ptr<T>(f.x), ptr<T>(r), ptr<T>(f.w), ptr<T>(f.b), y,
                                  f.mean.data<float>(), f.rstd.data<float>(), f.rows, f.cols,
                                  static_cast<float>(eps));
    else
      kernels::layer_norm_fwd(ptr<T>(f.x), ptr<T>(f.w), ptr<T>(f.b), y, f.mean.data<float>(),
                              f.rstd.data<float>(), f.rows, f.cols, static_cast<float>(eps));
  });
  return f;
}
}  // namespace

Tensor layer_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, double eps) {
  LayerNormForward f = layer_norm_forward(x_in, nullptr, weight, bias, eps);
  if (!needs_grad({x_in, f.w_in, f.b_in})) return f.y;
  const bool gw = f.w_in.defined() && f.w_in.requires_grad();
  const bool gb = f.b_in.defined() && f.b_in.requires_grad();
  record(f.y, "layer_norm", {x_in, f.w_in, f.b_in},
         [x = f.x, w = f.w, mean = f.mean, rstd = f.rstd, rows = f.rows, cols = f.cols, gw,
          gb](const Tensor& g) {
           const Tensor gc = g.to(x.dtype()).contiguous();
           Tensor gx = Tensor::empty(x.shape(), x.dtype());
           Tensor dw = gw ? Tensor::empty({cols}) : Tensor();
           Tensor db = gb ? Tensor::empty({cols}) : Tensor();
           visit_float(x.dtype(), [&](auto z) {
             using T = decltype(z);
             kernels::layer_norm_bwd(ptr<T>(x), ptr<T>(w), mean.data<float>(), rstd.data<float>(),
                                     ptr<T>(gc), static_cast<T*>(gx.data_ptr()),
                                     gw ? dw.data<float>() : nullptr,
                                     gb ? db.data<float>() : nullptr, rows, cols);
           });
           if (gw) dw = dw.to(x.dtype());
           if (gb) db = db.to(x.dtype());
           return std::vector<Tensor>{gx, dw, db};
         });
  return f.y;
}

Tensor add_layer_norm(const Tensor& x_in, const Tensor& res_in, const Tensor& weight,
                      const Tensor& bias, double eps) {
  if (!x_in.defined() || !res_in.defined() || x_in.shape() != res_in.shape() ||
      x_in.dtype() != res_in.dtype() || needs_grad({x_in, res_in, weight, bias}))
    return layer_norm(add(x_in, res_in), weight, bias, eps);
  return layer_norm_forward(x_in, &res_in, weight, bias, eps).y;
}

Tensor rms_norm(const Tensor& x_in, const Tensor& weight, double eps) {
  check_input("rms_norm", x_in);
  const Tensor w = check_param("rms_norm", "weight", weight, x_in);
  const int64_t cols = x_in.shape().back(), rows = cols == 0 ? 0 : x_in.numel() / cols;
  const Tensor x = x_in.detach().contiguous();
  const Tensor wd = w.defined() ? w.detach() : w;
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  Tensor rstd = Tensor::empty({rows});
  visit_float(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kernels::rms_norm_fwd(ptr<T>(x), ptr<T>(wd), static_cast<T*>(y.data_ptr()), rstd.data<float>(),
                          rows, cols, static_cast<float>(eps));
  });
  if (!needs_grad({x_in, w})) return y;
  const bool gw = w.defined() && w.requires_grad();
  record(y, "rms_norm", {x_in, w}, [=](const Tensor& g) {
    const Tensor gc = g.to(x.dtype()).contiguous();
    Tensor gx = Tensor::empty(x.shape(), x.dtype());
    Tensor dw = gw ? Tensor::empty({cols}) : Tensor();
    visit_float(x.dtype(), [&](auto z) {
      using T = decltype(z);
      kernels::rms_norm_bwd(ptr<T>(x), ptr<T>(wd), rstd.data<float>(), ptr<T>(gc),
                            static_cast<T*>(gx.data_ptr()), gw ? dw.data<float>() : nullptr, rows,
                            cols);
    });
    if (gw) dw = dw.to(x.dtype());
    return std::vector<Tensor>{gx, dw};
  });
  return y;
}

Tensor add_rms_norm(const Tensor& x_in, const Tensor& res_in, const Tensor& weight, double eps,
                    Tensor* sum) {
  LMF_CHECK(sum, ValueError, "add_rms_norm: sum must not be null");
  if (!x_in.defined() || !res_in.defined() || x_in.shape() != res_in.shape() ||
      x_in.dtype() != res_in.dtype() || needs_grad({x_in, res_in, weight})) {
    *sum = add(x_in, res_in);
    return rms_norm(*sum, weight, eps);
  }
  check_input("add_rms_norm", x_in);
  const Tensor w = check_param("add_rms_norm", "weight", weight, x_in);
  const int64_t cols = x_in.shape().back(), rows = cols == 0 ? 0 : x_in.numel() / cols;
  const Tensor x = x_in.contiguous(), res = res_in.contiguous();
  const Tensor wd = w.defined() ? w.detach() : w;
  Tensor h = Tensor::empty(x.shape(), x.dtype());
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  visit_float(x.dtype(), [&](auto z) {
    using T = decltype(z);
    kernels::add_rms_norm_fwd(ptr<T>(x), ptr<T>(res), static_cast<T*>(h.data_ptr()), ptr<T>(wd),
                              static_cast<T*>(y.data_ptr()), rows, cols, static_cast<float>(eps));
  });
  *sum = h;
  return y;
}

}  // namespace lmf
