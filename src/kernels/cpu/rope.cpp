#include "kernels/cpu/rope.h"

#include <cmath>
#include <vector>

#include "lmforge/core/runtime.h"

namespace lmf::kernels {

void rotary_embedding(const float* x, const int64_t* positions, int64_t pos_batch, int64_t B,
                      int64_t H, int64_t T, int64_t D, const double* inv_freq, double scaling,
                      bool f32_angles, bool inverse, float* out, const RopeStrides* strides,
                      bool interleaved) {
  const int64_t half = D / 2;
  // cos/sin table [pos_batch, T, half], computed once for every head.
  std::vector<float> cs(pos_batch * T * half), sn(pos_batch * T * half);
  const double sign = inverse ? -1.0 : 1.0;
  for (int64_t r = 0; r < pos_batch * T; ++r)
    for (int64_t i = 0; i < half; ++i) {
      double a = static_cast<double>(positions[r]) * inv_freq[i];
      if (f32_angles)
        a = static_cast<double>(static_cast<float>(positions[r]) * static_cast<float>(inv_freq[i]));
      cs[r * half + i] = static_cast<float>(std::cos(a) * scaling);
      sn[r * half + i] = static_cast<float>(sign * std::sin(a) * scaling);
    }
  RopeStrides st;
  if (strides) {
    st = *strides;
  } else {
    const int64_t c[3] = {H * T * D, T * D, D};
    for (int j = 0; j < 3; ++j) st.x[j] = st.out[j] = c[j];
  }
#pragma omp parallel for num_threads(num_threads()) if (B * H * T * D > 32768)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t r = (pos_batch == 1 ? 0 : b) * T + t;
      const float* c = cs.data() + r * half;
      const float* s = sn.data() + r * half;
      const float* xi = x + b * st.x[0] + h * st.x[1] + t * st.x[2];
      float* o = out + b * st.out[0] + h * st.out[1] + t * st.out[2];
      if (interleaved) {
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = xi[2 * i], x2 = xi[2 * i + 1];
          o[2 * i] = x1 * c[i] - x2 * s[i];
          o[2 * i + 1] = x2 * c[i] + x1 * s[i];
        }
        continue;
      }
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = xi[i], x2 = xi[i + half];
        o[i] = x1 * c[i] - x2 * s[i];
        o[i + half] = x2 * c[i] + x1 * s[i];
      }
    }
  }
}

void rotary_embedding(const float* x, const int64_t* positions, int64_t pos_batch, int64_t B,
                      int64_t H, int64_t T, int64_t D, double theta, bool inverse, float* out) {
  std::vector<double> inv_freq(D / 2);
  for (int64_t i = 0; i < D / 2; ++i)
    inv_freq[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(D));
  rotary_embedding(x, positions, pos_batch, B, H, T, D, inv_freq.data(), 1.0, false, inverse, out);
}

void sinusoidal_position_encoding(int64_t T, int64_t D, float* out) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < D; c += 2) {
      const double a = static_cast<double>(t) / std::pow(10000.0, static_cast<double>(c) / D);
      out[t * D + c] = static_cast<float>(std::sin(a));
      if (c + 1 < D) out[t * D + c + 1] = static_cast<float>(std::cos(a));
    }
}

}  // namespace lmf::kernels
