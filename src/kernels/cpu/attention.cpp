// GCC 12 flags the _mm512_undefined_ps() inside unpack/extract intrinsics (hsum4) as uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "kernels/cpu/attention.h"

#include <dnnl.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/simd.h"
#include "lmforge/core/error.h"
#include "lmforge/core/runtime.h"

namespace lmf::kernels {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Row-major C[M,N] = alpha op(A) op(B) (beta = 0) on the calling thread (oneDNN runs a call made
// inside an OpenMP region sequentially).
void gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  const dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, 0.0f, c, ldc);
  if (st != dnnl_success) fail<Error>("attention: oneDNN sgemm failed with status {}", int(st));
}

// The same products for the small per-head blocks of short inputs (batch-1 inference: 16 x 16 x
// 32), where oneDNN's per-call dispatch costs more than the arithmetic. Row-major, beta = 0.
constexpr int64_t kSmallBlock = 65536;  // m * n * k at or below which the loops below are used

// C = alpha A B: rows of C accumulated as axpys of B's rows. The AVX-512 version keeps a row's
// 64-column strip of C in registers over the whole k loop.
__attribute__((target_clones("avx512f", "default"))) void small_gemm_nn_generic(
    int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
    int64_t ldb, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* __restrict ci = c + i * ldc;
    std::fill(ci, ci + n, 0.0f);
    for (int64_t p = 0; p < k; ++p) {
      const float w = alpha * a[i * lda + p];
      const float* __restrict bp = b + p * ldb;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) ci[j] += w * bp[j];
    }
  }
}

template <int NV>
LMF_TARGET_AVX512 void small_strip(int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                                   int64_t lda, const float* b, int64_t ldb, float* c,
                                   int64_t ldc) {
  __mmask16 mk[NV];
  for (int v = 0; v < NV; ++v) mk[v] = tail_mask16(n - 16 * v);
  for (int64_t i = 0; i < m; ++i) {
    __m512 acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = _mm512_setzero_ps();
    const float* ai = a + i * lda;
    for (int64_t p = 0; p < k; ++p) {
      const __m512 w = _mm512_set1_ps(alpha * ai[p]);
      for (int v = 0; v < NV; ++v)
        acc[v] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(mk[v], b + p * ldb + 16 * v), acc[v]);
    }
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mk[v], acc[v]);
  }
}

void small_gemm_nn(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float* c, int64_t ldc) {
  if (!cpu_has_avx512()) return small_gemm_nn_generic(m, n, k, alpha, a, lda, b, ldb, c, ldc);
  for (int64_t j = 0; j < n; j += 64) {
    const int64_t w = std::min<int64_t>(64, n - j);
    switch ((w + 15) / 16) {
      case 1:
        small_strip<1>(m, w, k, alpha, a, lda, b + j, ldb, c + j, ldc);
        break;
      case 2:
        small_strip<2>(m, w, k, alpha, a, lda, b + j, ldb, c + j, ldc);
        break;
      case 3:
        small_strip<3>(m, w, k, alpha, a, lda, b + j, ldb, c + j, ldc);
        break;
      default:
        small_strip<4>(m, w, k, alpha, a, lda, b + j, ldb, c + j, ldc);
    }
  }
}

// C = alpha A B^T for a few rows of A (a decode step's query against every cached key): dot
// products of contiguous rows, four keys at a time so that one horizontal reduction serves four
// scores. Transposing the keys first (below) would cost more than the products at m = 1.
LMF_TARGET_AVX512 void small_gemm_nt_dots(int64_t m, int64_t n, int64_t k, float alpha,
                                          const float* a, int64_t lda, const float* b, int64_t ldb,
                                          float* c, int64_t ldc) {
  const __mmask16 tail = tail_mask16(k % 16);
  const int64_t kv = k - k % 16;
  for (int64_t i = 0; i < m; ++i) {
    const float* ai = a + i * lda;
    float* ci = c + i * ldc;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      const float* b0 = b + j * ldb;
      __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
      for (int64_t p = 0; p < kv; p += 16) {
        const __m512 av = _mm512_loadu_ps(ai + p);
        s0 = _mm512_fmadd_ps(av, _mm512_loadu_ps(b0 + p), s0);
        s1 = _mm512_fmadd_ps(av, _mm512_loadu_ps(b0 + ldb + p), s1);
        s2 = _mm512_fmadd_ps(av, _mm512_loadu_ps(b0 + 2 * ldb + p), s2);
        s3 = _mm512_fmadd_ps(av, _mm512_loadu_ps(b0 + 3 * ldb + p), s3);
      }
      if (kv < k) {
        const __m512 av = _mm512_maskz_loadu_ps(tail, ai + kv);
        s0 = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(tail, b0 + kv), s0);
        s1 = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(tail, b0 + ldb + kv), s1);
        s2 = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(tail, b0 + 2 * ldb + kv), s2);
        s3 = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(tail, b0 + 3 * ldb + kv), s3);
      }
      const __m128 q = hsum4(s0, s1, s2, s3);
      _mm_storeu_ps(ci + j, _mm_mul_ps(q, _mm_set1_ps(alpha)));
    }
    for (; j < n; ++j) {
      const float* bj = b + j * ldb;
      __m512 s0 = _mm512_setzero_ps();
      for (int64_t p = 0; p < kv; p += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(ai + p), _mm512_loadu_ps(bj + p), s0);
      if (kv < k)
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, ai + kv),
                             _mm512_maskz_loadu_ps(tail, bj + kv), s0);
      ci[j] = alpha * _mm512_reduce_add_ps(s0);
    }
  }
}

