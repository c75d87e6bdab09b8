#include "kernels/cpu/index.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

namespace lmf::cpu {

namespace {

constexpr int64_t kParallelMin = 32768;  // elements below which threads cost more than they save

template <size_t N>
struct Bytes {
  unsigned char b[N];
};

// Calls fn(elem_size_tag) with a trivially copyable type of the element's size.
template <class Fn>
void visit_size(size_t elem_size, Fn&& fn) {
  switch (elem_size) {
    case 1:
      fn(uint8_t{});
      break;
    case 2:
      fn(uint16_t{});
      break;
    case 4:
      fn(uint32_t{});
      break;
    case 8:
      fn(uint64_t{});
      break;
    default:
      fn(Bytes<16>{});
      break;  // not produced by any dtype today
  }
}

template <class Idx>
int64_t first_out_of_range(const Idx* ids, int64_t n, int64_t lo, int64_t hi) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = ids[i];
    if (v < lo || v >= hi) return i;
  }
  return -1;
}

template <class Idx>
void embedding_forward(const void* weight, size_t row_bytes, const Idx* ids, int64_t n, void* out) {
  const auto* w = static_cast<const char*>(weight);
  auto* o = static_cast<char*>(out);
#pragma omp parallel for schedule(static) if (n * static_cast <int64_t>(row_bytes) > \
                                              4 * kParallelMin)
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(o + i * row_bytes, w + static_cast<int64_t>(ids[i]) * row_bytes, row_bytes);
}

// Threads split the hidden dim, so repeated ids never race.
template <class Idx>
void embedding_backward(const float* grad, const Idx* ids, int64_t n, int64_t h,
                        int64_t padding_idx, float* grad_w) {
  const int64_t threads = n * h > kParallelMin ? omp_get_max_threads() : 1;
  const int64_t block = std::max<int64_t>(16, (h / threads + 15) / 16 * 16);
  const int64_t blocks = (h + block - 1) / block;
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t bi = 0; bi < blocks; ++bi) {
    const int64_t c0 = bi * block, c1 = std::min(h, c0 + block);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t id = ids[i];
      if (id == padding_idx) continue;
      const float* g = grad + i * h;
      float* gw = grad_w + id * h;
      for (int64_t c = c0; c < c1; ++c) gw[c] += g[c];
    }
  }
}

// Splits `shape` (rank >= 1 after coalescing) into [outer, n, inner] around `dim` and the
// element offsets of each outer/inner position in a tensor with `strides`.
struct AroundDim {
  int64_t outer = 1, n = 1, inner = 1;
  std::vector<int64_t> outer_off, inner_off;
};
AroundDim around_dim(int rank, const int64_t* shape, const int64_t* strides, int dim) {
  AroundDim a;
  for (int d = 0; d < dim; ++d) a.outer *= shape[d];
  for (int d = dim + 1; d < rank; ++d) a.inner *= shape[d];
  a.n = shape[dim];
  auto offsets = [&](int d0, int d1, int64_t count) {
    std::vector<int64_t> off(count, 0);
    for (int64_t i = 0; i < count; ++i) {
      int64_t rem = i, o = 0;
      for (int d = d1 - 1; d >= d0; --d) {
        o += (rem % shape[d]) * strides[d];
        rem /= shape[d];
      }
      off[i] = o;
    }
    return off;
  };
  a.outer_off = offsets(0, dim, a.outer);
  a.inner_off = offsets(dim + 1, rank, a.inner);
  return a;
}

constexpr int64_t kInnerBlock = 512;

