// AVX-512 helpers shared by the hand-written kernels (gemm_small.cpp, attention.cpp).
#pragma once
#include <immintrin.h>

#include "kernels/cpu/elementwise.h"

namespace lmf::kernels {

// Sums of the 16 lanes of each of a, b, c, d as one 4-lane vector.
LMF_TARGET_AVX512 LMF_ALWAYS_INLINE __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  // Per 128-bit lane: ab = [a02, b02, a13, b13], cd likewise; combine to [a, b, c, d] partials.
  const __m512 abcd = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 h =
      _mm256_add_ps(_mm512_castps512_ps256(abcd),
                    _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(abcd), 1)));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

}  // namespace lmf::kernels
