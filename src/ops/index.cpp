// Indexing, shape and masking ops: embedding, concat/split/chunk/stack, gather, masked_fill and
// where. Checks and autograd here; the data movement is in kernels/cpu/index.
#include "kernels/cpu/index.h"

#include <numeric>

#include "lmforge/ops/ops.h"

namespace lmf {

namespace {

bool is_index_dtype(DType t) {
  return t == DType::i32 || t == DType::i64;
}

// Position of the first value of integer tensor `ids` (contiguous) outside [lo, hi), or -1.
int64_t first_out_of_range(const Tensor& ids, int64_t lo, int64_t hi) {
  if (ids.dtype() == DType::i32)
    return cpu::index_first_out_of_range(ids.data<int32_t>(), ids.numel(), lo, hi);
  return cpu::index_first_out_of_range(ids.data<int64_t>(), ids.numel(), lo, hi);
}

// Multi-index of flat position `pos` in `shape`, for error messages.
std::string position_str(int64_t pos, const Shape& shape) {
  Shape idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = pos % shape[d];
    pos /= shape[d];
  }
  return shape_str(idx);
}

void check_defined(const Tensor& t, const char* op, const char* what) {
  LMF_CHECK(t.defined(), ValueError, "{}: {} is an undefined tensor", op, what);
}

// out = cond ? a : b over `shape`; all three are views already broadcast (expanded) to `shape`.
Tensor select_strided(const Tensor& cond, const Tensor& a, const Tensor& b, const Shape& shape) {
  Tensor out = Tensor::empty(shape, a.dtype());
  cpu::index_where(static_cast<int>(shape.size()), shape.data(), cond.data<bool>(),
                   cond.strides().data(), a.data_ptr(), a.strides().data(), b.data_ptr(),
                   b.strides().data(), dtype_size(a.dtype()), out.data_ptr());
  return out;
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& ids, int64_t padding_idx) {
  check_defined(weight, "embedding", "weight");
  check_defined(ids, "embedding", "ids");
  LMF_CHECK(weight.dim() == 2, ShapeError, "embedding: weight must be [vocab, hidden], got {}",
            weight.describe());
  LMF_CHECK(is_index_dtype(ids.dtype()), DTypeError,
            "embedding: ids must be i32 or i64, got {} (weight {})", ids.describe(),
            weight.describe());
  const int64_t vocab = weight.size(0), hidden = weight.size(1);
  LMF_CHECK(padding_idx < vocab, IndexError,
            "embedding: padding_idx {} is out of range for a vocabulary of size {}", padding_idx,
            vocab);
  Tensor idc = ids.contiguous();
  const int64_t bad = first_out_of_range(idc, 0, vocab);
  if (bad >= 0) {
    fail<IndexError>(
        "embedding: id {} at position {} of ids {} is out of range for a vocabulary "
        "of size {}",
        static_cast<int64_t>(idc.to(DType::i64).data<int64_t>()[bad]),
        position_str(bad, idc.shape()), ids.describe(), vocab);
  }
  Tensor w = weight.detach().contiguous();
  Shape out_shape = ids.shape();
  out_shape.push_back(hidden);
  Tensor out = Tensor::empty(out_shape, weight.dtype());
  const size_t row_bytes = static_cast<size_t>(hidden) * dtype_size(weight.dtype());
  if (idc.dtype() == DType::i32)
    cpu::index_embedding_forward(w.data_ptr(), row_bytes, idc.data<int32_t>(), idc.numel(),
                                 out.data_ptr());
  else
    cpu::index_embedding_forward(w.data_ptr(), row_bytes, idc.data<int64_t>(), idc.numel(),
                                 out.data_ptr());
  const DType wdt = weight.dtype();
  record(out, "embedding", {weight}, [idc, vocab, hidden, padding_idx, wdt](const Tensor& g) {
    Tensor gc = g.to(DType::f32).contiguous();
    Tensor gw = Tensor::zeros({vocab, hidden}, DType::f32);
    if (idc.dtype() == DType::i32)
      cpu::index_embedding_backward(gc.data<float>(), idc.data<int32_t>(), idc.numel(), hidden,
                                    padding_idx, gw.data<float>());
    else
      cpu::index_embedding_backward(gc.data<float>(), idc.data<int64_t>(), idc.numel(), hidden,
                                    padding_idx, gw.data<float>());
    return std::vector<Tensor>{gw.to(wdt)};
  });
  return out;
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  LMF_CHECK(!xs.empty(), ValueError, "concat: the list of tensors is empty");
  for (size_t i = 0; i < xs.size(); ++i)
    LMF_CHECK(xs[i].defined(), ValueError, "concat: tensor {} is undefined", i);
  const Tensor& x0 = xs[0];
  LMF_CHECK(x0.dim() > 0, ShapeError, "concat: cannot concatenate 0-d tensors ({})", x0.describe());
  const int64_t d = wrap_dim(dim, x0.dim(), "concat");
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    LMF_CHECK(x.dtype() == x0.dtype(), DTypeError, "concat: tensor {} is {} but tensor 0 is {}", i,
              x.describe(), x0.describe());
    bool same = x.dim() == x0.dim();
    for (int64_t k = 0; same && k < x.dim(); ++k) same = k == d || x.size(k) == x0.size(k);
    LMF_CHECK(same, ShapeError,
              "concat: tensor {} has shape {} but tensor 0 has {}; all sizes except dim {} must "
              "match",
              i, shape_str(x.shape()), shape_str(x0.shape()), d);
    sizes.push_back(x.size(d));
  }
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < d; ++k) outer *= x0.size(k);
  for (int64_t k = d + 1; k < x0.dim(); ++k) inner *= x0.size(k);
  std::vector<Tensor> cs;
  std::vector<const void*> srcs;
  std::vector<int64_t> block_bytes;
  const int64_t elem = static_cast<int64_t>(dtype_size(x0.dtype()));
  for (size_t i = 0; i < xs.size(); ++i) {
    cs.push_back(xs[i].detach().contiguous());
    srcs.push_back(cs.back().data_ptr());
    block_bytes.push_back(sizes[i] * inner * elem);
  }
  Shape out_shape = x0.shape();
  out_shape[d] = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  Tensor out = Tensor::empty(out_shape, x0.dtype());
  cpu::index_concat(outer, static_cast<int64_t>(xs.size()), srcs.data(), block_bytes.data(),
                    out.data_ptr());
  record(out, "concat", xs, [sizes, d](const Tensor& g) {
    std::vector<Tensor> grads;
    int64_t start = 0;
    for (int64_t s : sizes) {
      grads.push_back(g.narrow(d, start, s));
      start += s;
    }
    return grads;
  });
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  check_defined(x, "split", "x");
  LMF_CHECK(x.dim() > 0, ShapeError, "split: cannot split a 0-d tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    LMF_CHECK(s >= 0, ShapeError, "split: negative size {} in sizes [{}]", s,
              fmt::join(sizes, ", "));
    total += s;
  }
  LMF_CHECK(total == x.size(d), ShapeError,
            "split: sizes [{}] add up to {} but dim {} of {} has size {}", fmt::join(sizes, ", "),
            total, d, x.describe(), x.size(d));
  std::vector<Tensor> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(d, start, s));
    start += s;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  check_defined(x, "chunk", "x");
  LMF_CHECK(chunks > 0, ValueError, "chunk: chunks must be positive, got {}", chunks);
  LMF_CHECK(x.dim() > 0, ShapeError, "chunk: cannot chunk a 0-d tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "chunk");
  const int64_t n = x.size(d);
  // torch.chunk: pieces of ceil(n / chunks), the last one smaller, possibly fewer than `chunks`;
  // a dim of size 0 gives `chunks` empty pieces.
  if (n == 0) return split(x, std::vector<int64_t>(chunks, 0), d);
  const int64_t piece = (n + chunks - 1) / chunks;
  std::vector<int64_t> sizes;
  for (int64_t start = 0; start < n; start += piece) sizes.push_back(std::min(piece, n - start));
  return split(x, sizes, d);
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  LMF_CHECK(!xs.empty(), ValueError, "stack: the list of tensors is empty");
  for (size_t i = 0; i < xs.size(); ++i) {
    LMF_CHECK(xs[i].defined(), ValueError, "stack: tensor {} is undefined", i);
    LMF_CHECK(xs[i].shape() == xs[0].shape(), ShapeError,
              "stack: tensor {} has shape {} but tensor 0 has {}; all shapes must match", i,
              shape_str(xs[i].shape()), shape_str(xs[0].shape()));
    LMF_CHECK(xs[i].dtype() == xs[0].dtype(), DTypeError,
              "stack: tensor {} is {} but tensor 0 is {}", i, xs[i].describe(), xs[0].describe());
  }
  const int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  for (const Tensor& x : xs) us.push_back(x.unsqueeze(d));
  return concat(us, d);
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "gather", "x");
  check_defined(index, "gather", "index");
  LMF_CHECK(index.dtype() == DType::i64, DTypeError, "gather: index must be i64, got {} (x {})",
            index.describe(), x.describe());
  LMF_CHECK(index.dim() == x.dim(), ShapeError,
            "gather: index {} and x {} must have the same number of dims", shape_str(index.shape()),
            shape_str(x.shape()));
  // 0-d tensors behave as [1].
  const Tensor xv = x.dim() == 0 ? x.detach().reshape({1}) : x.detach();
  const Tensor iv = index.dim() == 0 ? index.reshape({1}) : index;
  const int64_t d = wrap_dim(dim, xv.dim(), "gather");
  for (int64_t k = 0; k < xv.dim(); ++k)
    LMF_CHECK(k == d || iv.size(k) <= xv.size(k), ShapeError,
              "gather: index {} is larger than x {} in dim {} (only dim {} may be larger)",
              shape_str(index.shape()), shape_str(x.shape()), k, d);
  Tensor idc = iv.contiguous();
  const int64_t bad = first_out_of_range(idc, 0, xv.size(d));
  if (bad >= 0) {
    fail<IndexError>(
        "gather: index value {} at position {} of index {} is out of range for dim "
        "{} of x {} (size {})",
        idc.data<int64_t>()[bad], position_str(bad, idc.shape()), shape_str(index.shape()), d,
        shape_str(x.shape()), xv.size(d));
  }
  Tensor out = Tensor::empty(idc.shape(), x.dtype());
  const int rank = static_cast<int>(xv.dim());
  cpu::index_gather(xv.data_ptr(), dtype_size(x.dtype()), rank, idc.shape().data(),
                    xv.strides().data(), static_cast<int>(d), idc.data<int64_t>(), out.data_ptr());
  out = out.view(index.shape());
  const Shape x_shape = xv.shape(), orig_shape = x.shape();
  const DType dt = x.dtype();
  record(out, "gather", {x}, [idc, x_shape, orig_shape, d, dt](const Tensor& g) {
    Tensor gc = g.to(DType::f32).contiguous();
    Tensor gx = Tensor::zeros(x_shape, DType::f32);
    cpu::index_scatter_add(gc.data<float>(), static_cast<int>(x_shape.size()), idc.shape().data(),
                           x_shape.data(), static_cast<int>(d), idc.data<int64_t>(),
                           gx.data<float>());
    return std::vector<Tensor>{gx.view(orig_shape).to(dt)};
  });
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_defined(x, "masked_fill", "x");
  check_defined(mask, "masked_fill", "mask");
  LMF_CHECK(mask.dtype() == DType::boolean, DTypeError,
            "masked_fill: mask must be bool, got {} (x {})", mask.describe(), x.describe());
  const Shape& shape = x.shape();
  LMF_CHECK(broadcast_shapes(shape, mask.shape(), "masked_fill") == shape, ShapeError,
            "masked_fill: mask {} is not broadcastable to x {}", shape_str(mask.shape()),
            shape_str(shape));
  const Tensor m = mask.detach().expand(shape);
  const Tensor fill = Tensor::scalar(value, x.dtype()).expand(shape);
  Tensor out = select_strided(m, fill, x.detach(), shape);
  record(out, "masked_fill", {x}, [m, shape](const Tensor& g) {
    const Tensor zero = Tensor::scalar(0.0, g.dtype()).expand(shape);
    return std::vector<Tensor>{select_strided(m, zero, g, shape)};
  });
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined(cond, "where", "cond");
  check_defined(a, "where", "a");
  check_defined(b, "where", "b");
  LMF_CHECK(cond.dtype() == DType::boolean, DTypeError, "where: cond must be bool, got {}",
            cond.describe());
  LMF_CHECK(a.dtype() == b.dtype(), DTypeError, "where: a is {} but b is {}; dtypes must match",
            a.describe(), b.describe());
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  const Tensor c = cond.detach().expand(shape);
  Tensor out = select_strided(c, a.detach().expand(shape), b.detach().expand(shape), shape);
  const Shape a_shape = a.shape(), b_shape = b.shape();
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  record(out, "where", {a, b}, [c, shape, a_shape, b_shape, need_a, need_b](const Tensor& g) {
    const Tensor zero = Tensor::scalar(0.0, g.dtype()).expand(shape);
    std::vector<Tensor> grads(2);
    if (need_a) grads[0] = sum_to(select_strided(c, g, zero, shape), a_shape);
    if (need_b) grads[1] = sum_to(select_strided(c, zero, g, shape), b_shape);
    return grads;
  });
  return out;
}

}  // namespace lmf
