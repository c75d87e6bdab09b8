// Reductions: sum / mean over all or some dims (double accumulation), max values and argmax.
#include "kernels/cpu/reduce.h"

#include <algorithm>

#include "lmforge/ops/ops.h"

namespace lmf {

namespace {

void check_float(const char* op, const Tensor& a) {
  LMF_CHECK(a.defined(), ValueError, "{}: input is an undefined tensor", op);
  LMF_CHECK(a.dtype() == DType::f32 || a.dtype() == DType::bf16, DTypeError,
            "{}: got a {} tensor {}; supported dtypes are f32 and bf16 (convert with .to())", op,
            dtype_name(a.dtype()), a.describe());
}

// Sorted, wrapped, unique dims; empty input means all dims.
std::vector<int64_t> normalize_dims(const char* op, const std::vector<int64_t>& dims,
                                    int64_t rank) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < rank; ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, std::max<int64_t>(rank, 1), op));
  std::sort(out.begin(), out.end());
  LMF_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), IndexError,
            "{}: dim appears more than once in [{}]", op, fmt::join(dims, ", "));
  if (rank == 0) out.clear();
  return out;
}

Shape reduced_shape(const Shape& s, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
    const bool red = std::binary_search(dims.begin(), dims.end(), d);
    if (!red)
      out.push_back(s[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

// Sum of contiguous x over `dims` into a new tensor of `out_shape`, times `scale`. Adjacent dims
// of the same kind are merged; reduced groups are folded one at a time, innermost first, through
// double buffers.
Tensor sum_impl(const Tensor& a, const std::vector<int64_t>& dims, const Shape& out_shape,
                double scale) {
  const Tensor x = a.detach().contiguous();
  std::vector<std::pair<int64_t, bool>> groups;  // (extent, reduced)
  for (int64_t d = 0; d < x.dim(); ++d) {
    const bool red = std::binary_search(dims.begin(), dims.end(), d);
    if (x.shape()[d] == 1) continue;
    if (!groups.empty() && groups.back().second == red)
      groups.back().first *= x.shape()[d];
    else
      groups.push_back({x.shape()[d], red});
  }
  Tensor out = Tensor::empty(out_shape, x.dtype());
  const int64_t n_out = out.numel();
  std::vector<double> cur;
  bool from_input = true;
  for (;;) {
    int64_t g = static_cast<int64_t>(groups.size()) - 1;
    while (g >= 0 && !groups[g].second) --g;
    if (g < 0) break;
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < g; ++i) outer *= groups[i].first;
    for (size_t i = g + 1; i < groups.size(); ++i) inner *= groups[i].first;
    std::vector<double> next(static_cast<size_t>(outer * inner));
    if (from_input) {
      if (x.dtype() == DType::bf16)
        kernels::sum_ori(static_cast<const bf16_t*>(x.data_ptr()), next.data(), outer,
                         groups[g].first, inner);
      else
        kernels::sum_ori(x.data<float>(), next.data(), outer, groups[g].first, inner);
    } else {
      kernels::sum_ori(cur.data(), next.data(), outer, groups[g].first, inner);
    }
    cur = std::move(next);
    from_input = false;
    groups.erase(groups.begin() + g);
  }
  if (from_input) {  // nothing to reduce (reduced dims all of size 1): a converting copy
    cur.resize(n_out);
    Tensor xf = x.to(DType::f32);
    const float* p = xf.data<float>();
    for (int64_t i = 0; i < n_out; ++i) cur[i] = p[i];
  }
  cur.resize(n_out, 0.0);
  if (x.dtype() == DType::bf16)
    kernels::from_double(cur.data(), static_cast<bf16_t*>(out.data_ptr()), n_out, scale);
  else
    kernels::from_double(cur.data(), out.data<float>(), n_out, scale);
  return out;
}

Tensor sum_or_mean(const char* op, const Tensor& a, const std::vector<int64_t>& dims_in,
                   bool keepdim, bool mean) {
  check_float(op, a);
  const std::vector<int64_t> dims = normalize_dims(op, dims_in, a.dim());
  const Shape out_shape = reduced_shape(a.shape(), dims, keepdim);
  int64_t count = 1;
  for (int64_t d : dims) count *= a.shape()[d];
  const double scale = mean ? 1.0 / static_cast<double>(count) : 1.0;
  Tensor out = sum_impl(a, dims, out_shape, scale);
  if (!needs_grad({a})) return out;
  const Shape in_shape = a.shape(), keep_shape = reduced_shape(a.shape(), dims, true);
  record(out, op, {a}, [=](const Tensor& g) {
    const Tensor gs = mean ? mul(g, scale) : g;  // scale the small tensor, then broadcast
    return std::vector<Tensor>{gs.reshape(keep_shape).expand(in_shape).contiguous()};
  });
  return out;
}

// [outer, red, inner] around dim d of shape s.
void split_at(const Shape& s, int64_t d, int64_t& outer, int64_t& red, int64_t& inner) {
  outer = inner = 1;
  red = s.empty() ? 1 : s[d];
  for (int64_t i = 0; i < d; ++i) outer *= s[i];
  for (size_t i = d + 1; i < s.size(); ++i) inner *= s[i];
}

}  // namespace

Tensor sum(const Tensor& a) {
  return sum_or_mean("sum", a, {}, false, false);
}
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean("sum", a, dims, keepdim, false);
}
Tensor mean(const Tensor& a) {
  return sum_or_mean("mean", a, {}, false, true);
}
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean("mean", a, dims, keepdim, true);
}

