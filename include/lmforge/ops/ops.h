// The differentiable op set. Every op checks its inputs once here (ShapeError / DTypeError /
// IndexError naming the op and the shapes), dispatches to a CPU kernel on raw pointers, and records
// its backward when an input requires grad. f32 everywhere; bf16 where noted.
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/core/tensor.h"

namespace lmf {

// ---- matmul / linear (oneDNN) ------------------------------------------------------------------
enum class Activation { none, relu, gelu, gelu_tanh, silu, tanh };

// a [.., M, K] x b [.., K, N] -> [.., M, N]; batch dims broadcast; 1-D b is a vector.
// trans_a / trans_b use the transposed last two dims without copying. f32 and bf16 (bf16 inputs
// give a bf16 result, accumulated in f32).
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// y = act(x W^T + b); W is [out, in] as in torch.nn.Linear. Bias and activation fused in oneDNN.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(),
              Activation act = Activation::none);

// A Linear weight copied once into the panel layout of the small-batch inference kernel
// (aligned, read as one sequential stream per 32 output columns; see kernels/cpu/gemm.h). It
// keeps the source weight for the inputs the kernel does not take. The copy is a snapshot: the
// source must not change while the pack is used (nn::Module::prepare_inference owns that rule).
class PackedLinearWeight {
 public:
  const std::vector<Tensor>& sources() const { return sources_; }  // stacked along dim 0
  int64_t out_features() const { return out_; }
  int64_t in_features() const { return in_; }
  Tensor weight() const;  // the single source, or the sources concatenated (a copy)
  const Tensor& packed() const { return packed_; }
  // Still a copy of exactly these tensors (same storage and shapes, in order): a weight tensor
  // replaced since (weight tying, a new load) is not.
  bool made_from(std::initializer_list<Tensor> ws) const;
  // A gate/up pair packed for gated_linear (out_features() is each one's row count).
  bool gated() const { return gated_; }

 private:
  friend std::shared_ptr<const PackedLinearWeight> pack_linear_weights(
      const std::vector<Tensor>& ws);
  friend std::shared_ptr<const PackedLinearWeight> pack_gated_linear_weights(const Tensor& gate,
                                                                             const Tensor& up);
  std::vector<Tensor> sources_;
  int64_t out_ = 0, in_ = 0;
  bool gated_ = false;
  Tensor packed_;
};
// Null where packing does not apply (non-f32 weight, no AVX-512, packed path turned off).
std::shared_ptr<const PackedLinearWeight> pack_linear_weight(const Tensor& w);
// Several weights [out_i, in] packed as one [sum out_i, in] (fused Q/K/V projections), without
// keeping a concatenated copy.
std::shared_ptr<const PackedLinearWeight> pack_linear_weights(const std::vector<Tensor>& ws);
// A gated FFN's gate and up weights [n, in] packed pairwise (SwiGLU) for gated_linear; null where
// packing does not apply.
std::shared_ptr<const PackedLinearWeight> pack_gated_linear_weights(const Tensor& gate,
                                                                    const Tensor& up);
// act(x gate^T) * (x up^T) for a pack_gated_linear_weights pack: one pass of the packed kernel
// where packed_linear_takes(x, sources); otherwise two linears and their product.
Tensor gated_linear(const Tensor& x, const PackedLinearWeight& w, Activation act);
// Largest row count the packed kernel takes (LMFORGE_PACKED_GEMM_M, default 128; 0 = never).
int64_t packed_linear_max_rows();
// Whether linear(x, packed weight, ...) runs the packed kernel for this input: f32, 1 to
// packed_linear_max_rows() rows, and no gradient through x or `params` (weights, bias).
bool packed_linear_takes(const Tensor& x, std::initializer_list<Tensor> params);
// linear(x, w.weight(), b, act), through the packed kernel for f32 inputs of at most
// packed_linear_max_rows() rows that need no gradient; otherwise the unpacked path.
Tensor linear(const Tensor& x, const PackedLinearWeight& w, const Tensor& b = Tensor(),
              Activation act = Activation::none);

// ---- elementwise (broadcasting) ----------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor pow(const Tensor& a, double exponent);
Tensor relu(const Tensor& a);
Tensor gelu(const Tensor& a, bool tanh_approx = false);  // erf (HF "gelu") or tanh ("gelu_new")
Tensor silu(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor activation(const Tensor& a, Activation act);

inline Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
inline Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
inline Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
inline Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
inline Tensor operator+(const Tensor& a, double s) {
  return add(a, s);
}
inline Tensor operator-(const Tensor& a, double s) {
  return add(a, -s);
}
inline Tensor operator*(const Tensor& a, double s) {
  return mul(a, s);
}
inline Tensor operator/(const Tensor& a, double s) {
  return mul(a, 1.0 / s);
}
inline Tensor operator*(double s, const Tensor& a) {
  return mul(a, s);
}
inline Tensor operator-(const Tensor& a) {
  return neg(a);
}

// ---- reductions --------------------------------------------------------------------------------
Tensor sum(const Tensor& a);  // all elements -> scalar
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& a);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor max(const Tensor& a, int64_t dim, bool keepdim = false);     // values (grad to argmax)
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);  // i64, not differentiable

