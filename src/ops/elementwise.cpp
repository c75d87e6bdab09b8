// Elementwise ops: broadcasting binary arithmetic, scalar ops and unary math, with backward.
#include "kernels/cpu/elementwise.h"

#include <array>

#include "core/strided.h"
#include "lmforge/ops/ops.h"

namespace lmf {

namespace {

using kernels::BinOp;
using kernels::UnOp;

bool is_f32_or_bf16(DType d) {
  return d == DType::f32 || d == DType::bf16;
}

void check_float(const char* op, const Tensor& a) {
  LMF_CHECK(a.defined(), ValueError, "{}: input is an undefined tensor", op);
  LMF_CHECK(is_f32_or_bf16(a.dtype()), DTypeError,
            "{}: got a {} tensor {}; supported dtypes are f32 and bf16 (convert with .to())", op,
            dtype_name(a.dtype()), a.describe());
}

// Calls fn(T{}) for the f32 and bf16 storage types.
template <class Fn>
void visit_float(DType d, Fn&& fn) {
  if (d == DType::bf16)
    fn(bf16_t{});
  else
    fn(float{});
}

// Sums a gradient down to `shape` (undoing broadcasting) with the parallel double reduction.
Tensor reduce_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const int64_t lead = g.dim() - static_cast<int64_t>(shape.size());
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < g.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1)) dims.push_back(d);
  if (dims.empty()) return g.reshape(shape);
  return sum(g, dims, true).reshape(shape);
}

// Merges adjacent dims that are laid out contiguously in every operand, and drops size-1 dims.
template <size_t K>
void coalesce(Shape& shape, std::array<Shape, K>& st) {
  Shape s;
  std::array<Shape, K> t;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !s.empty();
    for (size_t k = 0; k < K && merge; ++k) merge = t[k].back() == st[k][d] * shape[d];
    if (merge) {
      s.back() *= shape[d];
      for (size_t k = 0; k < K; ++k) t[k].back() = st[k][d];
    } else {
      s.push_back(shape[d]);
      for (size_t k = 0; k < K; ++k) t[k].push_back(st[k][d]);
    }
  }
  shape = std::move(s);
  st = std::move(t);
}

// True when `small` (leading 1s stripped) equals the trailing dims of `full`.
bool is_trailing(const Shape& small, const Shape& full) {
  size_t i = 0;
  while (i < small.size() && small[i] == 1) ++i;
  const size_t n = small.size() - i;
  if (n > full.size()) return false;
  return std::equal(small.begin() + i, small.end(), full.end() - n);
}

template <class T>
void binary_strided(BinOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  Shape shape = out.shape();
  std::array<Shape, 3> st{detail::broadcast_strides(a, shape), detail::broadcast_strides(b, shape),
                          out.strides()};
  coalesce(shape, st);
  const T* pa = static_cast<const T*>(a.data_ptr());
  const T* pb = static_cast<const T*>(b.data_ptr());
  T* po = static_cast<T*>(out.data_ptr());
  if (shape.size() <= 1) {
    const int64_t n = shape.empty() ? 1 : shape[0];
    const int64_t s0 = shape.empty() ? 0 : st[0][0], s1 = shape.empty() ? 0 : st[1][0];
    const int64_t s2 = shape.empty() ? 0 : st[2][0];
    kernels::binary_run(op, pa, s0, pb, s1, po, s2, n);
    return;
  }
  // Split the outermost dim over threads; each walks the rest run by run.
  const int64_t d0 = shape[0];
  const Shape rest(shape.begin() + 1, shape.end());
  std::array<Shape, 3> rs;
  for (size_t k = 0; k < 3; ++k) rs[k] = Shape(st[k].begin() + 1, st[k].end());
#pragma omp parallel for if (out.numel() > kernels::kParallelGrain) schedule(static)
  for (int64_t i = 0; i < d0; ++i) {
    const T* ai = pa + i * st[0][0];
    const T* bi = pb + i * st[1][0];
    T* oi = po + i * st[2][0];
    detail::for_each_run<3>(rest, {&rs[0], &rs[1], &rs[2]}, [&](auto off, int64_t n, auto in) {
      kernels::binary_run(op, ai + off[0], in[0], bi + off[1], in[1], oi + off[2], in[2], n);
    });
  }
}

// out = a op b with broadcasting; picks the same-shape, scalar or row fast path when it applies.
Tensor binary_forward(BinOp op, const Tensor& a, const Tensor& b, const Shape& out_shape,
                      DType dt) {
  Tensor out = Tensor::empty(out_shape, dt);
  const int64_t n = out.numel();
  visit_float(dt, [&](auto z) {
    using T = decltype(z);
    T* po = static_cast<T*>(out.data_ptr());
    auto ptr = [](const Tensor& t) { return static_cast<const T*>(t.data_ptr()); };
    if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
      kernels::binary_same(op, ptr(a), ptr(b), po, n);
    } else if (b.numel() == 1 && a.numel() == n && a.is_contiguous()) {
      kernels::binary_scalar(op, ptr(a), static_cast<float>(b.item()), po, n, false);
    } else if (a.numel() == 1 && b.numel() == n && b.is_contiguous()) {
      kernels::binary_scalar(op, ptr(b), static_cast<float>(a.item()), po, n, true);
    } else if (a.numel() == n && a.is_contiguous() && b.is_contiguous() &&
               is_trailing(b.shape(), out_shape) && b.numel() > 0) {
      kernels::binary_row(op, ptr(a), ptr(b), po, n / b.numel(), b.numel(), false);
    } else if (b.numel() == n && b.is_contiguous() && a.is_contiguous() &&
               is_trailing(a.shape(), out_shape) && a.numel() > 0) {
      kernels::binary_row(op, ptr(b), ptr(a), po, n / a.numel(), a.numel(), true);
    } else if (n > 0) {
      binary_strided<T>(op, a, b, out);
    }
  });
  return out;
}

