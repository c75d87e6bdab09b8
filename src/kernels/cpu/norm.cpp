#include "kernels/cpu/norm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/cpu/elementwise.h"

namespace lmf::kernels {

namespace {

// Mean and variance in one pass: sums of d and d^2 for d = x - x[0], in double (omp simd
// reductions vectorise them). Shifting by a sample keeps S2/n - (S1/n)^2 free of cancellation
// when |mean| >> std.
template <class T>
LMF_ALWAYS_INLINE void row_moments(const T* x, int64_t n, double& mean, double& var) {
  const double shift = ld(x[0]);
  double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t i = 0; i < n; ++i) {
    const double d = ld(x[i]) - shift;
    s1 += d;
    s2 += d * d;
  }
  const double m = s1 / static_cast<double>(n);
  mean = shift + m;
  var = std::max(0.0, s2 / static_cast<double>(n) - m * m);
}

// Mean of squares in double.
template <class T>
LMF_ALWAYS_INLINE double row_mean_sq(const T* x, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const double v = ld(x[i]);
    s += v * v;
  }
  return s / static_cast<double>(n);
}

// f32 sums of f(i) over a row (gradient terms; f32 is accurate enough there).
template <class F>
LMF_ALWAYS_INLINE float lane_sum(int64_t n, F f) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += f(i);
  return s;
}

// gy * w (or gy without a weight); HW is a compile-time flag so that the row loops have no
// conditional load and vectorise.
template <bool HW, class T>
LMF_ALWAYS_INLINE float wgrad(const T* gr, const T* w, int64_t c) {
  if constexpr (HW)
    return ld(gr[c]) * ld(w[c]);
  else
    return ld(gr[c]);
}

// Calls fn(std::bool_constant<w != nullptr>).
template <class T, class Fn>
void with_weight(const T* w, Fn&& fn) {
  if (w)
    fn(std::true_type{});
  else
    fn(std::false_type{});
}

// Row count above which rows are split over threads (about kParallelGrain / 4 elements).
int64_t row_grain(int64_t cols) {
  return std::max<int64_t>(1, kParallelGrain / 4 / cols);
}
// Splits [0, rows) over threads like for_range, also passing the thread index (for partials).
template <class Body>
void for_rows_tid(int64_t rows, int nt, const Body& body) {
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int64_t n = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t b = rows * t / n, e = rows * (t + 1) / n;
    run_range(b, e, [&](int64_t r) LMF_INLINE_LAMBDA { body(r, static_cast<int>(t)); });
  }
}

// Per-thread [cols] double partials for the weight/bias gradients, summed at the end.
struct Partials {
  int64_t cols;
  std::vector<double> buf;
  Partials(int64_t c, int n) : cols(c), buf(static_cast<size_t>(c) * 2 * n, 0.0) {}
  double* gw(int t) { return buf.data() + static_cast<size_t>(t) * 2 * cols; }
  double* gb(int t) { return gw(t) + cols; }
};

}  // namespace

namespace {
// LayerNorm of x (+ res, when given: the sum is written to y first and normalised in place).
template <class T>
void layer_norm_fwd_impl(const T* x, const T* res, const T* w, const T* b, T* y, float* mean,
                         float* rstd, int64_t rows, int64_t cols, float eps) {
  for_range(rows, row_grain(cols), [=](int64_t r) LMF_INLINE_LAMBDA {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    if (res) {
      const T* rr = res + r * cols;
      for (int64_t c = 0; c < cols; ++c) st(yr[c], ld(xr[c]) + ld(rr[c]));
      xr = yr;
    }
    double mu, var;
    row_moments(xr, cols, mu, var);
    const float rs = static_cast<float>(1.0 / std::sqrt(var + eps));
    // The mean as f32 hi + lo: x - hi is exact for x near the mean, so a large common offset
    // (mean >> std) does not cost the normalised values their precision.
    const float m = static_cast<float>(mu);
    const float lo = static_cast<float>((mu - m) * rs);
    mean[r] = m;
    rstd[r] = rs;
    if (w && b) {
      for (int64_t c = 0; c < cols; ++c)
        st(yr[c], ((ld(xr[c]) - m) * rs - lo) * ld(w[c]) + ld(b[c]));
    } else if (w) {
      for (int64_t c = 0; c < cols; ++c) st(yr[c], ((ld(xr[c]) - m) * rs - lo) * ld(w[c]));
    } else if (b) {
      for (int64_t c = 0; c < cols; ++c) st(yr[c], (ld(xr[c]) - m) * rs - lo + ld(b[c]));
    } else {
      for (int64_t c = 0; c < cols; ++c) st(yr[c], (ld(xr[c]) - m) * rs - lo);
    }
  });
}
}  // namespace