template <class T>
void gather_typed(const T* x, int rank, const int64_t* index_shape, const int64_t* x_strides,
                  int dim, const int64_t* index, T* out) {
  const AroundDim a = around_dim(rank, index_shape, x_strides, dim);
  const int64_t sd = x_strides[dim];
  const int64_t iblocks = (a.inner + kInnerBlock - 1) / kInnerBlock;
  const int64_t total = a.outer * a.n * a.inner;
#pragma omp parallel for collapse(2) schedule(static) if (total > kParallelMin)
  for (int64_t o = 0; o < a.outer; ++o) {
    for (int64_t ib = 0; ib < iblocks; ++ib) {
      const int64_t i0 = ib * kInnerBlock, i1 = std::min(a.inner, i0 + kInnerBlock);
      for (int64_t k = 0; k < a.n; ++k) {
        const int64_t row = (o * a.n + k) * a.inner;
        const T* xo = x + a.outer_off[o];
        for (int64_t i = i0; i < i1; ++i) out[row + i] = xo[index[row + i] * sd + a.inner_off[i]];
      }
    }
  }
}

// Row-major iteration over a broadcast shape with K strided operands, dims of size 1 dropped
// and mergeable dims coalesced; fn(offsets, n, inner_strides) per run, runs spread over threads.
template <size_t K, class Fn>
void parallel_runs(int rank, const int64_t* shape_in, const std::array<const int64_t*, K>& st_in,
                   Fn&& fn) {
  std::vector<int64_t> shape;
  std::array<std::vector<int64_t>, K> st;
  for (int d = 0; d < rank; ++d) {
    if (shape_in[d] == 0) return;
    if (shape_in[d] == 1) continue;
    bool merge = !shape.empty();
    for (size_t k = 0; k < K && merge; ++k) merge = st[k].back() == st_in[k][d] * shape_in[d];
    if (merge) {
      shape.back() *= shape_in[d];
      for (size_t k = 0; k < K; ++k) st[k].back() = st_in[k][d];
      continue;
    }
    shape.push_back(shape_in[d]);
    for (size_t k = 0; k < K; ++k) st[k].push_back(st_in[k][d]);
  }
  std::array<int64_t, K> off{}, inner{};
  if (shape.empty()) {
    fn(off, int64_t{1}, inner);
    return;
  }
  const int r = static_cast<int>(shape.size());
  for (size_t k = 0; k < K; ++k) inner[k] = st[k][r - 1];
  const int64_t n = shape[r - 1];
  int64_t rows = 1;
  for (int d = 0; d < r - 1; ++d) rows *= shape[d];
  // Long single runs are cut into pieces so that they still use every thread.
  const int64_t piece =
      rows == 1 ? std::max<int64_t>(4096, n / (4 * omp_get_max_threads()) + 1) : n;
  const int64_t pieces = (n + piece - 1) / piece;
#pragma omp parallel for collapse(2) schedule(static) if (rows * n > kParallelMin)
  for (int64_t row = 0; row < rows; ++row) {
    for (int64_t p = 0; p < pieces; ++p) {
      std::array<int64_t, K> o{};
      int64_t rem = row;
      for (int d = r - 2; d >= 0; --d) {
        const int64_t i = rem % shape[d];
        rem /= shape[d];
        for (size_t k = 0; k < K; ++k) o[k] += i * st[k][d];
      }
      const int64_t start = p * piece;
      for (size_t k = 0; k < K; ++k) o[k] += start * inner[k];
      fn(o, std::min(piece, n - start), inner);
    }
  }
}

}  // namespace

int64_t index_first_out_of_range(const int64_t* ids, int64_t n, int64_t lo, int64_t hi) {
  return first_out_of_range(ids, n, lo, hi);
}
int64_t index_first_out_of_range(const int32_t* ids, int64_t n, int64_t lo, int64_t hi) {
  return first_out_of_range(ids, n, lo, hi);
}

void index_embedding_forward(const void* weight, size_t row_bytes, const int64_t* ids, int64_t n,
                             void* out) {
  embedding_forward(weight, row_bytes, ids, n, out);
}
void index_embedding_forward(const void* weight, size_t row_bytes, const int32_t* ids, int64_t n,
                             void* out) {
  embedding_forward(weight, row_bytes, ids, n, out);
}
void index_embedding_backward(const float* grad, const int64_t* ids, int64_t n, int64_t h,
                              int64_t padding_idx, float* grad_w) {
  embedding_backward(grad, ids, n, h, padding_idx, grad_w);
}
void index_embedding_backward(const float* grad, const int32_t* ids, int64_t n, int64_t h,
                              int64_t padding_idx, float* grad_w) {
  embedding_backward(grad, ids, n, h, padding_idx, grad_w);
}

