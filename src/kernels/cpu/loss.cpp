#include "kernels/cpu/loss.h"

#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace lmf::cpu {

namespace {

constexpr int64_t kParallelMin = 32768;

// Row helpers, compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time.
#define LMF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

LMF_CLONES float row_max(const float* x, int64_t c) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < c; ++j) m = std::max(m, x[j]);
  return m;
}

LMF_CLONES float row_sum_exp(const float* x, int64_t c, float m) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < c; ++j) s += kernels::vm::exp(x[j] - m);
  return s;
}

LMF_CLONES double row_sum(const float* x, int64_t c) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < c; ++j) s += x[j];
  return s;
}

// g[j] = w (exp(x[j] - lse) - off): the softmax part of the cross-entropy gradient.
LMF_CLONES void row_softmax_grad(const float* x, int64_t c, float lse, float w, float off,
                                 float* g) {
#pragma omp simd
  for (int64_t j = 0; j < c; ++j) g[j] = w * (kernels::vm::exp(x[j] - lse) - off);
}

#undef LMF_CLONES

inline float sigmoid(float x) {
  const float e = std::exp(-std::abs(x));
  return x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

}  // namespace

void loss_cross_entropy_forward(const float* x, const int64_t* targets, int64_t n, int64_t c,
                                int64_t ignore_index, float eps, float* row_loss, float* lse) {
#pragma omp parallel for schedule(static) if (n * c > kParallelMin)
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * c;
    const float m = row_max(xr, c);
    const float l = m + std::log(row_sum_exp(xr, c, m));
    lse[r] = l;
    const int64_t t = targets[r];
    if (t == ignore_index) {
      row_loss[r] = 0;
      continue;
    }
    const double nll = static_cast<double>(l) - xr[t];
    const double smooth = eps == 0.0f ? 0.0 : static_cast<double>(l) - row_sum(xr, c) / c;
    row_loss[r] = static_cast<float>((1.0 - eps) * nll + eps * smooth);
  }
}

void loss_cross_entropy_backward(const float* x, const int64_t* targets, const float* lse,
                                 int64_t n, int64_t c, int64_t ignore_index, float eps,
                                 const float* gout, int64_t gstride, float scale, float* gx) {
  const float off = eps / static_cast<float>(c);
#pragma omp parallel for schedule(static) if (n * c > kParallelMin)
  for (int64_t r = 0; r < n; ++r) {
    float* gr = gx + r * c;
    const int64_t t = targets[r];
    if (t == ignore_index) {
      std::fill(gr, gr + c, 0.0f);
      continue;
    }
    const float w = gout[r * gstride] * scale;
    row_softmax_grad(x + r * c, c, lse[r], w, off, gr);
    gr[t] -= w * (1.0f - eps);
  }
}

int64_t loss_check_targets(const int64_t* targets, int64_t n, int64_t c, int64_t ignore_index,
                           int64_t* valid) {
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = targets[i];
    if (t == ignore_index) continue;
    if (t < 0 || t >= c) return i;
    ++count;
  }
  *valid = count;
  return -1;
}

double loss_sum(const float* v, int64_t n) {
  double s = 0;
#pragma omp parallel for simd reduction(+ : s) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) s += v[i];
  return s;
}

double loss_mse_forward(const float* a, const float* b, int64_t n, float* out) {
  double s = 0;
#pragma omp parallel for simd reduction(+ : s) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float d = a[i] - b[i];
    const float e = d * d;
    if (out) out[i] = e;
    s += e;
  }
  return s;
}

void loss_mse_backward(const float* a, const float* b, const float* g, int64_t gstride, float scale,
                       int64_t n, float* ga, float* gb) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float v = 2.0f * (a[i] - b[i]) * g[i * gstride] * scale;
    if (ga) ga[i] = v;
    if (gb) gb[i] = -v;
  }
}

double loss_bce_logits_forward(const float* x, const float* y, int64_t n, float* out) {
  double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::max(x[i], 0.0f) - x[i] * y[i] + std::log1p(std::exp(-std::abs(x[i])));
    if (out) out[i] = v;
    s += v;
  }
  return s;
}

void loss_bce_logits_backward(const float* x, const float* y, const float* g, int64_t gstride,
                              float scale, int64_t n, float* gx, float* gy) {
#pragma omp parallel for if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float w = g[i * gstride] * scale;
    if (gx) gx[i] = (sigmoid(x[i]) - y[i]) * w;
    if (gy) gy[i] = -x[i] * w;
  }
}

}  // namespace lmf::cpu
