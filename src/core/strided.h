// Internal: iteration over the elements of strided tensors, innermost dimension as a run.
#pragma once
#include <cstdint>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf::detail {

// Calls fn(offsets[], n, inner_strides[]) for each innermost run of `shape`, where offsets are
// element offsets into each of the K operands described by `strides` (all broadcast to `shape`).
template <size_t K, class Fn>
void for_each_run(const Shape& shape, const std::array<const Shape*, K>& strides, Fn&& fn) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (shape_numel(shape) == 0) return;
  std::array<int64_t, K> off{};
  std::array<int64_t, K> inner{};
  if (rank == 0) {
    fn(off, int64_t{1}, inner);
    return;
  }
  for (size_t k = 0; k < K; ++k) inner[k] = (*strides[k])[rank - 1];
  const int64_t n = shape[rank - 1];
  std::vector<int64_t> idx(rank, 0);
  while (true) {
    fn(off, n, inner);
    int64_t d = rank - 2;
    for (; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        for (size_t k = 0; k < K; ++k) off[k] += (*strides[k])[d];
        break;
      }
      for (size_t k = 0; k < K; ++k) off[k] -= (*strides[k])[d] * (shape[d] - 1);
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

// Strides of `t` viewed as broadcast to `shape` (0 where t has size 1 or is missing).
Shape broadcast_strides(const Tensor& t, const Shape& shape);

}  // namespace lmf::detail