// C = alpha A B^T: B transposed into per-thread scratch, then the axpy form (a dot product per
// element would need a horizontal sum each); a few rows of A take the dot products above.
void small_gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float* c, int64_t ldc) {
  if (m <= 4 && cpu_has_avx512()) return small_gemm_nt_dots(m, n, k, alpha, a, lda, b, ldb, c, ldc);
  thread_local std::vector<float> bt;
  bt.resize(static_cast<size_t>(n * k));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t p = 0; p < k; ++p) bt[p * n + j] = b[j * ldb + p];
  small_gemm_nn(m, n, k, alpha, a, lda, bt.data(), n, c, ldc);
}

// Softmax of the first n entries of each row of s[rows, ld] in place; a row whose scores are all
// -inf becomes zeros. OpenMP simd reductions vectorise the row max / sums without -ffast-math.
__attribute__((target_clones("avx512f", "default"))) void softmax_rows(float* s, int64_t rows,
                                                                       int64_t n, int64_t ld) {
  for (int64_t i = 0; i < rows; ++i) {
    float* x = s + i * ld;
    float m = kNegInf;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
    if (m == kNegInf) {
      std::fill(x, x + n, 0.0f);
      continue;
    }
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; ++j) {
      x[j] = kernels::vm::exp(x[j] - m);
      sum += x[j];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) x[j] *= inv;
  }
}

// ds[rows, n] <- p * (ds - rowsum(ds * p)) * scale: the softmax backward with the score scale.
__attribute__((target_clones("avx512f", "default"))) void softmax_backward_rows(
    const float* p, float* ds, int64_t rows, int64_t n, float scale) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* pr = p + i * n;
    float* g = ds + i * n;
    float c = 0.0f;
#pragma omp simd reduction(+ : c)
    for (int64_t j = 0; j < n; ++j) c += pr[j] * g[j];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) g[j] = pr[j] * (g[j] - c) * scale;
  }
}

// Masks for one (b, h) block: the key padding row as an additive 0 / -inf bias, the rest as given.
struct BlockMask {
  const float* pad_bias = nullptr;  // [Tk] or null
  const bool* allow = nullptr;      // row i at allow + i * row_stride, key j at j * key_stride
  const float* bias = nullptr;      // likewise
  int64_t row_stride = 0, key_stride = 0;
  bool causal = false;
  int64_t causal_offset = 0;  // Tk - Tq: query i sees keys j <= i + causal_offset
};

// Applies `m` to the first n scores of each row of s[rows, ld] (one block): masked scores become
// -inf.
__attribute__((target_clones("avx512f", "default"))) void apply_mask(float* __restrict s,
                                                                     int64_t rows, int64_t n,
                                                                     int64_t ld,
                                                                     const BlockMask& m) {
  for (int64_t i = 0; i < rows; ++i) {
    float* __restrict x = s + i * ld;
    if (m.pad_bias) {
      const float* __restrict pb = m.pad_bias;
      for (int64_t j = 0; j < n; ++j) x[j] += pb[j];
    }
    if (m.allow) {
      const uint8_t* __restrict a = reinterpret_cast<const uint8_t*>(m.allow + i * m.row_stride);
      if (m.key_stride == 1) {
        for (int64_t j = 0; j < n; ++j) x[j] = a[j] != 0 ? x[j] : kNegInf;
      } else {
        for (int64_t j = 0; j < n; ++j) x[j] = a[j * m.key_stride] != 0 ? x[j] : kNegInf;
      }
    }
    if (m.bias) {
      const float* __restrict a = m.bias + i * m.row_stride;
      if (m.key_stride == 1) {
        for (int64_t j = 0; j < n; ++j) x[j] += a[j];
      } else {
        for (int64_t j = 0; j < n; ++j) x[j] += a[j * m.key_stride];
      }
    }
    if (m.causal)
      for (int64_t j = std::max<int64_t>(0, i + m.causal_offset + 1); j < n; ++j) x[j] = kNegInf;
  }
}

