// Softmax / log-softmax CPU kernels over the middle extent of [outer, red, inner] (inner == 1 is
// the fast last-dim path). f32 and bf16 (computed in f32).
#pragma once
#include <cstdint>

#include "lmforge/core/dtype.h"

namespace lmf::kernels {

// y = softmax(x) (or log_softmax when log) along r.
template <class T>
void softmax_fwd(const T* x, T* y, int64_t outer, int64_t red, int64_t inner, bool log);
// gx from the forward output y and gy: softmax gx = y (gy - sum(gy y)); log: gx = gy - e^y sum(gy).
template <class T>
void softmax_bwd(const T* y, const T* gy, T* gx, int64_t outer, int64_t red, int64_t inner,
                 bool log);

}  // namespace lmf::kernels
