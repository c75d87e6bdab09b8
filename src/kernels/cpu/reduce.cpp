#include "kernels/cpu/reduce.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/elementwise.h"

namespace lmf::kernels {

namespace {

LMF_ALWAYS_INLINE double ldd(float v) {
  return v;
}
LMF_ALWAYS_INLINE double ldd(double v) {
  return v;
}
LMF_ALWAYS_INLINE double ldd(bf16_t v) {
  return from_bf16(v.bits);
}
LMF_ALWAYS_INLINE double ldd(int32_t v) {
  return v;
}
LMF_ALWAYS_INLINE double ldd(int64_t v) {
  return static_cast<double>(v);
}

// Sum of n contiguous values in double (an omp simd reduction, so it vectorises).
template <class In>
LMF_ALWAYS_INLINE double row_sum(const In* x, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += ldd(x[i]);
  return s;
}

constexpr int64_t kChunk = 1 << 16;  // fixed chunking keeps results independent of threads
constexpr int64_t kInnerBlock = 256;

}  // namespace

template <class In>
void sum_ori(const In* x, double* out, int64_t outer, int64_t red, int64_t inner) {
  if (inner == 1 && outer == 1) {
    const int64_t nc = (red + kChunk - 1) / kChunk;
    std::vector<double> part(std::max<int64_t>(nc, 1), 0.0);
    double* pp = part.data();
    for_range(nc, 1, [=](int64_t c) LMF_INLINE_LAMBDA {
      pp[c] = row_sum(x + c * kChunk, std::min(kChunk, red - c * kChunk));
    });
    double s = 0;
    for (double p : part) s += p;
    out[0] = s;
    return;
  }
  if (inner == 1) {
    for_range(outer, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(red, 1)),
              [=](int64_t o) LMF_INLINE_LAMBDA { out[o] = row_sum(x + o * red, red); });
    return;
  }
  const int64_t nb = (inner + kInnerBlock - 1) / kInnerBlock;
  const int64_t work = red * std::min(inner, kInnerBlock);
  for_range(outer * nb, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(work, 1)),
            [=](int64_t t) LMF_INLINE_LAMBDA {
              const int64_t o = t / nb, c0 = (t % nb) * kInnerBlock;
              const int64_t len = std::min(kInnerBlock, inner - c0);
              double acc[kInnerBlock];
              for (int64_t i = 0; i < len; ++i) acc[i] = 0;
              for (int64_t r = 0; r < red; ++r) {
                const In* xr = x + (o * red + r) * inner + c0;
                for (int64_t i = 0; i < len; ++i) acc[i] += ldd(xr[i]);
              }
              for (int64_t i = 0; i < len; ++i) out[o * inner + c0 + i] = acc[i];
            });
}

template <class T>
void from_double(const double* x, T* y, int64_t n, double scale) {
  for (int64_t i = 0; i < n; ++i) y[i] = lmf::from_double<T>(x[i] * scale);
}

template <class T>
void max_ori(const T* x, T* vals, int64_t* idx, int64_t outer, int64_t red, int64_t inner) {
#pragma omp parallel for if (outer * red * inner > kParallelGrain && outer > 1) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const T* p = x + o * red * inner + i;
      double best = ldd(p[0]);
      int64_t bi = 0;
      for (int64_t r = 1; r < red && best == best; ++r) {
        const double v = ldd(p[r * inner]);
        if (v > best || v != v) best = v, bi = r;
      }
      if (vals) vals[o * inner + i] = p[bi * inner];
      if (idx) idx[o * inner + i] = bi;
    }
  }
}

template <class T>
void scatter_ori(const T* g, const int64_t* idx, T* out, int64_t outer, int64_t red,
                 int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i)
      out[(o * red + idx[o * inner + i]) * inner + i] = g[o * inner + i];
}

template void sum_ori<float>(const float*, double*, int64_t, int64_t, int64_t);
template void sum_ori<bf16_t>(const bf16_t*, double*, int64_t, int64_t, int64_t);
template void sum_ori<double>(const double*, double*, int64_t, int64_t, int64_t);
template void from_double<float>(const double*, float*, int64_t, double);
template void from_double<bf16_t>(const double*, bf16_t*, int64_t, double);
template void max_ori<float>(const float*, float*, int64_t*, int64_t, int64_t, int64_t);
template void max_ori<bf16_t>(const bf16_t*, bf16_t*, int64_t*, int64_t, int64_t, int64_t);
template void max_ori<int32_t>(const int32_t*, int32_t*, int64_t*, int64_t, int64_t, int64_t);
template void max_ori<int64_t>(const int64_t*, int64_t*, int64_t*, int64_t, int64_t, int64_t);
template void scatter_ori<float>(const float*, const int64_t*, float*, int64_t, int64_t, int64_t);
template void scatter_ori<bf16_t>(const bf16_t*, const int64_t*, bf16_t*, int64_t, int64_t,
                                  int64_t);

}  // namespace lmf::kernels