bool has_mask(const AttentionMask& mk) {
  return mk.key_padding || mk.allow || mk.bias || mk.causal;
}

}  // namespace

// Scratch memory: Tq*Tk floats per thread (probabilities when not saved, dropped probabilities).
// Saved probabilities cost B*H*Tq*Tk floats (25 MB for BERT-base at B=32, T=128; 4 GB for B=8,
// H=32, T=2048), which is why inference without return_probs keeps them per thread only.
void attention_forward(const AttentionDims& d, const AttentionMask& mask, float scale,
                       const float* q, const float* k, const float* v, float* out, float* probs,
                       float dropout_p, const uint64_t* seeds, uint8_t* drop_keep,
                       const AttentionStrides& st) {
  const int64_t blocks = d.B * d.H, group = d.H / d.Hkv, tt = d.Tq * d.Tk;
  const bool dropout = dropout_p > 0.0f;
  const bool masked = has_mask(mask);
  const float keep_scale = dropout ? 1.0f / (1.0f - dropout_p) : 1.0f;
  std::vector<float> pad_bias(mask.key_padding ? d.B * d.Tk : 0);
  for (size_t e = 0; e < pad_bias.size(); ++e) pad_bias[e] = mask.key_padding[e] ? 0.0f : kNegInf;
  // Work units are (b, h, query block). Causal attention without dropout splits the queries into
  // blocks of kCausalRows: a block multiplies only the keys its last row can see (its other
  // scores are exact zeros after the softmax), which skips most of the masked triangle, and the
  // units spread evenly over the threads (9 heads alone leave one of 2 threads idle 1/9 of the
  // time). With dropout a unit stays a whole (b, h) block: its keep mask is drawn per (b, h).
  constexpr int64_t kCausalRows = 32;
  const int64_t groups = std::max<int64_t>(1, d.q_groups);
  LMF_CHECK(groups == 1 || (!mask.causal && !dropout && d.Tq % groups == 0), ValueError,
            "attention: {} query groups need Tq ({}) divisible by them, no causal mask and no "
            "dropout",
            groups, d.Tq);
  int64_t q_rows = mask.causal && !dropout && d.Tq >= 2 * kCausalRows ? kCausalRows : d.Tq;
  if (groups > 1) q_rows = d.Tq / groups;
  const int64_t q_blocks = d.Tq > 0 ? (d.Tq + q_rows - 1) / q_rows : 1;
  // Query groups: one unit per (b, h) runs its groups in turn (their keys stay in cache).
  const int64_t per_unit = groups > 1 ? q_blocks : 1;
  const int64_t units = blocks * q_blocks / per_unit;
  // Units of equal work (no causal blocks: decode steps, encoders) go in runs of consecutive
  // units, so that a thread streams forward through the keys/values (a decode step's are read
  // from L3 or memory) instead of hopping between the threads' blocks; causal blocks one at a
  // time, longest first.
  const int64_t threads = num_threads();
  const int64_t chunk = q_blocks == 1 || per_unit > 1
                            ? std::max<int64_t>(1, units / (4 * std::max<int64_t>(1, threads)))
                            : 1;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> own(probs ? 0 : tt), dropped(dropout ? tt : 0);
#pragma omp for schedule(dynamic, chunk)
    for (int64_t u = 0; u < units; ++u) {
      for (int64_t g = 0; g < per_unit; ++g) {
        // The longest (last) query blocks of every head first, the short ones fill in at the end.
        const int64_t qi = per_unit > 1 ? g : q_blocks - 1 - u / blocks,
                      bh = per_unit > 1 ? u : u % blocks;
        const int64_t b = bh / d.H, h = bh % d.H, hk = h / group;
        const int64_t i0 = qi * q_rows, rows = std::min(q_rows, d.Tq - i0);
        // Keys [0, kn) are visible to some row of the block (all of them without a causal mask).
        int64_t kn = d.Tk;
        if (mask.causal && q_rows < d.Tq) kn = std::clamp<int64_t>(i0 + rows + d.Tk - d.Tq, 1, d.Tk);
        const float* qb = q + b * st.q[0] + h * st.q[1] + i0 * st.q[2];
        const int64_t kvb = d.kv_rows ? d.kv_rows[b] : b;
        const float* kb = k + kvb * st.k[0] + hk * st.k[1];
        const float* vb = v + kvb * st.v[0] + hk * st.v[1];
        float* ob = out + b * st.out[0] + h * st.out[1] + i0 * st.out[2];
        const bool small = rows * kn * std::max(d.D, d.Dv) <= kSmallBlock;
        float* s = (probs ? probs + bh * tt : own.data()) + i0 * d.Tk;
        if (small)
          small_gemm_nt(rows, kn, d.D, scale, qb, st.q[2], kb, st.k[2], s, d.Tk);
        else
          gemm('N', 'T', rows, kn, d.D, scale, qb, st.q[2], kb, st.k[2], s, d.Tk);
        if (masked) {
          const int64_t base = b * mask.strides[0] + h * mask.strides[1] + i0 * mask.strides[2];
          BlockMask bm{mask.key_padding ? pad_bias.data() + b * d.Tk : nullptr,
                       mask.allow ? mask.allow + base : nullptr,
                       mask.bias ? mask.bias + base : nullptr,
                       mask.strides[2],
                       mask.strides[3],
                       mask.causal,
                       d.Tk - d.Tq + i0};
          apply_mask(s, rows, kn, d.Tk, bm);
        }
        softmax_rows(s, rows, kn, d.Tk);
        if (probs && kn < d.Tk)
          for (int64_t i = 0; i < rows; ++i) std::fill(s + i * d.Tk + kn, s + (i + 1) * d.Tk, 0.0f);
        const float* p = s;
        if (dropout) {
          Generator gen(seeds[bh]);
          uint8_t* keep = drop_keep + bh * tt;
          for (int64_t e = 0; e < tt; ++e) {
            keep[e] = gen.uniform() >= dropout_p;
            dropped[e] = keep[e] ? s[e] * keep_scale : 0.0f;
          }
          p = dropped.data();
        }
        if (small)
          small_gemm_nn(rows, d.Dv, kn, 1.0f, p, d.Tk, vb, st.v[2], ob, st.out[2]);
        else
          gemm('N', 'N', rows, d.Dv, kn, 1.0f, p, d.Tk, vb, st.v[2], ob, st.out[2]);
      }
    }
  }
}

