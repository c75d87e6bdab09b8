// Batched GEMM on raw pointers through oneDNN's matmul primitive: any operand strides (so
// transposes and broadcast batches cost no copy), f32/bf16, fused bias, activation and accumulate.
// Primitives are created once per configuration and cached (creation costs milliseconds).
#pragma once
#include <cstdint>
#include <vector>

#include "lmforge/core/dtype.h"

namespace lmf::cpu {

enum class GemmAct : uint8_t { none, relu, gelu_erf, gelu_tanh, silu, tanh };

// C[b] (+)= act(A[b] · B[b] + bias) for every batch index b. A is logically [m, k] with element
// (i, p) at a[i*a_rs + p*a_cs]; B is [k, n] likewise; C is [m, n] with unit column stride.
// Batch dims are the output's; a batch stride of 0 broadcasts that operand over the dim.
// One of each operand's two matrix strides should be 1 for the fast oneDNN paths.
struct GemmDesc {
  int64_t m = 0, n = 0, k = 0;
  std::vector<int64_t> batch;  // at most 10 dims
  std::vector<int64_t> a_batch_strides, b_batch_strides, c_batch_strides;
  int64_t a_rs = 0, a_cs = 1, b_rs = 0, b_cs = 1, c_rs = 0;
  DType ab_type = DType::f32;    // f32 or bf16, both operands
  DType c_type = DType::f32;     // f32, or bf16 when ab_type is bf16
  DType bias_type = DType::f32;  // f32 or bf16; bias is [n], shared by all rows and batches
  bool has_bias = false;
  GemmAct act = GemmAct::none;
  bool accumulate = false;  // C += act(...) (oneDNN sum post-op, applied before act)
};

void gemm(const GemmDesc& d, const void* a, const void* b, const void* bias, void* c);

// The small-m path (gemm_small.cpp) that gemm() takes for f32 x·W^T with m <= small_gemm_max_m():
// dot products of contiguous rows, no weight repacking. LMFORGE_SMALL_GEMM_M overrides the bound
// (0 turns the path off, for A/B runs).
int64_t small_gemm_max_m();
void set_small_gemm_max_m(int64_t m);
inline constexpr int64_t kSmallGemmParallelWork = int64_t{1} << 20;  // m*n*k for two threads
// ... or n*k weights: a matrix-vector product streams its weights from memory, and one core
// reaches only about half the machine's read bandwidth (decoding: every layer's GEMV is
// 110k-900k weights, 0.4-3.5 MB, far above the fork/join cost).
inline constexpr int64_t kSmallGemmParallelWeights = int64_t{1} << 16;
inline bool small_gemm_parallel(int64_t m, int64_t n, int64_t k) {
  return m * n * k >= kSmallGemmParallelWork || n * k >= kSmallGemmParallelWeights;
}
bool gemm_small_applies(const GemmDesc& d);
void gemm_small(const GemmDesc& d, const float* a, const float* w, const float* bias, float* c);

// Inference-only small-m path with the weight packed once (gemm_small.cpp): W[n, k] of an
// nn.Linear stored as panels of kPackPanel columns, panel q holding W[32q + jj, p] at
// [q * k * 32 + p * 32 + jj] (zero-padded past n), 64-byte aligned by the caller. The kernel
// broadcasts one element of A against two aligned weight vectors per FMA pair: no horizontal sums,
// no unaligned loads (mmapped safetensors weights are not 64-byte aligned), one sequential
// stream per panel. C[m, n] = act(A[m, k] W^T + bias).
inline constexpr int64_t kPackPanel = 32;
int64_t packed_floats(int64_t n, int64_t k);  // size of the packed buffer
void pack_weight_f32(const float* w, int64_t n, int64_t k, int64_t ldw, float* dst);
// LMFORGE_PACKED_GEMM_M overrides the largest m given to gemm_packed_f32 (0 turns it off).
int64_t packed_gemm_max_m();
void set_packed_gemm_max_m(int64_t m);
void gemm_packed_f32(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                     const float* packed, const float* bias, GemmAct act, float* c, int64_t ldc);
// A gated FFN's two projections (SwiGLU) in one pass on the same kernel: gate and up [n, k] packed
// with their panels interleaved (gate panel q in slot 2q, up panel q in slot 2q + 1;
// 2 * packed_floats(n, k) floats), C[m, n] = act(A Wg^T) * (A Wu^T). No second [m, n] product is
// written and read back, and each up tile is multiplied in while it is hot.
void pack_weight_pair_f32(const float* gate, const float* up, int64_t n, int64_t k, int64_t ldw,
                          float* dst);
void gemm_packed_gated_f32(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                           const float* packed, GemmAct act, float* c, int64_t ldc);

// oneDNN 2.6 runs f32 C = A B with a row-major B of many columns at a third of its usual rate
// (and a column-major C on its reference path). When this says so, callers get C faster as
// C^T = B^T A^T (gemm_swapped: B read as a column-major A) into scratch, then transpose_f32.
bool gemm_swap_pays(const GemmDesc& d);
GemmDesc gemm_swapped(const GemmDesc& d);  // the desc of C^T = B^T A^T, C^T row-major [n, m]
// dst[j * ldd + i] = src[i * cols + j] for a row-major src [rows, cols].
void transpose_f32(const float* src, int64_t rows, int64_t cols, float* dst, int64_t ldd);

// Number of cached oneDNN primitives (for tests and benchmarks).
size_t gemm_cache_size();

// y = act(z) and dz = act'(z) * dy over n contiguous elements of type `t` (f32 or bf16); the
// unfused path linear uses when it must keep the pre-activation for the backward.
void activation_forward(GemmAct act, DType t, const void* z, void* y, int64_t n);
void activation_backward(GemmAct act, DType t, const void* z, const void* dy, void* dz, int64_t n);

}  // namespace lmf::cpu
