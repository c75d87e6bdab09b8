// Small-m f32 GEMM against nn.Linear weights read in place: C[m, n] = act(A[m, k] W[n, k]^T + b).
// oneDNN repacks the whole weight on every call, which at m <= 32 (batch-1 inference) costs more
// than the multiply itself; here each output is a dot product of two contiguous rows, computed
// in 4x4 register tiles with AVX-512, so W is streamed once and never copied.
// GCC 12 flags the _mm512_undefined_ps() inside unpack/extract intrinsics as uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <utility>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/simd.h"

namespace lmf::cpu {

namespace {

namespace vm = kernels::vm;

constexpr int kMr = 4, kNr = 4;

// out[i * ldo + j] = sum_p a[i * lda + p] * w[j * ldw + p] for i < MR, j < NR. pf (or null):
// the next tile's first weight row, prefetched alongside (short rows defeat the hardware
// prefetcher, and the first pass over a weight tile waits on memory).
template <int MR, int NR>
LMF_TARGET_AVX512 void tile(const float* a, int64_t lda, const float* w, int64_t ldw, int64_t k,
                            float* out, int64_t ldo, const float* pf) {
  __m512 acc[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    if (pf) {
#pragma GCC unroll 4
      for (int j = 0; j < kNr; ++j)
        _mm_prefetch(reinterpret_cast<const char*>(pf + j * ldw + p), _MM_HINT_T0);
    }
    __m512 wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_loadu_ps(w + j * ldw + p);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_loadu_ps(a + i * lda + p);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(av, wv[j], acc[i][j]);
    }
  }
  if (p < k) {
    const __mmask16 mk = kernels::tail_mask16(k - p);
    __m512 wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) wv[j] = _mm512_maskz_loadu_ps(mk, w + j * ldw + p);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_maskz_loadu_ps(mk, a + i * lda + p);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(av, wv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    const __m512 z = _mm512_setzero_ps();
    const __m128 s =
        kernels::hsum4(acc[i][0], NR > 1 ? acc[i][NR > 1 ? 1 : 0] : z,
                       NR > 2 ? acc[i][NR > 2 ? 2 : 0] : z, NR > 3 ? acc[i][NR > 3 ? 3 : 0] : z);
    if constexpr (NR == 4) {
      _mm_storeu_ps(out + i * ldo, s);
    } else {
      alignas(16) float t[4];
      _mm_store_ps(t, s);
      for (int j = 0; j < NR; ++j) out[i * ldo + j] = t[j];
    }
  }
}

template <int MR>
LMF_TARGET_AVX512 void tile_n(int nr, const float* a, int64_t lda, const float* w, int64_t ldw,
                              int64_t k, float* out, int64_t ldo, const float* pf) {
  switch (nr) {
    case 4:
      return tile<MR, 4>(a, lda, w, ldw, k, out, ldo, pf);
    case 3:
      return tile<MR, 3>(a, lda, w, ldw, k, out, ldo, pf);
    case 2:
      return tile<MR, 2>(a, lda, w, ldw, k, out, ldo, pf);
    default:
      return tile<MR, 1>(a, lda, w, ldw, k, out, ldo, pf);
  }
}

LMF_TARGET_AVX512 void tile_mn(int mr, int nr, const float* a, int64_t lda, const float* w,
                               int64_t ldw, int64_t k, float* out, int64_t ldo, const float* pf) {
  switch (mr) {
    case 4:
      return tile_n<4>(nr, a, lda, w, ldw, k, out, ldo, pf);
    case 3:
      return tile_n<3>(nr, a, lda, w, ldw, k, out, ldo, pf);
    case 2:
      return tile_n<2>(nr, a, lda, w, ldw, k, out, ldo, pf);
    default:
      return tile_n<1>(nr, a, lda, w, ldw, k, out, ldo, pf);
  }
}

// Bias and activation over one row segment y[0, n), in place (vectorised by the compiler).
template <GemmAct A>
LMF_TARGET_AVX512 void epilogue_row(float* __restrict y, const float* __restrict bias, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    float v = y[j] + (bias ? bias[j] : 0.0f);
    if constexpr (A == GemmAct::relu) v = v > 0.0f ? v : 0.0f;
    if constexpr (A == GemmAct::gelu_erf) v = 0.5f * v * (1.0f + vm::erf(v * 0.70710678118654752f));
    if constexpr (A == GemmAct::gelu_tanh)
      v = 0.5f * v * (1.0f + vm::tanh(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    if constexpr (A == GemmAct::tanh) v = vm::tanh(v);
    y[j] = v;
  }
}

// exp(x) for x <= 0 (the erf below needs exp(-x^2)): vm::exp's reduction and polynomial, with
// the 2^n scaling done by vscalefps.
LMF_TARGET_AVX512 LMF_ALWAYS_INLINE __m512 exp_nonpos(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.33654f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// GELU (erf) of y + bias over n elements in place: vm::erf's formulas (Abramowitz-Stegun with a
// Taylor series near 0), with its division done as rcp14 plus a Newton step (~1e-8 relative),
// which the compiler will not do for the scalar loop; 3x faster than epilogue_row<gelu_erf>.
LMF_TARGET_AVX512 void gelu_erf_row(float* y, const float* bias, int64_t n) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 mk = kernels::tail_mask16(n - j);
    __m512 v = _mm512_maskz_loadu_ps(mk, y + j);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, bias + j));
    const __m512 z = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f));
    const __m512 az = _mm512_abs_ps(z);
    const __m512 d = _mm512_fmadd_ps(az, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f));
    __m512 t = _mm512_rcp14_ps(d);
    t = _mm512_mul_ps(t, _mm512_fnmadd_ps(d, t, _mm512_set1_ps(2.0f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    p = _mm512_mul_ps(p, t);
    const __m512 e =
        _mm512_fnmadd_ps(p, exp_nonpos(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), az), az)),
                         _mm512_set1_ps(1.0f));
    // erf is odd: copy z's sign onto e.
    const __m512 sign = _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(int(0x80000000u))));
    const __m512 big = _mm512_or_ps(e, sign);
    const __m512 z2 = _mm512_mul_ps(z, z);
    __m512 q = _mm512_set1_ps(0.00012055332981789664f);
    q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(-0.0008548327023450852f));
    q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(0.005223977625442188f));
    q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(-0.026866170645131252f));
    q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(0.11283791670955126f));
    q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(-0.37612638903183754f));
    q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(1.1283791670955126f));
    const __m512 small = _mm512_mul_ps(z, q);
    const __mmask16 near0 = _mm512_cmp_ps_mask(az, _mm512_set1_ps(0.5f), _CMP_LT_OQ);
    const __m512 erf = _mm512_mask_blend_ps(near0, big, small);
    const __m512 g = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v),
                                   _mm512_add_ps(_mm512_set1_ps(1.0f), erf));
    _mm512_mask_storeu_ps(y + j, mk, g);
  }
}

