#include "kernels/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/elementwise.h"

namespace lmf::kernels {

namespace {


constexpr int64_t kInnerBlock = 64;

// One contiguous row held in f32 (x may alias y). Reductions are omp simd so they vectorise.
LMF_ALWAYS_INLINE void row_softmax(const float* x, float* y, int64_t n, bool log) {
  float m = -__builtin_inff();
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  if (m == -__builtin_inff()) m = 0.f;  // all -inf: exp gives 0/0 = NaN like torch
  float s = 0.f;
  if (log) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += vm::exp(x[i] - m);
    const float shift = m + std::log(s);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] - shift;
    return;
  }
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const float e = vm::exp(x[i] - m);
    y[i] = e;
    s += e;
  }
  const float inv = 1.f / s;
  for (int64_t i = 0; i < n; ++i) y[i] *= inv;
}

LMF_ALWAYS_INLINE void row_softmax_bwd(const float* y, const float* gy, float* gx, int64_t n,
                                       bool log) {
  float s = 0.f;
  if (log) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += gy[i];
    for (int64_t i = 0; i < n; ++i) gx[i] = gy[i] - vm::exp(y[i]) * s;
    return;
  }
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += gy[i] * y[i];
  for (int64_t i = 0; i < n; ++i) gx[i] = y[i] * (gy[i] - s);
}

template <class T>
LMF_ALWAYS_INLINE void to_f32(const T* x, float* buf, int64_t n) {
  for (int64_t i = 0; i < n; ++i) buf[i] = ld(x[i]);
}
template <class T>
LMF_ALWAYS_INLINE void from_f32(const float* buf, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) st(y[i], buf[i]);
}

}  // namespace

// Rows of at most this many bf16 elements are converted through a stack buffer.
constexpr int64_t kStackRow = 4096;

// Row count above which rows are split over threads (about kParallelGrain / 4 elements).
static int64_t row_grain(int64_t cols) {
  return std::max<int64_t>(1, kParallelGrain / 4 / cols);
}

template <class T>
void softmax_fwd(const T* x, T* y, int64_t outer, int64_t red, int64_t inner, bool log) {
  if (inner == 1) {
    for_range(outer, row_grain(red), [=](int64_t o) LMF_INLINE_LAMBDA {
      if constexpr (std::is_same_v<T, float>) {
        row_softmax(x + o * red, y + o * red, red, log);
      } else {
        float stack[kStackRow];
        std::vector<float> heap(red > kStackRow ? red : 0);
        float* buf = red > kStackRow ? heap.data() : stack;
        to_f32(x + o * red, buf, red);
        row_softmax(buf, buf, red, log);
        from_f32(buf, y + o * red, red);
      }
    });
    return;
  }
  // Middle dim: blocks of kInnerBlock columns, each reduced along r with vector loops over i.
  const int64_t nb = (inner + kInnerBlock - 1) / kInnerBlock;
  for_range(outer * nb, row_grain(red * kInnerBlock), [=](int64_t t) LMF_INLINE_LAMBDA {
    const int64_t o = t / nb, c0 = (t % nb) * kInnerBlock;
    const int64_t len = std::min(kInnerBlock, inner - c0);
    const T* xb = x + o * red * inner + c0;
    T* yb = y + o * red * inner + c0;
    float m[kInnerBlock], s[kInnerBlock];
    for (int64_t i = 0; i < len; ++i) m[i] = -__builtin_inff(), s[i] = 0.f;
    for (int64_t r = 0; r < red; ++r)
      for (int64_t i = 0; i < len; ++i) {
        const float v = ld(xb[r * inner + i]);
        m[i] = v > m[i] ? v : m[i];
      }
    for (int64_t i = 0; i < len; ++i) m[i] = m[i] == -__builtin_inff() ? 0.f : m[i];
    for (int64_t r = 0; r < red; ++r)
      for (int64_t i = 0; i < len; ++i) s[i] += vm::exp(ld(xb[r * inner + i]) - m[i]);
    for (int64_t i = 0; i < len; ++i) s[i] = log ? m[i] + std::log(s[i]) : 1.f / s[i];
    for (int64_t r = 0; r < red; ++r)
      for (int64_t i = 0; i < len; ++i) {
        const float v = ld(xb[r * inner + i]);
        st(yb[r * inner + i], log ? v - s[i] : vm::exp(v - m[i]) * s[i]);
      }
  });
}

template <class T>
void softmax_bwd(const T* y, const T* gy, T* gx, int64_t outer, int64_t red, int64_t inner,
                 bool log) {
  if (inner == 1) {
    for_range(outer, row_grain(red), [=](int64_t o) LMF_INLINE_LAMBDA {
      if constexpr (std::is_same_v<T, float>) {
        row_softmax_bwd(y + o * red, gy + o * red, gx + o * red, red, log);
      } else {
        float stack[2 * kStackRow];
        std::vector<float> heap(red > kStackRow ? 2 * red : 0);
        float* by = red > kStackRow ? heap.data() : stack;
        float* bg = by + red;
        to_f32(y + o * red, by, red);
        to_f32(gy + o * red, bg, red);
        row_softmax_bwd(by, bg, bg, red, log);
        from_f32(bg, gx + o * red, red);
      }
    });
    return;
  }
  const int64_t nb = (inner + kInnerBlock - 1) / kInnerBlock;
  for_range(outer * nb, row_grain(red * kInnerBlock), [=](int64_t t) LMF_INLINE_LAMBDA {
    const int64_t o = t / nb, c0 = (t % nb) * kInnerBlock;
    const int64_t len = std::min(kInnerBlock, inner - c0);
    const int64_t base = o * red * inner + c0;
    float s[kInnerBlock];
    for (int64_t i = 0; i < len; ++i) s[i] = 0.f;
    for (int64_t r = 0; r < red; ++r)
      for (int64_t i = 0; i < len; ++i) {
        const int64_t k = base + r * inner + i;
        s[i] += log ? ld(gy[k]) : ld(gy[k]) * ld(y[k]);
      }
    for (int64_t r = 0; r < red; ++r)
      for (int64_t i = 0; i < len; ++i) {
        const int64_t k = base + r * inner + i;
        const float yv = ld(y[k]), g = ld(gy[k]);
        st(gx[k], log ? g - vm::exp(yv) * s[i] : yv * (g - s[i]));
      }
  });
}

template void softmax_fwd<float>(const float*, float*, int64_t, int64_t, int64_t, bool);
template void softmax_fwd<bf16_t>(const bf16_t*, bf16_t*, int64_t, int64_t, int64_t, bool);
template void softmax_bwd<float>(const float*, const float*, float*, int64_t, int64_t, int64_t,
                                 bool);
template void softmax_bwd<bf16_t>(const bf16_t*, const bf16_t*, bf16_t*, int64_t, int64_t, int64_t,
                                  bool);

}  // namespace lmf::kernels