template <class T>
void layer_norm_fwd(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd,
                    int64_t rows, int64_t cols, float eps) {
  layer_norm_fwd_impl<T>(x, nullptr, w, b, y, mean, rstd, rows, cols, eps);
}

template <class T>
void add_layer_norm_fwd(const T* x, const T* res, const T* w, const T* b, T* y, float* mean,
                        float* rstd, int64_t rows, int64_t cols, float eps) {
  layer_norm_fwd_impl<T>(x, res, w, b, y, mean, rstd, rows, cols, eps);
}

template <class T>
void layer_norm_bwd(const T* x, const T* w, const float* mean, const float* rstd, const T* gy,
                    T* gx, float* gw, float* gb, int64_t rows, int64_t cols) {
  const int nt = rows > row_grain(cols) ? omp_get_max_threads() : 1;
  const bool need_wb = gw || gb;
  Partials part(need_wb ? cols : 0, nt);
  with_weight(w, [&](auto has_w) {
    constexpr bool HW = decltype(has_w)::value;
    for_rows_tid(rows, nt, [&](int64_t r, int tid) LMF_INLINE_LAMBDA {
      const T* xr = x + r * cols;
      const T* gr = gy + r * cols;
      const float m = mean[r], rs = rstd[r];
      const float inv_n = 1.f / static_cast<float>(cols);
      const float a =
          lane_sum(cols, [=](int64_t c) LMF_INLINE_LAMBDA { return wgrad<HW>(gr, w, c); });
      const float bsum = lane_sum(cols, [=](int64_t c) LMF_INLINE_LAMBDA {
        return wgrad<HW>(gr, w, c) * (ld(xr[c]) - m) * rs;
      });
      const float am = a * inv_n, bm = bsum * inv_n;
      T* gxr = gx + r * cols;
      for (int64_t c = 0; c < cols; ++c)
        st(gxr[c], rs * (wgrad<HW>(gr, w, c) - am - (ld(xr[c]) - m) * rs * bm));
      if (need_wb) {
        double* pw = part.gw(tid);
        double* pb = part.gb(tid);
        for (int64_t c = 0; c < cols; ++c) {
          const float gv = ld(gr[c]);
          pw[c] += gv * ((ld(xr[c]) - m) * rs);
          pb[c] += gv;
        }
      }
    });
  });
  if (!need_wb) return;
  for (int64_t c = 0; c < cols; ++c) {
    double sw = 0, sb = 0;
    for (int t = 0; t < nt; ++t) sw += part.gw(t)[c], sb += part.gb(t)[c];
    if (gw) gw[c] = static_cast<float>(sw);
    if (gb) gb[c] = static_cast<float>(sb);
  }
}

// y = w * round_T(x * rs) over one row (w null: round_T(x * rs)): HF rounds the normalised value
// to the input dtype before multiplying by the weight.
template <class T>
LMF_ALWAYS_INLINE void rms_scale_row(const T* x, const T* w, T* y, int64_t cols, float rs) {
  if (w) {
    for (int64_t c = 0; c < cols; ++c) {
      T h;
      st(h, ld(x[c]) * rs);
      st(y[c], ld(w[c]) * ld(h));
    }
  } else {
    for (int64_t c = 0; c < cols; ++c) st(y[c], ld(x[c]) * rs);
  }
}