// SiLU of y + bias over n elements in place: v * sigmoid(v), sigmoid from e = exp(-|v|) (never
// overflows) as 1 / (1 + e) or e / (1 + e) by sign, with an exact division. The scalar loop
// above does not vectorise its exp and took 6 % of a SmolLM2 prefill.
LMF_TARGET_AVX512 void silu_row(float* y, const float* bias, int64_t n) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 mk = kernels::tail_mask16(n - j);
    __m512 v = _mm512_maskz_loadu_ps(mk, y + j);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, bias + j));
    const __m512 e = exp_nonpos(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(v)));
    const __m512 one_plus = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
    const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 num = _mm512_mask_blend_ps(neg, _mm512_set1_ps(1.0f), e);
    _mm512_mask_storeu_ps(y + j, mk, _mm512_mul_ps(v, _mm512_div_ps(num, one_plus)));
  }
}

void epilogue(GemmAct act, float* y, const float* bias, int64_t n) {
  switch (act) {
    case GemmAct::none:
      return bias ? epilogue_row<GemmAct::none>(y, bias, n) : void();
    case GemmAct::relu:
      return epilogue_row<GemmAct::relu>(y, bias, n);
    case GemmAct::gelu_erf:
      return gelu_erf_row(y, bias, n);
    case GemmAct::gelu_tanh:
      return epilogue_row<GemmAct::gelu_tanh>(y, bias, n);
    case GemmAct::silu:
      return silu_row(y, bias, n);
    case GemmAct::tanh:
      return epilogue_row<GemmAct::tanh>(y, bias, n);
  }
}