// One block per (b, kv head): the `group` query heads sharing it are contiguous in q, so their
// rows stack into one [group*Tq, .] operand and the sums over the group fall out of the GEMMs.
void attention_backward(const AttentionDims& d, float scale, const float* q, const float* k,
                        const float* v, const float* probs, const uint8_t* drop_keep,
                        float dropout_p, const float* dout, float* dq, float* dk, float* dv,
                        float* dscores) {
  const int64_t blocks = d.B * d.Hkv, group = d.H / d.Hkv;
  const int64_t rows = group * d.Tq, n = rows * d.Tk;
  const bool dropout = dropout_p > 0.0f;
  const float keep_scale = dropout ? 1.0f / (1.0f - dropout_p) : 1.0f;
#pragma omp parallel num_threads(num_threads())
  {
    std::vector<float> ds(n), dropped(dropout ? n : 0);
#pragma omp for schedule(dynamic)
    for (int64_t bk = 0; bk < blocks; ++bk) {
      const int64_t qoff = bk * rows;  // first query row (over B*H*Tq) of this group
      const float* p = probs + qoff * d.Tk;
      const float* go = dout + qoff * d.Dv;
      const float* kb = k + bk * d.Tk * d.D;
      const float* vb = v + bk * d.Tk * d.Dv;
      const uint8_t* keep = dropout ? drop_keep + qoff * d.Tk : nullptr;
      const float* pd = p;
      if (dropout) {
        for (int64_t e = 0; e < n; ++e) dropped[e] = keep[e] ? p[e] * keep_scale : 0.0f;
        pd = dropped.data();
      }
      gemm('T', 'N', d.Tk, d.Dv, rows, 1.0f, pd, d.Tk, go, d.Dv, dv + bk * d.Tk * d.Dv, d.Dv);
      gemm('N', 'T', rows, d.Tk, d.Dv, 1.0f, go, d.Dv, vb, d.Dv, ds.data(), d.Tk);
      if (dropout)
        for (int64_t e = 0; e < n; ++e) ds[e] = keep[e] ? ds[e] * keep_scale : 0.0f;
      if (dscores) {  // the gradient of an additive bias: before the q.k scale
        softmax_backward_rows(p, ds.data(), rows, d.Tk, 1.0f);
        std::copy(ds.begin(), ds.end(), dscores + qoff * d.Tk);
        if (scale != 1.0f)
          for (float& e : ds) e *= scale;
      } else {
        softmax_backward_rows(p, ds.data(), rows, d.Tk, scale);
      }
      gemm('N', 'N', rows, d.D, d.Tk, 1.0f, ds.data(), d.Tk, kb, d.D, dq + qoff * d.D, d.D);
      gemm('T', 'N', d.Tk, d.D, rows, 1.0f, ds.data(), d.Tk, q + qoff * d.D, d.D,
           dk + bk * d.Tk * d.D, d.D);
    }
  }
}

}  // namespace lmf::kernels
