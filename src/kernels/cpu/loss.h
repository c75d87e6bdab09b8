// Fused loss kernels on raw f32 pointers: cross-entropy over class logits (log-softmax, nll and
// label smoothing in one pass per row), mean-squared error and binary cross-entropy with logits.
#pragma once
#include <cstdint>

namespace lmf::cpu {

// Per row n of x [n, c]: lse[n] = log sum exp x[n, :], and
// row_loss[n] = (1 - eps) (lse - x[n, t]) + eps (lse - mean_c x[n, c]); 0 where t == ignore_index.
void loss_cross_entropy_forward(const float* x, const int64_t* targets, int64_t n, int64_t c,
                                int64_t ignore_index, float eps, float* row_loss, float* lse);
// gx[n, :] = w_n (softmax(x[n]) - (1 - eps) onehot(t) - eps / c), w_n = gout[n * gstride] * scale;
// rows with t == ignore_index get zeros.
void loss_cross_entropy_backward(const float* x, const int64_t* targets, const float* lse,
                                 int64_t n, int64_t c, int64_t ignore_index, float eps,
                                 const float* gout, int64_t gstride, float scale, float* gx);

// Position of the first target outside [0, c) that is not ignore_index (or -1); *valid receives
// the number of targets != ignore_index.
int64_t loss_check_targets(const int64_t* targets, int64_t n, int64_t c, int64_t ignore_index,
                           int64_t* valid);

// Sum of v[0..n) accumulated in double.
double loss_sum(const float* v, int64_t n);

// Elementwise (a - b)^2 into out when out is non-null; returns the sum (double accumulation).
double loss_mse_forward(const float* a, const float* b, int64_t n, float* out);
// ga = 2 (a - b) g scale, gb = -ga (either may be null); g read with stride gstride (0 = scalar).
void loss_mse_backward(const float* a, const float* b, const float* g, int64_t gstride, float scale,
                       int64_t n, float* ga, float* gb);

// Elementwise max(x, 0) - x y + log(1 + exp(-|x|)) into out when non-null; returns the sum.
double loss_bce_logits_forward(const float* x, const float* y, int64_t n, float* out);
// gx = (sigmoid(x) - y) g scale and gy = -x g scale (either may be null).
void loss_bce_logits_backward(const float* x, const float* y, const float* g, int64_t gstride,
                              float scale, int64_t n, float* gx, float* gy);

}  // namespace lmf::cpu