void index_concat(int64_t outer, int64_t n_inputs, const void* const* srcs,
                  const int64_t* block_bytes, void* dst) {
  std::vector<int64_t> prefix(n_inputs + 1, 0);
  for (int64_t i = 0; i < n_inputs; ++i) prefix[i + 1] = prefix[i] + block_bytes[i];
  const int64_t row = prefix[n_inputs];
  auto* d = static_cast<char*>(dst);
#pragma omp parallel for collapse(2) schedule(static) if (outer * row > 4 * kParallelMin)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < n_inputs; ++i)
      std::memcpy(d + o * row + prefix[i], static_cast<const char*>(srcs[i]) + o * block_bytes[i],
                  block_bytes[i]);
}

void index_gather(const void* x, size_t elem_size, int rank, const int64_t* index_shape,
                  const int64_t* x_strides, int dim, const int64_t* index, void* out) {
  visit_size(elem_size, [&](auto z) {
    using T = decltype(z);
    gather_typed(static_cast<const T*>(x), rank, index_shape, x_strides, dim, index,
                 static_cast<T*>(out));
  });
}

// Tasks split the outer and inner positions, never the gathered dim, so writes never collide.
void index_scatter_add(const float* grad, int rank, const int64_t* index_shape,
                       const int64_t* x_shape, int dim, const int64_t* index, float* grad_x) {
  std::vector<int64_t> x_strides(rank, 1);
  for (int d = rank - 2; d >= 0; --d) x_strides[d] = x_strides[d + 1] * x_shape[d + 1];
  const AroundDim a = around_dim(rank, index_shape, x_strides.data(), dim);
  const int64_t sd = x_strides[dim];
  const int64_t iblocks = (a.inner + kInnerBlock - 1) / kInnerBlock;
  const int64_t total = a.outer * a.n * a.inner;
#pragma omp parallel for collapse(2) schedule(static) if (total > kParallelMin)
  for (int64_t o = 0; o < a.outer; ++o) {
    for (int64_t ib = 0; ib < iblocks; ++ib) {
      const int64_t i0 = ib * kInnerBlock, i1 = std::min(a.inner, i0 + kInnerBlock);
      float* gxo = grad_x + a.outer_off[o];
      for (int64_t k = 0; k < a.n; ++k) {
        const int64_t row = (o * a.n + k) * a.inner;
        for (int64_t i = i0; i < i1; ++i)
          gxo[index[row + i] * sd + a.inner_off[i]] += grad[row + i];
      }
    }
  }
}

void index_where(int rank, const int64_t* shape, const bool* cond, const int64_t* cond_strides,
                 const void* a, const int64_t* a_strides, const void* b, const int64_t* b_strides,
                 size_t elem_size, void* out) {
  std::vector<int64_t> out_strides(rank, 1);
  for (int d = rank - 2; d >= 0; --d) out_strides[d] = out_strides[d + 1] * shape[d + 1];
  visit_size(elem_size, [&](auto z) {
    using T = decltype(z);
    const T* pa = static_cast<const T*>(a);
    const T* pb = static_cast<const T*>(b);
    T* po = static_cast<T*>(out);
    parallel_runs<4>(
        rank, shape, {cond_strides, a_strides, b_strides, out_strides.data()},
        [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& in) {
          const bool* c = cond + off[0];
          const T* xa = pa + off[1];
          const T* xb = pb + off[2];
          T* o = po + off[3];
          if (in[0] == 1 && in[1] == 1 && in[2] == 1 && in[3] == 1) {
            for (int64_t k = 0; k < n; ++k) o[k] = c[k] ? xa[k] : xb[k];
          } else {
            for (int64_t k = 0; k < n; ++k)
              o[k * in[3]] = c[k * in[0]] ? xa[k * in[1]] : xb[k * in[2]];
          }
        });
  });
}

}  // namespace lmf::cpu
