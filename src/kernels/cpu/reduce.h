// Reduction CPU kernels on raw pointers. A reduction is expressed as [outer, red, inner] (reduce
// the middle extent); sums accumulate in double with a fixed, thread-count-independent order.
#pragma once
#include <cstdint>

#include "lmforge/core/dtype.h"

namespace lmf::kernels {

// out[o, i] = sum_r x[o, r, i], in double. In is float, bf16_t or double.
template <class In>
void sum_ori(const In* x, double* out, int64_t outer, int64_t red, int64_t inner);
// y[i] = x[i] * scale, rounded to T.
template <class T>
void from_double(const double* x, T* y, int64_t n, double scale);
// Max over r of x[o, r, i]: values and/or indices (either may be null). First maximum wins; NaN
// counts as the largest value (torch semantics).
template <class T>
void max_ori(const T* x, T* vals, int64_t* idx, int64_t outer, int64_t red, int64_t inner);
// out (zeroed by the caller) [o, idx[o, i], i] = g[o, i]; the backward of max.
template <class T>
void scatter_ori(const T* g, const int64_t* idx, T* out, int64_t outer, int64_t red, int64_t inner);

}  // namespace lmf::kernels
