// Gather/scatter/select kernels on raw pointers: embedding rows, concat blocks, torch.gather and
// its scatter-add, and a broadcasting strided select (where / masked_fill). No checks here.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lmf::cpu {

// Position of the first id outside [lo, hi), or -1.
int64_t index_first_out_of_range(const int64_t* ids, int64_t n, int64_t lo, int64_t hi);
int64_t index_first_out_of_range(const int32_t* ids, int64_t n, int64_t lo, int64_t hi);

// out[i, :] = weight[ids[i], :]; rows are `row_bytes` long.
void index_embedding_forward(const void* weight, size_t row_bytes, const int64_t* ids, int64_t n,
                             void* out);
void index_embedding_forward(const void* weight, size_t row_bytes, const int32_t* ids, int64_t n,
                             void* out);
// grad_w[ids[i], :] += grad[i, :] for ids[i] != padding_idx; grad_w is [V, h], pre-zeroed.
void index_embedding_backward(const float* grad, const int64_t* ids, int64_t n, int64_t h,
                              int64_t padding_idx, float* grad_w);
void index_embedding_backward(const float* grad, const int32_t* ids, int64_t n, int64_t h,
                              int64_t padding_idx, float* grad_w);

// For each of `outer` rows, appends block_bytes[i] bytes of srcs[i] (row-major) to dst.
void index_concat(int64_t outer, int64_t n_inputs, const void* const* srcs,
                  const int64_t* block_bytes, void* dst);

// torch.gather: out (contiguous, index's shape) = x[..., index[...], ...] along `dim`; x is read
// through `x_strides` (elements), index is contiguous i64 with values already in range.
void index_gather(const void* x, size_t elem_size, int rank, const int64_t* index_shape,
                  const int64_t* x_strides, int dim, const int64_t* index, void* out);
// The gather's backward: grad_x (contiguous, x_shape, pre-zeroed) += grad scattered by index.
void index_scatter_add(const float* grad, int rank, const int64_t* index_shape,
                       const int64_t* x_shape, int dim, const int64_t* index, float* grad_x);

// out (contiguous, `shape`) = cond ? a : b, each operand read through its own element strides
// over `shape` (stride 0 broadcasts). Elements are elem_size bytes (1, 2, 4 or 8).
void index_where(int rank, const int64_t* shape, const bool* cond, const int64_t* cond_strides,
                 const void* a, const int64_t* a_strides, const void* b, const int64_t* b_strides,
                 size_t elem_size, void* out);

}  // namespace lmf::cpu
