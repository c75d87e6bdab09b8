// Layer-norm and RMS-norm CPU kernels over the last dim of [rows, cols]. Row statistics are
// accumulated in double; f32 and bf16 (computed in f32). Weight/bias pointers may be null.
#pragma once
#include <cstdint>

#include "lmforge/core/dtype.h"

namespace lmf::kernels {

// y = (x - mean) * rstd * w + b; writes mean and rstd per row (f32) for the backward.
template <class T>
void layer_norm_fwd(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd,
                    int64_t rows, int64_t cols, float eps);
// layer_norm_fwd of x + res (the residual sum is not kept; y may not alias x or res).
template <class T>
void add_layer_norm_fwd(const T* x, const T* res, const T* w, const T* b, T* y, float* mean,
                        float* rstd, int64_t rows, int64_t cols, float eps);
// gx (always), gw and gb (f32 [cols], when non-null) from gy and the saved statistics.
template <class T>
void layer_norm_bwd(const T* x, const T* w, const float* mean, const float* rstd, const T* gy,
                    T* gx, float* gw, float* gb, int64_t rows, int64_t cols);

// HF LlamaRMSNorm: y = w * round_T(x * rsqrt(mean(x^2) + eps)); writes rstd per row.
template <class T>
void rms_norm_fwd(const T* x, const T* w, T* y, float* rstd, int64_t rows, int64_t cols, float eps);
// h = x + res (stored; h may alias res) and y = rms_norm(h) in one pass per row, numerically the
// two ops in turn (the sum is rounded to T before its statistics).
template <class T>
void add_rms_norm_fwd(const T* x, const T* res, T* h, const T* w, T* y, int64_t rows, int64_t cols,
                      float eps);
template <class T>
void rms_norm_bwd(const T* x, const T* w, const float* rstd, const T* gy, T* gx, float* gw,
                  int64_t rows, int64_t cols);

}  // namespace lmf::kernels
