#include "kernels/cpu/random.h"

#include <cmath>

namespace lmf::cpu {

namespace {
constexpr int64_t kParallelMin = 32768;

inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

void random_dropout_forward(const float* x, int64_t n, double p, float scale, uint64_t seed,
                            bool* keep, float* out) {
  // p in [0, 1): keep when the 53-bit uniform u = h >> 11 (scaled by 2^-53) is >= p.
  const uint64_t threshold = static_cast<uint64_t>(std::ceil(p * 0x1.0p53));
  const uint64_t base = splitmix64(seed);
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const bool k =
        (splitmix64(base ^ static_cast<uint64_t>(i) * 0xd1b54a32d192ed03ull) >> 11) >= threshold;
    keep[i] = k;
    out[i] = k ? x[i] * scale : 0.0f;
  }
}

void random_dropout_backward(const float* g, const bool* keep, int64_t n, float scale, float* gx) {
#pragma omp parallel for simd if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) gx[i] = keep[i] ? g[i] * scale : 0.0f;
}

}  // namespace lmf::cpu