// ---- softmax and normalisation -----------------------------------------------------------------
Tensor softmax(const Tensor& a, int64_t dim = -1);
Tensor log_softmax(const Tensor& a, int64_t dim = -1);
// Normalises over the last dim; weight/bias [H] are optional (undefined = none).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// layer_norm(x + residual, ...) (the post-LN residual block), in one pass over each row when no
// gradient is needed and both have x's shape; otherwise exactly layer_norm(add(x, residual)).
Tensor add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                      const Tensor& bias, double eps = 1e-5);
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-6);
// rms_norm(x + residual, weight, eps), with x + residual stored in *sum: one pass per row where
// nothing needs a gradient and x, residual share shape and dtype (a pre-norm block's residual add
// and the next norm); otherwise add then rms_norm.
Tensor add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                    Tensor* sum);

// ---- indexing, shape and masking ---------------------------------------------------------------
// weight [V, H], ids integer [...] -> [..., H]; backward scatter-adds into weight. Ids outside
// [0, V) throw IndexError. Rows equal to padding_idx get no gradient (torch semantics).
Tensor embedding(const Tensor& weight, const Tensor& ids, int64_t padding_idx = -1);
// Inverted dropout: zeroes with probability p and scales the rest by 1/(1-p); identity when
// !training or p == 0. Draws from `gen` (default generator when null).
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);       // torch.gather
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);  // mask bool, broadcast
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);     // cond bool, broadcast

// ---- losses ------------------------------------------------------------------------------------
enum class Reduction { none, mean, sum };
// logits [N, C] (or [C]), targets integer [N]; torch.nn.functional.cross_entropy semantics:
// targets == ignore_index contribute nothing and are excluded from the mean; label smoothing as in
// torch (eps/C spread over all classes).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100,
                     double label_smoothing = 0.0, Reduction reduction = Reduction::mean);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets,
                                        Reduction reduction = Reduction::mean);

// ---- attention and positions -------------------------------------------------------------------
struct AttentionOptions {
  // HF-style key padding mask [B, Tk] (bool or integer; nonzero = attend). Optional.
  Tensor key_padding_mask;
  // Extra mask broadcastable to [B, H, Tq, Tk]: bool (true = attend) or float (added to scores).
  Tensor attn_mask;
  bool causal = false;     // query i attends keys j <= i + (Tk - Tq)
  double scale = 0.0;      // 0 -> 1/sqrt(D)
  double dropout_p = 0.0;  // dropout on the probabilities (training only)
  bool training = false;
  bool return_probs = false;  // fill AttentionResult::probs [B, H, Tq, Tk] (for heatmaps)
  // Inference only: batch row b reads keys/values row kv_rows[b] (B entries, each < k's batch);
  // null: row b. How a relabelled KV cache (beam search) is read without moving it.
  const int64_t* kv_rows = nullptr;
};
struct AttentionResult {
  Tensor out;    // [B, H, Tq, Dv]
  Tensor probs;  // [B, H, Tq, Tk] when requested; never requires grad
};
// q [B, H, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv]; Hkv divides H (grouped-query heads:
// query head h uses kv head h / (H / Hkv)). Fused: scores, mask, softmax, dropout, weighted sum;
// backward recomputes nothing from outside. Fully masked rows give zeros.
AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionOptions& opt = {});
// Rotary position embedding, HF LLaMA convention (rotate_half over the two halves of D):
// x [B, H, T, D], positions integer [T] (or [B, T]); theta the base (10000 for LLaMA).
Tensor rotary_embedding(const Tensor& x, const Tensor& positions, double theta = 10000.0);
// The same with precomputed inverse frequencies inv_freq [D/2] (transformers' rotary embedding
// after rope_scaling: linear, dynamic NTK, llama3) and cos/sin multiplied by attention_scaling;
// angles are rounded to f32 as transformers computes them. interleaved: pairs (2i, 2i + 1) rotate
// instead of the halves (i, i + D/2): llama.cpp's layout of q/k rows in GGUF files.
Tensor rotary_embedding(const Tensor& x, const Tensor& positions, const Tensor& inv_freq,
                        double attention_scaling = 1.0, bool interleaved = false);
// No-gradient form writing into `out` (f32, x's shape, any strides with a contiguous last dim,
// e.g. a slot of a preallocated KV cache); x may be a strided view. Nothing is allocated but
// the small cos/sin table.
void rotary_embedding_into(const Tensor& x, const Tensor& positions, const Tensor& inv_freq,
                           double attention_scaling, const Tensor& out, bool interleaved = false);
// Sinusoidal encoding [T, D] as in "Attention Is All You Need" / d2l:
// P[t, 2i] = sin(t / 10000^(2i/D)), P[t, 2i+1] = cos(t / 10000^(2i/D)).
Tensor sinusoidal_position_encoding(int64_t length, int64_t dim);

}  // namespace lmf
