// Rotary position embedding (HF LLaMA rotate_half convention) and the sinusoidal encoding table,
// on f32 buffers.
#pragma once
#include <cstdint>

namespace lmf::kernels {

// Element strides over (B, H, T) of a [B, H, T, D] buffer whose last dim is contiguous.
struct RopeStrides {
  int64_t x[3], out[3];
};

// out[b,h,t,:] = (x*cos + rotate_half(x)*sin) * scaling with angle pos*inv_freq[i] duplicated
// over the two halves (inv_freq has D/2 entries). positions is [T] (pos_batch == 1) or [B, T]
// (pos_batch == B). inverse = true rotates by -angle (the backward). f32_angles: the angle is
// rounded to f32 before cos/sin, as transformers computes it (position.float() * inv_freq); else
// it is kept in double. strides null: both buffers contiguous. x and out may alias.
// interleaved: element pairs (2i, 2i + 1) rotate by angle i instead of (i, i + D/2), the layout
// llama.cpp gives q/k rows in GGUF files (the same attention scores on rows permuted to it).
void rotary_embedding(const float* x, const int64_t* positions, int64_t pos_batch, int64_t B,
                      int64_t H, int64_t T, int64_t D, const double* inv_freq, double scaling,
                      bool f32_angles, bool inverse, float* out,
                      const RopeStrides* strides = nullptr, bool interleaved = false);

// The fixed form: inv_freq[i] = theta^(-2i/D) in double, no scaling, contiguous buffers.
void rotary_embedding(const float* x, const int64_t* positions, int64_t pos_batch, int64_t B,
                      int64_t H, int64_t T, int64_t D, double theta, bool inverse, float* out);

// P[t, 2i] = sin(t / 10000^(2i/D)), P[t, 2i+1] = cos(t / 10000^(2i/D)); out is [T, D].
void sinusoidal_position_encoding(int64_t T, int64_t D, float* out);

}  // namespace lmf::kernels
