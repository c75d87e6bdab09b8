// Random-mask kernels. Masks come from a counter-based hash of (seed, element index), so a given
// seed gives the same mask whatever the thread count.
#pragma once
#include <cstdint>

namespace lmf::cpu {

// keep[i] = hash(seed, i) >= p; out[i] = keep[i] ? x[i] * scale : 0.
void random_dropout_forward(const float* x, int64_t n, double p, float scale, uint64_t seed,
                            bool* keep, float* out);
// gx[i] = keep[i] ? g[i] * scale : 0.
void random_dropout_backward(const float* g, const bool* keep, int64_t n, float scale, float* gx);

}  // namespace lmf::cpu