template <class T>
void rms_norm_fwd(const T* x, const T* w, T* y, float* rstd, int64_t rows, int64_t cols,
                  float eps) {
  for_range(rows, row_grain(cols), [=](int64_t r) LMF_INLINE_LAMBDA {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const double ms = row_mean_sq(xr, cols);
    const float rs = static_cast<float>(1.0 / std::sqrt(ms + eps));
    rstd[r] = rs;
    rms_scale_row(xr, w, yr, cols, rs);
  });
}

template <class T>
void add_rms_norm_fwd(const T* x, const T* res, T* h, const T* w, T* y, int64_t rows, int64_t cols,
                      float eps) {
  for_range(rows, row_grain(cols), [=](int64_t r) LMF_INLINE_LAMBDA {
    const T* xr = x + r * cols;
    const T* rr = res + r * cols;
    T* hr = h + r * cols;
    T* yr = y + r * cols;
    for (int64_t c = 0; c < cols; ++c) st(hr[c], ld(xr[c]) + ld(rr[c]));
    const float rs = static_cast<float>(1.0 / std::sqrt(row_mean_sq(hr, cols) + eps));
    rms_scale_row(hr, w, yr, cols, rs);
  });
}

template <class T>
void rms_norm_bwd(const T* x, const T* w, const float* rstd, const T* gy, T* gx, float* gw,
                  int64_t rows, int64_t cols) {
  const int nt = rows > row_grain(cols) ? omp_get_max_threads() : 1;
  Partials part(gw ? cols : 0, nt);
  with_weight(w, [&](auto has_w) {
    constexpr bool HW = decltype(has_w)::value;
    for_rows_tid(rows, nt, [&](int64_t r, int tid) LMF_INLINE_LAMBDA {
      const T* xr = x + r * cols;
      const T* gr = gy + r * cols;
      const float rs = rstd[r];
      // y = g . x * rs  =>  dx = rs * g - x * rs^3 * mean(g x)
      const float dot = lane_sum(
          cols, [=](int64_t c) LMF_INLINE_LAMBDA { return wgrad<HW>(gr, w, c) * ld(xr[c]); });
      const float k = dot * rs * rs * rs / static_cast<float>(cols);
      T* gxr = gx + r * cols;
      for (int64_t c = 0; c < cols; ++c) st(gxr[c], rs * wgrad<HW>(gr, w, c) - ld(xr[c]) * k);
      if (gw) {
        double* pw = part.gw(tid);
        for (int64_t c = 0; c < cols; ++c) pw[c] += ld(gr[c]) * ld(xr[c]) * rs;
      }
    });
  });
  if (!gw) return;
  for (int64_t c = 0; c < cols; ++c) {
    double s = 0;
    for (int t = 0; t < nt; ++t) s += part.gw(t)[c];
    gw[c] = static_cast<float>(s);
  }
}

#define LMF_INSTANTIATE(T)                                                                        \
  template void layer_norm_fwd<T>(const T*, const T*, const T*, T*, float*, float*, int64_t,      \
                                  int64_t, float);                                                \
  template void add_layer_norm_fwd<T>(const T*, const T*, const T*, const T*, T*, float*, float*, \
                                      int64_t, int64_t, float);                                   \
  template void layer_norm_bwd<T>(const T*, const T*, const float*, const float*, const T*, T*,   \
                                  float*, float*, int64_t, int64_t);                              \
  template void rms_norm_fwd<T>(const T*, const T*, T*, float*, int64_t, int64_t, float);         \
  template void add_rms_norm_fwd<T>(const T*, const T*, T*, const T*, T*, int64_t, int64_t,       \
                                    float);                                                       \
  template void rms_norm_bwd<T>(const T*, const T*, const float*, const T*, T*, float*, int64_t,  \
                                int64_t);
LMF_INSTANTIATE(float)
LMF_INSTANTIATE(bf16_t)
#undef LMF_INSTANTIATE

}  // namespace lmf::kernels
