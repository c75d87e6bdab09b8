// Fused scaled-dot-product attention on contiguous f32 buffers: scores, mask, softmax, dropout and
// the weighted sum in one pass per (batch, head); GEMMs via oneDNN's sgemm, one thread per block.
#pragma once
#include <cstdint>

namespace lmf::kernels {

struct AttentionDims {
  int64_t B, H, Hkv, Tq, Tk, D, Dv;  // q [B,H,Tq,D], k [B,Hkv,Tk,D], v [B,Hkv,Tk,Dv]
  // Tq rows of a (b, h) block are q_groups independent sets of Tq / q_groups rows (beam search's
  // copies of one source sharing its keys/values): each set is computed exactly as a call with
  // that many query rows would compute it (same kernels, same rounding). Not with a causal mask
  // or dropout.
  int64_t q_groups = 1;
  // Batch row b reads k/v row kv_rows[b] (null: row b).
  const int64_t* kv_rows = nullptr;
};

// Which scores survive. Every pointer is optional; masked scores become -inf before the softmax.
struct AttentionMask {
  const bool* key_padding = nullptr;  // [B, Tk] contiguous, true = attend
  const bool* allow = nullptr;        // bool mask addressed with `strides`, true = attend
  const float* bias = nullptr;        // float mask added to the scores, addressed with `strides`
  int64_t strides[4] = {0, 0, 0, 0};  // element strides over (B, H, Tq, Tk) of allow / bias
  bool causal = false;                // query i attends keys j <= i + (Tk - Tq)
};

// Element strides over (B, H, T) of q, k, v and out; the last dim is contiguous. The autograd
// path passes the packed [B, H, T, D] layouts; inference passes q/k/v as views of a fused
// projection and writes out as [B, T, H, Dv], so neither side is copied.
struct AttentionStrides {
  int64_t q[3], k[3], v[3], out[3];
};

// out [B,H,Tq,Dv] = dropout(softmax(mask(scale q k^T))) v. `probs` ([B,H,Tq,Tk], before dropout)
// is written when non-null (needed by the backward). With dropout_p > 0, `drop_keep` ([B,H,Tq,Tk])
// receives the keep mask, drawn per (b, h) from a generator seeded with seeds[b * H + h].
void attention_forward(const AttentionDims& d, const AttentionMask& mask, float scale,
                       const float* q, const float* k, const float* v, float* out, float* probs,
                       float dropout_p, const uint64_t* seeds, uint8_t* drop_keep,
                       const AttentionStrides& st);

// Gradients of the forward above from the saved probabilities (and keep mask when dropout_p > 0).
// dk / dv sum over the query heads that share a kv head. dscores (optional, [B, H, Tq, Tk]): the
// gradient of the scores after scaling, i.e. of an additive attention bias (T5's relative
// positions). All outputs are fully overwritten.
void attention_backward(const AttentionDims& d, float scale, const float* q, const float* k,
                        const float* v, const float* probs, const uint8_t* drop_keep,
                        float dropout_p, const float* dout, float* dq, float* dk, float* dv,
                        float* dscores = nullptr);

}  // namespace lmf::kernels