// Columns [j0, j1) of C for all rows.
void run_columns(int64_t m, int64_t j0, int64_t j1, int64_t k, const float* a, int64_t lda,
                 const float* w, int64_t ldw, const float* bias, float* c, int64_t ldc,
                 GemmAct act) {
  for (int64_t j = j0; j < j1; j += kNr) {
    const int nr = static_cast<int>(std::min<int64_t>(kNr, j1 - j));
    // Prefetch the next full tile during the first pass over this one.
    const float* next = j + 2 * kNr <= j1 ? w + (j + kNr) * ldw : nullptr;
    for (int64_t i = 0; i < m; i += kMr) {
      const int mr = static_cast<int>(std::min<int64_t>(kMr, m - i));
      tile_mn(mr, nr, a + i * lda, lda, w + j * ldw, ldw, k, c + i * ldc + j, ldc,
              i == 0 ? next : nullptr);
    }
  }
  for (int64_t i = 0; i < m; ++i)
    epilogue(act, c + i * ldc + j0, bias ? bias + j0 : nullptr, j1 - j0);
}

// ---- packed weights ------------------------------------------------------------------------

constexpr int64_t kPanel = kPackPanel;
int64_t panel_count(int64_t n) {
  return (n + kPanel - 1) / kPanel;
}
constexpr int kMaxMr = 12;
constexpr int64_t kKc = 256;  // k block: an 8-row A slice and a 32 KiB weight slice stay in L1/L2

// C rows [0, MR) x columns [0, ncols) (+)= A[0:MR, 0:kc] * panel slice [kc][32].
template <int MR>
LMF_TARGET_AVX512 void packed_tile(const float* a, int64_t lda, const float* pw, int64_t kc,
                                   float* c, int64_t ldc, int ncols, bool accumulate) {
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    _mm_prefetch(reinterpret_cast<const char*>(pw + (p + 64) * kPanel), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(pw + (p + 64) * kPanel + 16), _MM_HINT_T0);
    const __m512 w0 = _mm512_load_ps(pw + p * kPanel);
    const __m512 w1 = _mm512_load_ps(pw + p * kPanel + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * lda + p]);
      acc0[i] = _mm512_fmadd_ps(av, w0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(av, w1, acc1[i]);
    }
  }
  const __mmask16 m0 = kernels::tail_mask16(ncols), m1 = kernels::tail_mask16(ncols - 16);
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      acc0[i] = _mm512_add_ps(acc0[i], _mm512_maskz_loadu_ps(m0, ci));
      acc1[i] = _mm512_add_ps(acc1[i], _mm512_maskz_loadu_ps(m1, ci + 16));
    }
    _mm512_mask_storeu_ps(ci, m0, acc0[i]);
    _mm512_mask_storeu_ps(ci + 16, m1, acc1[i]);
  }
}

template <int... MR>
LMF_TARGET_AVX512 void packed_tile_any(int mr, std::integer_sequence<int, MR...>, const float* a,
                                       int64_t lda, const float* pw, int64_t kc, float* c,
                                       int64_t ldc, int ncols, bool accumulate) {
  ((mr == MR + 1 ? packed_tile<MR + 1>(a, lda, pw, kc, c, ldc, ncols, accumulate) : void()), ...);
}