Tensor max(const Tensor& a, int64_t dim, bool keepdim) {
  check_float("max", a);
  const int64_t d = a.dim() == 0 ? 0 : wrap_dim(dim, a.dim(), "max");
  LMF_CHECK(a.dim() == 0 || a.shape()[d] > 0, ShapeError, "max: dim {} of {} is empty", dim,
            a.describe());
  int64_t outer, red, inner;
  split_at(a.shape(), d, outer, red, inner);
  const Shape out_shape = a.dim() == 0 ? Shape{} : reduced_shape(a.shape(), {d}, keepdim);
  const Tensor x = a.detach().contiguous();
  Tensor out = Tensor::empty(out_shape, a.dtype());
  Tensor idx = Tensor::empty(out_shape, DType::i64);
  if (a.dtype() == DType::bf16)
    kernels::max_ori(static_cast<const bf16_t*>(x.data_ptr()), static_cast<bf16_t*>(out.data_ptr()),
                     idx.data<int64_t>(), outer, red, inner);
  else
    kernels::max_ori(x.data<float>(), out.data<float>(), idx.data<int64_t>(), outer, red, inner);
  if (!needs_grad({a})) return out;
  const Shape in_shape = a.shape();
  const DType dt = a.dtype();
  record(out, "max", {a}, [=](const Tensor& g) {
    const Tensor gc = g.to(dt).contiguous();
    Tensor gi = Tensor::zeros(in_shape, dt);
    if (dt == DType::bf16)
      kernels::scatter_ori(static_cast<const bf16_t*>(gc.data_ptr()), idx.data<int64_t>(),
                           static_cast<bf16_t*>(gi.data_ptr()), outer, red, inner);
    else
      kernels::scatter_ori(gc.data<float>(), idx.data<int64_t>(), gi.data<float>(), outer, red,
                           inner);
    return std::vector<Tensor>{gi};
  });
  return out;
}

Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) {
  LMF_CHECK(a.defined(), ValueError, "argmax: input is an undefined tensor");
  const DType dt = a.dtype();
  LMF_CHECK(dt == DType::f32 || dt == DType::bf16 || dt == DType::i32 || dt == DType::i64,
            DTypeError, "argmax: got {}; supported dtypes are f32, bf16, i32 and i64",
            a.describe());
  const int64_t d = a.dim() == 0 ? 0 : wrap_dim(dim, a.dim(), "argmax");
  LMF_CHECK(a.dim() == 0 || a.shape()[d] > 0, ShapeError, "argmax: dim {} of {} is empty", dim,
            a.describe());
  int64_t outer, red, inner;
  split_at(a.shape(), d, outer, red, inner);
  const Shape out_shape = a.dim() == 0 ? Shape{} : reduced_shape(a.shape(), {d}, keepdim);
  const Tensor x = a.detach().contiguous();
  Tensor idx = Tensor::empty(out_shape, DType::i64);
  int64_t* pi = idx.data<int64_t>();
  switch (dt) {
    case DType::bf16:
      kernels::max_ori<bf16_t>(static_cast<const bf16_t*>(x.data_ptr()), nullptr, pi, outer, red,
                               inner);
      break;
    case DType::i32:
      kernels::max_ori<int32_t>(x.data<int32_t>(), nullptr, pi, outer, red, inner);
      break;
    case DType::i64:
      kernels::max_ori<int64_t>(x.data<int64_t>(), nullptr, pi, outer, red, inner);
      break;
    default:
      kernels::max_ori<float>(x.data<float>(), nullptr, pi, outer, red, inner);
      break;
  }
  return idx;
}

}  // namespace lmf
