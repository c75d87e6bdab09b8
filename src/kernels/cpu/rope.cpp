#include "kernels/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "lmforge/core/runtime.h"

namespace lmf::kernels {

namespace {

// The cos/sin table [rows, half] of one call, and what it was computed from.
struct RopeTable {
  std::vector<int64_t> positions;
  std::vector<double> inv_freq;
  double scaling = 0.0;
  bool f32_angles = false, inverse = false;
  std::vector<float> cos, sin;
};

// The table for these positions and frequencies. A decoder layer rotates q and k and every layer
// of a forward sees the same positions, so the last table is kept per thread and reused when
// everything it was computed from is equal (a compare of ~T + D/2 numbers instead of T * D/2
// sincos calls: 240 tables per 512-token SmolLM2 prefill were 4 % of its time, serial).
const RopeTable& rope_table(const int64_t* positions, int64_t rows, int64_t half,
                            const double* inv_freq, double scaling, bool f32_angles, bool inverse) {
  thread_local RopeTable t;
  const bool same = t.scaling == scaling && t.f32_angles == f32_angles && t.inverse == inverse &&
                    t.positions.size() == static_cast<size_t>(rows) &&
                    t.inv_freq.size() == static_cast<size_t>(half) &&
                    std::equal(positions, positions + rows, t.positions.begin()) &&
                    std::equal(inv_freq, inv_freq + half, t.inv_freq.begin());
  if (same) return t;
  t.positions.assign(positions, positions + rows);
  t.inv_freq.assign(inv_freq, inv_freq + half);
  t.scaling = scaling;
  t.f32_angles = f32_angles;
  t.inverse = inverse;
  t.cos.resize(static_cast<size_t>(rows * half));
  t.sin.resize(static_cast<size_t>(rows * half));
  const double sign = inverse ? -1.0 : 1.0;
  float* cs = t.cos.data();
  float* sn = t.sin.data();
#pragma omp parallel for num_threads(num_threads()) if (rows * half > 4096)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < half; ++i) {
      double a = static_cast<double>(positions[r]) * inv_freq[i];
      if (f32_angles)
        a = static_cast<double>(static_cast<float>(positions[r]) * static_cast<float>(inv_freq[i]));
      cs[r * half + i] = static_cast<float>(std::cos(a) * scaling);
      sn[r * half + i] = static_cast<float>(sign * std::sin(a) * scaling);
    }
  return t;
}

}  // namespace

void rotary_embedding(const float* x, const int64_t* positions, int64_t pos_batch, int64_t B,
                      int64_t H, int64_t T, int64_t D, const double* inv_freq, double scaling,
                      bool f32_angles, bool inverse, float* out, const RopeStrides* strides,
                      bool interleaved) {
  const int64_t half = D / 2;
  const RopeTable& tab =
      rope_table(positions, pos_batch * T, half, inv_freq, scaling, f32_angles, inverse);
  const float* cs = tab.cos.data();
  const float* sn = tab.sin.data();
  RopeStrides st;
  if (strides) {
    st = *strides;
  } else {
    const int64_t c[3] = {H * T * D, T * D, D};
    for (int j = 0; j < 3; ++j) st.x[j] = st.out[j] = c[j];
  }
  // Over (b, h, t) rows: a split over heads alone leaves one of two threads idle a third of the
  // time with 3 key heads.
#pragma omp parallel for num_threads(num_threads()) if (B * H * T * D > 32768)
  for (int64_t bht = 0; bht < B * H * T; ++bht) {
    const int64_t bh = bht / T, t = bht % T;
    const int64_t b = bh / H, h = bh % H;
    const int64_t r = (pos_batch == 1 ? 0 : b) * T + t;
    const float* c = cs + r * half;
    const float* s = sn + r * half;
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