// C[0:m, 0:ncols] = A[0:m, 0:k] x one packed panel [k][32], k-blocked, rows in blocks of <= 12.
void panel_product(int64_t m, int64_t k, const float* a, int64_t lda, const float* panel, float* c,
                   int64_t ldc, int ncols) {
  const int64_t blocks = (m + kMaxMr - 1) / kMaxMr;
  for (int64_t p0 = 0; p0 < k; p0 += kKc) {
    const int64_t kc = std::min(kKc, k - p0);
    for (int64_t b = 0, i0 = 0; b < blocks; ++b) {
      const int64_t i1 = m * (b + 1) / blocks;
      packed_tile_any(static_cast<int>(i1 - i0), std::make_integer_sequence<int, kMaxMr>(),
                      a + i0 * lda + p0, lda, panel + p0 * kPanel, kc, c + i0 * ldc, ldc, ncols,
                      p0 > 0);
      i0 = i1;
    }
  }
}

// Panels [q0, q1) of C for all m rows, then bias and activation over those columns.
void run_panels(int64_t m, int64_t n, int64_t k, int64_t q0, int64_t q1, const float* a,
                int64_t lda, const float* packed, const float* bias, GemmAct act, float* c,
                int64_t ldc) {
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t j0 = q * kPanel;
    const int ncols = static_cast<int>(std::min<int64_t>(kPanel, n - j0));
    panel_product(m, k, a, lda, packed + q * k * kPanel, c + j0, ldc, ncols);
    if (bias || act != GemmAct::none)
      for (int64_t i = 0; i < m; ++i)
        epilogue(act, c + i * ldc + j0, bias ? bias + j0 : nullptr, ncols);
  }
}

// Gated panels [q0, q1): the gate panel's product into C, the up panel's into a per-thread
// scratch block, then C = act(C) * scratch while both are in L1/L2.
void run_gated_panels(int64_t m, int64_t n, int64_t k, int64_t q0, int64_t q1, const float* a,
                      int64_t lda, const float* packed, GemmAct act, float* c, int64_t ldc) {
  thread_local std::vector<float> up;
  up.resize(static_cast<size_t>(m * kPanel));
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t j0 = q * kPanel;
    const int ncols = static_cast<int>(std::min<int64_t>(kPanel, n - j0));
    panel_product(m, k, a, lda, packed + 2 * q * k * kPanel, c + j0, ldc, ncols);
    panel_product(m, k, a, lda, packed + (2 * q + 1) * k * kPanel, up.data(), kPanel, ncols);
    for (int64_t i = 0; i < m; ++i) {
      float* ci = c + i * ldc + j0;
      epilogue(act, ci, nullptr, ncols);
      const float* ui = up.data() + i * kPanel;
#pragma omp simd
      for (int j = 0; j < ncols; ++j) ci[j] *= ui[j];
    }
  }
}

// A row bound from the environment (negative values read as 0), or `fallback` when unset.
int64_t env_bound(const char* name, int64_t fallback) {
  const char* env = std::getenv(name);
  return env && *env ? std::max<int64_t>(0, std::atoll(env)) : fallback;
}

std::atomic<int64_t>& packed_gemm_bound() {
  static std::atomic<int64_t> bound{env_bound("LMFORGE_PACKED_GEMM_M", 128)};
  return bound;
}

std::atomic<int64_t>& small_gemm_bound() {
  static std::atomic<int64_t> bound{env_bound("LMFORGE_SMALL_GEMM_M", 32)};
  return bound;
}

}  // namespace

int64_t small_gemm_max_m() {
  return small_gemm_bound().load(std::memory_order_relaxed);
}
void set_small_gemm_max_m(int64_t m) {
  small_gemm_bound().store(std::max<int64_t>(0, m));
}

