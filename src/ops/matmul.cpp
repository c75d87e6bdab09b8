// matmul and linear: checks, torch.matmul batch broadcasting, strided (copy-free) transposes, and
// backward passes, all on the cached oneDNN gemm kernel.
#include <algorithm>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/gemm.h"
#include "lmforge/ops/ops.h"

namespace lmf {

namespace {

cpu::GemmAct gemm_act(Activation act) {
  switch (act) {
    case Activation::none:
      return cpu::GemmAct::none;
    case Activation::relu:
      return cpu::GemmAct::relu;
    case Activation::gelu:
      return cpu::GemmAct::gelu_erf;
    case Activation::gelu_tanh:
      return cpu::GemmAct::gelu_tanh;
    case Activation::silu:
      return cpu::GemmAct::silu;
    case Activation::tanh:
      return cpu::GemmAct::tanh;
  }
  return cpu::GemmAct::none;
}

// True when the last two dims form a plain row- or column-major matrix oneDNN reads in place.
bool plain_matrix(const Tensor& t) {
  const int64_t rows = t.size(-2), cols = t.size(-1);
  const int64_t rs = t.strides()[t.dim() - 2], cs = t.strides()[t.dim() - 1];
  const bool row_major = (cols == 1 || cs == 1) && (rows == 1 || rs >= cols);
  const bool col_major = (rows == 1 || rs == 1) && (cols == 1 || cs >= rows);
  return row_major || col_major;
}

// Strides of t's batch dims (all but the last two) right-aligned to `batch`; 0 where broadcast.
std::vector<int64_t> batch_strides(const Tensor& t, const Shape& batch) {
  std::vector<int64_t> st(batch.size(), 0);
  const int64_t tb = t.dim() - 2, lead = static_cast<int64_t>(batch.size()) - tb;
  for (int64_t i = 0; i < tb; ++i)
    if (t.size(i) != 1) st[lead + i] = t.strides()[i];
  return st;
}

// Drops batch dims of size 1 and merges neighbours that are one dim for all three operands, so
// most calls reach oneDNN with zero or one batch dim.
void simplify_batch(cpu::GemmDesc& d) {
  std::vector<int64_t> b, as, bs, cs;
  for (size_t i = 0; i < d.batch.size(); ++i) {
    if (d.batch[i] == 1) continue;
    const auto mergeable = [&](const std::vector<int64_t>& src, const std::vector<int64_t>& dst) {
      return dst.back() == src[i] * d.batch[i];
    };
    if (!b.empty() && mergeable(d.a_batch_strides, as) && mergeable(d.b_batch_strides, bs) &&
        mergeable(d.c_batch_strides, cs)) {
      b.back() *= d.batch[i];
      as.back() = d.a_batch_strides[i], bs.back() = d.b_batch_strides[i];
      cs.back() = d.c_batch_strides[i];
      continue;
    }
    b.push_back(d.batch[i]);
    as.push_back(d.a_batch_strides[i]), bs.push_back(d.b_batch_strides[i]);
    cs.push_back(d.c_batch_strides[i]);
  }
  d.batch = std::move(b);
  d.a_batch_strides = std::move(as), d.b_batch_strides = std::move(bs);
  d.c_batch_strides = std::move(cs);
}

// op(a) · op(b) (+ bias, act) for checked operands of rank >= 2; records nothing.
Tensor gemm_raw(Tensor a, Tensor b, bool ta, bool tb, Tensor bias = Tensor(),
                cpu::GemmAct act = cpu::GemmAct::none) {
  a = a.detach(), b = b.detach();
  if (!plain_matrix(a)) a = a.contiguous();
  if (!plain_matrix(b)) b = b.contiguous();
  const Shape a_batch(a.shape().begin(), a.shape().end() - 2);
  const Shape b_batch(b.shape().begin(), b.shape().end() - 2);
  Shape out_shape = broadcast_shapes(a_batch, b_batch, "matmul");
  LMF_CHECK(out_shape.size() <= 10, ShapeError, "matmul: {} and {} have more than 10 batch dims",
            a.describe(), b.describe());
  cpu::GemmDesc d;
  d.batch = out_shape;
  d.m = ta ? a.size(-1) : a.size(-2);
  d.k = ta ? a.size(-2) : a.size(-1);
  d.n = tb ? b.size(-2) : b.size(-1);
  out_shape.push_back(d.m);
  out_shape.push_back(d.n);
  Tensor out = Tensor::empty(out_shape, a.dtype());
  d.a_batch_strides = batch_strides(a, d.batch);
  d.b_batch_strides = batch_strides(b, d.batch);
  d.c_batch_strides = batch_strides(out, d.batch);
  const int64_t ra = a.dim(), rb = b.dim();
  d.a_rs = a.strides()[ra - (ta ? 1 : 2)], d.a_cs = a.strides()[ra - (ta ? 2 : 1)];
  d.b_rs = b.strides()[rb - (tb ? 1 : 2)], d.b_cs = b.strides()[rb - (tb ? 2 : 1)];
  d.c_rs = d.n;
  d.ab_type = d.c_type = a.dtype();
  d.act = act;
  if (bias.defined()) {
    bias = bias.detach().contiguous();
    d.has_bias = true;
    d.bias_type = bias.dtype();
  }
  simplify_batch(d);
  if (cpu::gemm_swap_pays(d)) {
    const cpu::GemmDesc s = cpu::gemm_swapped(d);
    Tensor t = Tensor::empty({d.n, d.m}, a.dtype());
    cpu::gemm(s, b.data_ptr(), a.data_ptr(), nullptr, t.data_ptr());
    cpu::transpose_f32(t.data<float>(), d.n, d.m, out.data<float>(), d.c_rs);
    return out;
  }
  cpu::gemm(d, a.data_ptr(), b.data_ptr(), d.has_bias ? bias.data_ptr() : nullptr, out.data_ptr());
  return out;
}

std::string describe_t(const Tensor& t, bool trans) {
  return t.describe() + (trans ? " (transposed)" : "");
}

// Differentiable op(a) · op(b) for operands of rank >= 2 whose shapes have been checked.
Tensor matmul_nd(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  Tensor out = gemm_raw(a, b, ta, tb);
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  record(out, "matmul", {a, b},
         [a = a.detach(), b = b.detach(), ta, tb, need_a, need_b](const Tensor& g) {
           Tensor ga, gb;
           if (need_a)
             ga = sum_to(ta ? gemm_raw(b, g, tb, true) : gemm_raw(g, b, false, !tb), a.shape());
           if (need_b)
             gb = sum_to(tb ? gemm_raw(g, a, true, ta) : gemm_raw(a, g, !ta, false), b.shape());
           return std::vector<Tensor>{ga, gb};
         });
  return out;
}

void check_float_pair(const char* op, const Tensor& a, const Tensor& b) {
  LMF_CHECK(a.defined() && b.defined(), ValueError, "{}: an operand is an undefined tensor", op);
  LMF_CHECK(a.dtype() == b.dtype(), DTypeError, "{}: operands {} and {} have different dtypes", op,
            a.describe(), b.describe());
  LMF_CHECK(a.dtype() == DType::f32 || a.dtype() == DType::bf16, DTypeError,
            "{}: operands {} and {} must be f32 or bf16", op, a.describe(), b.describe());
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  check_float_pair("matmul", a, b);
  LMF_CHECK(a.dim() >= 1 && b.dim() >= 1, ShapeError,
            "matmul: operands must have at least one dim, got {} and {}", a.describe(),
            b.describe());
  // torch.matmul: a vector operand becomes a one-row (a) or one-column (b) matrix, dropped after.
  const bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
  const bool ta = trans_a && !a_vec, tb = trans_b && !b_vec;
  Tensor a2 = a_vec ? a.unsqueeze(0) : a;
  Tensor b2 = b_vec ? b.unsqueeze(1) : b;
  const int64_t k_a = ta ? a2.size(-2) : a2.size(-1);
  const int64_t k_b = tb ? b2.size(-1) : b2.size(-2);
  LMF_CHECK(k_a == k_b, ShapeError, "matmul: cannot multiply {} by {}: inner dims {} and {} differ",
            describe_t(a, ta), describe_t(b, tb), k_a, k_b);
  const Shape a_batch(a2.shape().begin(), a2.shape().end() - 2);
  const Shape b_batch(b2.shape().begin(), b2.shape().end() - 2);
  for (size_t i = 1; i <= std::min(a_batch.size(), b_batch.size()); ++i) {
    const int64_t x = a_batch[a_batch.size() - i], y = b_batch[b_batch.size() - i];
    LMF_CHECK(x == y || x == 1 || y == 1, ShapeError,
              "matmul: batch dims of {} and {} do not broadcast", a.describe(), b.describe());
  }
  Tensor out;
  if (b2.dim() == 2 && a2.dim() > 2 && !ta) {
    // One 2-D gemm over all rows of a: a single oneDNN call, and dB needs no batch reduction.
    const int64_t m = a2.size(-2);
    int64_t rows = 1;
    for (int64_t s : a_batch) rows *= s;
    Shape out_shape = a_batch;
    out_shape.push_back(m);
    out_shape.push_back(tb ? b2.size(0) : b2.size(1));
    out = matmul_nd(a2.reshape({rows * m, k_a}), b2, false, tb).view(out_shape);
  } else {
    out = matmul_nd(a2, b2, ta, tb);
  }
  if (b_vec) out = out.squeeze(-1);
  if (a_vec) out = out.squeeze(out.dim() - (b_vec ? 1 : 2));
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, Activation act) {
  check_float_pair("linear", x, w);
  LMF_CHECK(w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1), ShapeError,
            "linear: input {} does not fit weight {} (want input [..., in], weight [out, in])",
            x.describe(), w.describe());
  const int64_t in = w.size(1), out_features = w.size(0);
  if (b.defined()) {
    LMF_CHECK(b.dtype() == x.dtype(), DTypeError, "linear: bias {} has dtype other than input {}",
              b.describe(), x.describe());
    LMF_CHECK(b.dim() == 1 && b.size(0) == out_features, ShapeError,
              "linear: bias {} does not match weight {} (want bias [{}])", b.describe(),
              w.describe(), out_features);
  }
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  int64_t rows = 1;
  for (int64_t i = 0; i + 1 < x.dim(); ++i) rows *= x.size(i);
  Tensor x2 = x.dim() == 2 ? x : x.reshape({rows, in});
  const cpu::GemmAct gact = gemm_act(act);
  if (!needs_grad({x, w, b})) return gemm_raw(x2, w, false, true, b, gact).view(out_shape);