const char* binop_name(BinOp op) {
  switch (op) {
    case BinOp::add:
      return "add";
    case BinOp::sub:
      return "sub";
    case BinOp::mul:
      return "mul";
    case BinOp::div:
      return "div";
  }
  return "binary";
}

Tensor binary(BinOp op, const Tensor& a, const Tensor& b) {
  const char* name = binop_name(op);
  check_float(name, a);
  check_float(name, b);
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  const DType dt = a.dtype() == DType::bf16 && b.dtype() == DType::bf16 ? DType::bf16 : DType::f32;
  const Tensor ac = a.detach().to(dt), bc = b.detach().to(dt);
  Tensor out = binary_forward(op, ac, bc, out_shape, dt);
  if (!needs_grad({a, b})) return out;
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  const Shape as = a.shape(), bs = b.shape();
  const DType adt = a.dtype(), bdt = b.dtype();
  Tensor od = out.detach();
  record(out, name, {a, b}, [=](const Tensor& g) {
    Tensor da, db;
    switch (op) {
      case BinOp::add:
        if (ga) da = reduce_to(g, as);
        if (gb) db = reduce_to(g, bs);
        break;
      case BinOp::sub:
        if (ga) da = reduce_to(g, as);
        if (gb) db = reduce_to(neg(g), bs);
        break;
      case BinOp::mul:
        if (ga) da = reduce_to(mul(g, bc), as);
        if (gb) db = reduce_to(mul(g, ac), bs);
        break;
      case BinOp::div:
        if (ga) da = reduce_to(div(g, bc), as);
        if (gb) db = reduce_to(neg(div(mul(g, od), bc)), bs);
        break;
    }
    return std::vector<Tensor>{da.defined() ? da.to(adt) : da, db.defined() ? db.to(bdt) : db};
  });
  return out;
}

// y = f(a) elementwise; the backward uses the saved input and output.
Tensor unary(UnOp op, const char* name, const Tensor& a, float p = 0.f) {
  check_float(name, a);
  const Tensor x = a.detach().contiguous();
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  visit_float(a.dtype(), [&](auto z) {
    using T = decltype(z);
    kernels::unary(op, static_cast<const T*>(x.data_ptr()), static_cast<T*>(y.data_ptr()),
                   y.numel(), p);
  });
  if (!needs_grad({a})) return y;
  Tensor yd = y.detach();
  record(y, name, {a}, [op, x, yd, p](const Tensor& g) {
    const Tensor gc = g.to(x.dtype()).contiguous();
    Tensor gx = Tensor::empty(x.shape(), x.dtype());
    visit_float(x.dtype(), [&](auto z) {
      using T = decltype(z);
      kernels::unary_backward(
          op, static_cast<const T*>(x.data_ptr()), static_cast<const T*>(yd.data_ptr()),
          static_cast<const T*>(gc.data_ptr()), static_cast<T*>(gx.data_ptr()), gx.numel(), p);
    });
    return std::vector<Tensor>{gx};
  });
  return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary(BinOp::add, a, b);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary(BinOp::sub, a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary(BinOp::mul, a, b);
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary(BinOp::div, a, b);
}
Tensor add(const Tensor& a, double s) {
  return unary(UnOp::add_scalar, "add", a, static_cast<float>(s));
}
Tensor mul(const Tensor& a, double s) {
  return unary(UnOp::mul_scalar, "mul", a, static_cast<float>(s));
}
Tensor neg(const Tensor& a) {
  return unary(UnOp::neg, "neg", a);
}
Tensor exp(const Tensor& a) {
  return unary(UnOp::exp, "exp", a);
}
Tensor log(const Tensor& a) {
  return unary(UnOp::log, "log", a);
}
Tensor sqrt(const Tensor& a) {
  return unary(UnOp::sqrt, "sqrt", a);
}
Tensor pow(const Tensor& a, double exponent) {
  return unary(UnOp::pow, "pow", a, static_cast<float>(exponent));
}
Tensor relu(const Tensor& a) {
  return unary(UnOp::relu, "relu", a);
}
Tensor gelu(const Tensor& a, bool tanh_approx) {
  return tanh_approx ? unary(UnOp::gelu_tanh, "gelu_tanh", a) : unary(UnOp::gelu, "gelu", a);
}
Tensor silu(const Tensor& a) {
  return unary(UnOp::silu, "silu", a);
}
Tensor tanh(const Tensor& a) {
  return unary(UnOp::tanh, "tanh", a);
}
Tensor sigmoid(const Tensor& a) {
  return unary(UnOp::sigmoid, "sigmoid", a);
}

Tensor activation(const Tensor& a, Activation act) {
  switch (act) {
    case Activation::none:
      return a;
    case Activation::relu:
      return relu(a);
    case Activation::gelu:
      return gelu(a, false);
    case Activation::gelu_tanh:
      return gelu(a, true);
    case Activation::silu:
      return silu(a);
    case Activation::tanh:
      return tanh(a);
  }
  fail<ValueError>("activation: unknown Activation value {}", static_cast<int>(act));
}

}  // namespace lmf
