// Rotary position embedding (HF LLaMA rotate_half convention) and the sinusoidal encoding table,
// on contiguous f32 buffers.
#pragma once
#include <cstdint>

namespace lmf::kernels {

// out[b,h,t,:] = x*cos + rotate_half(x)*sin with angle pos*theta^(-2i/D) duplicated over the two
// halves. positions is [T] (pos_batch == 1) or [B, T] (pos_batch == B). inverse = true rotates
// by -angle (the backward). x and out may alias.
void rotary_embedding(const float* x, const int64_t* positions, int64_t pos_batch, int64_t B,
                      int64_t H, int64_t T, int64_t D, double theta, bool inverse, float* out);

// P[t, 2i] = sin(t / 10000^(2i/D)), P[t, 2i+1] = cos(t / 10000^(2i/D)); out is [T, D].
void sinusoidal_position_encoding(int64_t T, int64_t D, float* out);

}  // namespace lmf::kernels