  // Training: keep the pre-activation z for the derivative, activate it separately.
  Tensor z = gemm_raw(x2, w, false, true, b);
  Tensor y = z;
  if (gact != cpu::GemmAct::none) {
    y = Tensor::empty(z.shape(), z.dtype());
    cpu::activation_forward(gact, z.dtype(), z.data_ptr(), y.data_ptr(), z.numel());
  }
  const bool need_x = x.requires_grad(), need_w = w.requires_grad();
  const bool need_b = b.defined() && b.requires_grad();
  record(y, "linear", {x2, w, b},
         [x2 = x2.detach(), w = w.detach(), z, gact, need_x, need_w, need_b](const Tensor& g) {
           Tensor dz = g.contiguous();
           if (gact != cpu::GemmAct::none) {
             Tensor d = Tensor::empty(z.shape(), z.dtype());
             Tensor gc = dz.to(z.dtype()).contiguous();
             cpu::activation_backward(gact, z.dtype(), z.data_ptr(), gc.data_ptr(), d.data_ptr(),
                                      z.numel());
             dz = d;
           }
           Tensor dx, dw, db;
           if (need_x) dx = gemm_raw(dz, w, false, false);
           if (need_w) dw = gemm_raw(dz, x2, true, false);
           if (need_b) {
             // Column sums as a ones-row gemm: parallel, accumulated in f32.
             Tensor ones = Tensor::ones({1, dz.size(0)}, dz.dtype());
             db = gemm_raw(ones, dz, false, false).view({dz.size(1)});
           }
           return std::vector<Tensor>{dx, dw, db};
         });
  return y.view(out_shape);
}

int64_t packed_linear_max_rows() {
  return kernels::cpu_has_avx512() ? cpu::packed_gemm_max_m() : 0;
}

bool packed_linear_takes(const Tensor& x, std::initializer_list<Tensor> params) {
  if (!x.defined() || x.dtype() != DType::f32 || x.dim() < 1 || x.numel() == 0 ||
      x.numel() / x.size(-1) > packed_linear_max_rows() || needs_grad({x}))
    return false;
  return !needs_grad(params);
}

Tensor PackedLinearWeight::weight() const {
  return sources_.size() == 1 ? sources_[0] : concat(sources_, 0);
}

bool PackedLinearWeight::made_from(std::initializer_list<Tensor> ws) const {
  if (ws.size() != sources_.size()) return false;
  size_t i = 0;
  for (const Tensor& w : ws) {
    const Tensor& src = sources_[i++];
    if (w.data_ptr() != src.data_ptr() || w.shape() != src.shape()) return false;
  }
  return true;
}

namespace {
// A packed weight's f32 buffer: 64-byte aligned, from the huge-page pools
// (Storage::allocate_pooled).
Tensor packed_buffer(int64_t floats) {
  return Tensor::from_blob(Storage::allocate_pooled(static_cast<size_t>(floats) * 4), {floats},
                           DType::f32);
}

// Packing copies a source in slices of this many rows (whole panels) and releases each slice's
// pages right after when the source is a file mapping (release_mapped_rows): the peak is one
// slice above the packed copy.
constexpr int64_t kPackSliceRows = 32 * cpu::kPackPanel;

// Rows [r, r + n) of the contiguous f32 source `c` [rows, k] leave resident memory when `c` is
// read in place from a checkpoint file.
void release_mapped_rows(const Tensor& c, int64_t r, int64_t n) {
  if (c.storage() && c.storage()->file_mapped())
    Storage::release_pages(c.data<float>() + r * c.size(1), static_cast<size_t>(n * c.size(1)) * 4);
}
}  // namespace

std::shared_ptr<const PackedLinearWeight> pack_linear_weight(const Tensor& w) {
  return pack_linear_weights({w});
}

std::shared_ptr<const PackedLinearWeight> pack_linear_weights(const std::vector<Tensor>& ws) {
  LMF_CHECK(!ws.empty(), ValueError, "pack_linear_weights: no weights");
  int64_t out = 0;
  for (const Tensor& w : ws) {
    LMF_CHECK(w.defined() && w.dim() == 2 && w.size(1) == ws[0].size(1), ShapeError,
              "pack_linear_weights: want weights [out, {}], got {}", ws[0].size(1),
              w.defined() ? w.describe() : std::string("an undefined tensor"));
    if (w.dtype() != DType::f32) return nullptr;
    out += w.size(0);
  }
  if (packed_linear_max_rows() == 0) return nullptr;
  auto p = std::make_shared<PackedLinearWeight>();
  const int64_t k = ws[0].size(1);
  p->out_ = out, p->in_ = k;
  for (const Tensor& w : ws) p->sources_.push_back(w.detach());
  p->packed_ = packed_buffer(cpu::packed_floats(out, k));
  float* dst = p->packed_.data<float>();
  // Weights read in place from a checkpoint file need not stay resident beside their packed copy
  // (it would double a decoder's weight memory); inputs the packed kernel does not take read them
  // again from the page cache (see kPackSliceRows).
  const bool panel_aligned = std::all_of(
      ws.begin(), ws.end() - 1, [](const Tensor& w) { return w.size(0) % cpu::kPackPanel == 0; });
  if (!panel_aligned) {  // e.g. fused q/k/v of odd sizes: one concatenated temporary
    const Tensor all = p->weight().contiguous();
    cpu::pack_weight_f32(all.data<float>(), out, k, k, dst);
  }
  int64_t row0 = 0;
  for (const Tensor& w : ws) {
    const Tensor c = w.contiguous();
    for (int64_t r = 0; r < c.size(0); r += kPackSliceRows) {
      const int64_t n = std::min(kPackSliceRows, c.size(0) - r);
      // Rows row0 + r... start a panel, which sits at that row times k in the packed layout.
      if (panel_aligned)
        cpu::pack_weight_f32(c.data<float>() + r * k, n, k, k, dst + (row0 + r) * k);
      release_mapped_rows(c, r, n);
    }
    row0 += c.size(0);
  }
  return p;
}

std::shared_ptr<const PackedLinearWeight> pack_gated_linear_weights(const Tensor& gate,
                                                                    const Tensor& up) {
  LMF_CHECK(gate.defined() && up.defined() && gate.dim() == 2 && gate.shape() == up.shape(),
            ShapeError,
            "pack_gated_linear_weights: want gate and up weights of one shape [n, in], "
            "got {} and {}",
            gate.defined() ? gate.describe() : std::string("undefined"),
            up.defined() ? up.describe() : std::string("undefined"));
  if (gate.dtype() != DType::f32 || up.dtype() != DType::f32 || packed_linear_max_rows() == 0)
    return nullptr;
  auto p = std::make_shared<PackedLinearWeight>();
  const int64_t n = gate.size(0), k = gate.size(1);
  p->out_ = n, p->in_ = k, p->gated_ = true;
  p->sources_ = {gate.detach(), up.detach()};
  p->packed_ = packed_buffer(2 * cpu::packed_floats(n, k));
  float* dst = p->packed_.data<float>();
  const Tensor g = gate.contiguous(), u = up.contiguous();
  for (int64_t r = 0; r < n; r += kPackSliceRows) {  // slices as pack_linear_weights
    const int64_t rows = std::min(kPackSliceRows, n - r);
    cpu::pack_weight_pair_f32(g.data<float>() + r * k, u.data<float>() + r * k, rows, k, k,
                              dst + 2 * r * k);
    release_mapped_rows(g, r, rows);
    release_mapped_rows(u, r, rows);
  }
  return p;
}

Tensor gated_linear(const Tensor& x, const PackedLinearWeight& pw, Activation act) {
  LMF_CHECK(pw.gated(), ValueError, "gated_linear: the weight was not packed as a gate/up pair");
  const Tensor& gate = pw.sources()[0];
  const Tensor& up = pw.sources()[1];
  const int64_t in = pw.in_features(), n = pw.out_features();
  if (!packed_linear_takes(x, {gate, up}) || x.size(-1) != in)
    return linear(x, gate, Tensor(), act) * linear(x, up);
  const int64_t rows = x.numel() / in;
  Shape out_shape = x.shape();
  out_shape.back() = n;
  Tensor x2 = x.reshape({rows, in}).contiguous();
  Tensor y = Tensor::empty({rows, n});
  cpu::gemm_packed_gated_f32(rows, n, in, x2.data<float>(), in, pw.packed().data<float>(),
                             gemm_act(act), y.data<float>(), n);
  return y.view(out_shape);
}

Tensor linear(const Tensor& x, const PackedLinearWeight& pw, const Tensor& b, Activation act) {
  const int64_t in = pw.in_features(), out_features = pw.out_features();
  const bool sources_need_grad = std::any_of(pw.sources().begin(), pw.sources().end(),
                                             [](const Tensor& w) { return needs_grad({w}); });
  if (!packed_linear_takes(x, {b}) || sources_need_grad || x.size(-1) != in ||
      (b.defined() && (b.dtype() != DType::f32 || b.dim() != 1 || b.size(0) != out_features)))
    return linear(x, pw.weight(), b, act);  // also the one place that reports bad shapes and dtypes
  const int64_t rows = x.numel() / in;
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor x2 = x.reshape({rows, in}).contiguous();
  Tensor bias = b.defined() ? b.detach().contiguous() : Tensor();
  Tensor y = Tensor::empty({rows, out_features});
  cpu::gemm_packed_f32(rows, out_features, in, x2.data<float>(), in, pw.packed().data<float>(),
                       bias.defined() ? bias.data<float>() : nullptr, gemm_act(act),
                       y.data<float>(), out_features);
  return y.view(out_shape);
}

}  // namespace lmf