bool gemm_small_applies(const GemmDesc& d) {
  return d.m <= small_gemm_max_m() && d.k > 0 && d.batch.empty() && d.ab_type == DType::f32 &&
         d.c_type == DType::f32 && (!d.has_bias || d.bias_type == DType::f32) && !d.accumulate &&
         d.a_cs == 1 && d.b_rs == 1 && d.c_rs >= d.n && kernels::cpu_has_avx512();
}

void gemm_small(const GemmDesc& d, const float* a, const float* w, const float* bias, float* c) {
  const int64_t tiles = (d.n + kNr - 1) / kNr;
  // Two threads pay off once each has a few tens of microseconds of work.
  const int nt = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), tiles));
  if (nt <= 1 || !small_gemm_parallel(d.m, d.n, d.k)) {
    run_columns(d.m, 0, d.n, d.k, a, d.a_rs, w, d.b_cs, d.has_bias ? bias : nullptr, c, d.c_rs,
                d.act);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), n_threads = omp_get_num_threads();
    const int64_t j0 = tiles * t / n_threads * kNr;
    const int64_t j1 = std::min(d.n, tiles * (t + 1) / n_threads * kNr);
    if (j0 < j1)
      run_columns(d.m, j0, j1, d.k, a, d.a_rs, w, d.b_cs, d.has_bias ? bias : nullptr, c, d.c_rs,
                  d.act);
  }
}

int64_t packed_floats(int64_t n, int64_t k) {
  return panel_count(n) * kPanel * k;
}

void pack_weight_f32(const float* w, int64_t n, int64_t k, int64_t ldw, float* dst) {
  const int64_t panels = panel_count(n);
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < panels; ++q) {
    float* out = dst + q * k * kPanel;
    for (int64_t jj = 0; jj < kPanel; ++jj) {
      const int64_t j = q * kPanel + jj;
      if (j < n) {
        const float* row = w + j * ldw;
        for (int64_t p = 0; p < k; ++p) out[p * kPanel + jj] = row[p];
      } else {
        for (int64_t p = 0; p < k; ++p) out[p * kPanel + jj] = 0.0f;
      }
    }
  }
}

void pack_weight_pair_f32(const float* gate, const float* up, int64_t n, int64_t k, int64_t ldw,
                          float* dst) {
  const int64_t panels = panel_count(n);
  for (int64_t q = 0; q < panels; ++q) {
    const int64_t rows = std::min(kPanel, n - q * kPanel);
    pack_weight_f32(gate + q * kPanel * ldw, rows, k, ldw, dst + 2 * q * k * kPanel);
    pack_weight_f32(up + q * kPanel * ldw, rows, k, ldw, dst + (2 * q + 1) * k * kPanel);
  }
}

void gemm_packed_gated_f32(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                           const float* packed, GemmAct act, float* c, int64_t ldc) {
  const int64_t panels = panel_count(n);
  const int nt = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), panels));
  if (nt <= 1 || !small_gemm_parallel(m, 2 * n, k)) {
    run_gated_panels(m, n, k, 0, panels, a, lda, packed, act, c, ldc);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), n_threads = omp_get_num_threads();
    run_gated_panels(m, n, k, panels * t / n_threads, panels * (t + 1) / n_threads, a, lda, packed,
                     act, c, ldc);
  }
}

int64_t packed_gemm_max_m() {
  return packed_gemm_bound().load(std::memory_order_relaxed);
}
void set_packed_gemm_max_m(int64_t m) {
  packed_gemm_bound().store(std::max<int64_t>(0, m));
}

void gemm_packed_f32(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                     const float* packed, const float* bias, GemmAct act, float* c, int64_t ldc) {
  const int64_t panels = panel_count(n);
  const int nt = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), panels));
  if (nt <= 1 || !small_gemm_parallel(m, n, k)) {
    run_panels(m, n, k, 0, panels, a, lda, packed, bias, act, c, ldc);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), n_threads = omp_get_num_threads();
    run_panels(m, n, k, panels * t / n_threads, panels * (t + 1) / n_threads, a, lda, packed, bias,
               act, c, ldc);
  }
}

}  // namespace lmf::cpu
