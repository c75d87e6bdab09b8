// Elementwise CPU kernels on raw pointers: binary arithmetic (same shape, row broadcast, scalar,
// strided runs) and unary math with their backward. f32 and bf16 (bf16 computed in f32, RNE).
#pragma once
#include <omp.h>

#include <bit>
#include <cstdint>

#include "lmforge/core/dtype.h"

// Hot loops are built twice, for the baseline ISA and for AVX-512 + FMA, and picked at run time
// (the build never assumes AVX-512). Helpers used inside them must inline into either build.
#define LMF_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define LMF_ALWAYS_INLINE __attribute__((always_inline)) inline
#define LMF_INLINE_LAMBDA __attribute__((always_inline))

namespace lmf::kernels {

// Sizes above this run on the OpenMP pool; below, one thread (fork/join costs more).
inline constexpr int64_t kParallelGrain = 32768;

// True when the CPU has AVX-512 F/BW/VL/DQ and FMA (checked once); LMFORGE_DISABLE_AVX512=1
// forces the baseline build (for tests and comparisons).
bool cpu_has_avx512();

template <class Body>
LMF_TARGET_AVX512 void run_range_avx512(int64_t b, int64_t e, const Body& body) {
  for (int64_t i = b; i < e; ++i) body(i);
}
template <class Body>
void run_range_base(int64_t b, int64_t e, const Body& body) {
  for (int64_t i = b; i < e; ++i) body(i);
}
// body(i) for i in [b, e) on this thread, in the AVX-512 build when the CPU has it. body should
// be an LMF_INLINE_LAMBDA whose callees are LMF_ALWAYS_INLINE, so that all of it is compiled (and
// vectorised) for the ISA of the loop it lands in.
template <class Body>
void run_range(int64_t b, int64_t e, const Body& body) {
  if (cpu_has_avx512())
    run_range_avx512(b, e, body);
  else
    run_range_base(b, e, body);
}
// body(i) for i in [0, n), split into one contiguous range per thread when n > grain.
template <class Body>
void for_range(int64_t n, int64_t grain, const Body& body) {
  if (n <= grain || omp_get_max_threads() == 1) {
    run_range(0, n, body);
    return;
  }
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    run_range(n * t / nt, n * (t + 1) / nt, body);
  }
}

enum class BinOp : uint8_t { add, sub, mul, div };
enum class UnOp : uint8_t {
  neg,
  exp,
  log,
  sqrt,
  pow,
  relu,
  gelu,
  gelu_tanh,
  silu,
  tanh,
  sigmoid,
  add_scalar,
  mul_scalar
};

// out[i] = a[i] op b[i].
template <class T>
void binary_same(BinOp op, const T* a, const T* b, T* out, int64_t n);
// out[r, c] = a[r, c] op b[c] (b repeated over rows); swapped: out[r, c] = b[c] op a[r, c].
template <class T>
void binary_row(BinOp op, const T* a, const T* b, T* out, int64_t rows, int64_t cols, bool swapped);
// out[i] = a[i] op s; swapped: out[i] = s op a[i].
template <class T>
void binary_scalar(BinOp op, const T* a, float s, T* out, int64_t n, bool swapped);
// One strided run: out[k*so] = a[k*sa] op b[k*sb], k < n (single-threaded; callers split work).
template <class T>
void binary_run(BinOp op, const T* a, int64_t sa, const T* b, int64_t sb, T* out, int64_t so,
                int64_t n);

// y[i] = f(x[i]); p is the exponent (pow) or scalar (add_scalar, mul_scalar).
template <class T>
void unary(UnOp op, const T* x, T* y, int64_t n, float p = 0.f);
// gx[i] = gy[i] * f'(x[i]); y is the forward output (used by exp, sqrt, tanh, sigmoid).
template <class T>
void unary_backward(UnOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, float p = 0.f);

// ---- Vectorisable f32 math (branch-free, no libm calls; GCC auto-vectorises loops of these) ----
namespace vm {

LMF_ALWAYS_INLINE float bits_to_float(uint32_t u) {
  return std::bit_cast<float>(u);
}

// exp(x) with ~2 ulp error: 2^n * P(r), r = x - n ln2, |r| <= ln2/2. exp(-inf) = 0, exp(inf) = inf.
LMF_ALWAYS_INLINE float exp(float x) {
  const float xc = x > 88.3762626647949f ? 88.3762626647949f : (x < -87.33654f ? -87.33654f : x);
  const float t = xc * 1.44269504088896341f + 12582912.f;
  const float n = t - 12582912.f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.f;
  const int32_t ni = static_cast<int32_t>(n);
  const float scale = bits_to_float(static_cast<uint32_t>(ni + 127) << 23);
  float y = p * scale;
  y = x < -87.33654f ? 0.f : y;
  y = x > 88.3762626647949f ? __builtin_inff() : y;
  return x != x ? x : y;
}

// tanh via a [13/6] rational approximation on [-9, 9] (saturates to +-1 beyond), ~2 ulp.
LMF_ALWAYS_INLINE float tanh(float x) {
  const float xc = x > 9.f ? 9.f : (x < -9.f ? -9.f : x);
  const float x2 = xc * xc;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * xc;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  const float y = p / q;
  return y > 1.f ? 1.f : (y < -1.f ? -1.f : y);
}

// erf via Abramowitz-Stegun 7.1.26 refined (|error| < 2e-7 absolute), odd symmetry.
LMF_ALWAYS_INLINE float erf(float x) {
  const float ax = x < 0.f ? -x : x;
  const float t = 1.f / (1.f + 0.3275911f * ax);
  float p = 1.061405429f;
  p = p * t + -1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t + -0.284496736f;
  p = p * t + 0.254829592f;
  p = p * t;
  const float e = 1.f - p * exp(-ax * ax);
  // Near zero the formula loses relative accuracy; use the Taylor series there.
  const float x2 = x * x;
  const float small =
      x * (1.1283791670955126f +
           x2 * (-0.37612638903183754f +
                 x2 * (0.11283791670955126f +
                       x2 * (-0.026866170645131252f +
                             x2 * (0.005223977625442188f + x2 * (-0.0008548327023450852f +
                                                                 x2 * 0.00012055332981789664f))))));
  const float big = x < 0.f ? -e : e;
  return ax < 0.5f ? small : big;
}

LMF_ALWAYS_INLINE float sigmoid(float x) {
  return 1.f / (1.f + exp(-x));
}

}  // namespace vm

// Branch-free f32 -> bf16 (RNE, NaN stays NaN); vectorises unlike a branching version.
LMF_ALWAYS_INLINE uint16_t to_bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : r);
}
LMF_ALWAYS_INLINE float from_bf16(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

// Loads/stores as f32 whatever the storage type; bf16 rounds to nearest even on store.
// AVX-512 lane mask (__mmask16) of the first min(max(left, 0), 16) lanes: the tail of a row.
LMF_ALWAYS_INLINE uint16_t tail_mask16(int64_t left) {
  return left >= 16 ? uint16_t{0xffff} : left <= 0 ? uint16_t{0} : uint16_t((1u << left) - 1u);
}

LMF_ALWAYS_INLINE float ld(float v) {
  return v;
}
LMF_ALWAYS_INLINE float ld(bf16_t v) {
  return from_bf16(v.bits);
}
LMF_ALWAYS_INLINE void st(float& d, float v) {
  d = v;
}
LMF_ALWAYS_INLINE void st(bf16_t& d, float v) {
  d.bits = to_bf16(v);
}

}  // namespace lmf::kernels
