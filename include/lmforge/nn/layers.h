// Basic layers with torch/HF parameter names and shapes: Linear, Embedding, LayerNorm, RMSNorm,
// Dropout. Default initialisation follows HF's _init_weights for BERT-family models: weights
// N(0, 0.02), biases 0, norm weights 1 (models re-initialise with their config's range).
#pragma once
#include <memory>
#include <mutex>

#include "lmforge/nn/module.h"
#include "lmforge/ops/ops.h"

namespace lmf::nn {

inline constexpr double kDefaultInitStd = 0.02;  // HF config.initializer_range default

// y = x W^T + b; weight [out, in], bias [out].
class Linear;

// The low-rank branch of a LoRA-adapted layer: scaling * B(A(dropout(x))).
struct LoraBranch {
  int64_t r = 0;  // 0: no adapter
  double scaling = 0.0, dropout = 0.0;
  std::shared_ptr<Linear> a, b;
  Tensor apply(const Tensor& x, bool training) const;
};

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x, Activation act = Activation::none) const;
  // For a Linear without a bias of its own: x W^T + b with b [out_features] added in the GEMM's
  // epilogue (Marian/BART's final_logits_bias), the same values as forward(x) + b.
  Tensor forward_with_bias(const Tensor& x, const Tensor& b) const;
  Tensor& weight() { return *weight_; }
  const Tensor& weight() const { return *weight_; }
  Tensor bias() const { return bias_ ? *bias_ : Tensor(); }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  bool is_packed() const;  // holds a packed copy of its weight (see prepare_inference)

  // LoRA (PEFT's lora.Linear): adds children lora_A [r, in] and lora_B [out, r] (Linear, no bias;
  // A ~ kaiming_uniform(a = sqrt(5)), B = 0, as PEFT's init_lora_weights=True) so the output
  // becomes W x + b + scaling * B A dropout(x). The weight and bias stay as they are (the caller
  // freezes them). Once per layer (ValueError otherwise); r > 0.
  void attach_lora(int64_t r, double scaling, double dropout);
  bool has_lora() const { return lora_.r > 0; }

 protected:
  void on_prepare_inference(bool prepare) override;

 private:
  Tensor run(const Tensor& x, const Tensor& b, Activation act) const;
  int64_t in_, out_;
  LoraBranch lora_;
  Tensor* weight_;
  Tensor* bias_ = nullptr;
  bool pack_allowed_ = false;  // prepare_inference() was called
  mutable std::mutex pack_mu_;
  mutable std::shared_ptr<const PackedLinearWeight> packed_;  // made on first small input
};

// HF's Conv1D (GPT-2): y = x W + b with weight [in, out] (the transpose of Linear's layout),
// bias [out]. Prepared for inference it packs a transposed copy for the small-batch kernel.
class Conv1D : public Module {
 public:
  Conv1D(int64_t in_features, int64_t out_features);
  Tensor forward(const Tensor& x, Activation act = Activation::none) const;
  Tensor& weight() { return *weight_; }
  const Tensor& weight() const { return *weight_; }
  const Tensor& bias() const { return *bias_; }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  // LoRA as Linear's (PEFT's Conv1D adapters have the same lora_A [r, in] / lora_B [out, r]
  // shapes; only merging transposes, fan_in_fan_out).
  void attach_lora(int64_t r, double scaling, double dropout);
  bool has_lora() const { return lora_.r > 0; }

 protected:
  void on_prepare_inference(bool prepare) override;

 private:
  int64_t in_, out_;
  Tensor* weight_;
  Tensor* bias_;
  bool pack_allowed_ = false;
  mutable std::mutex pack_mu_;
  mutable Tensor packed_source_;  // the weight tensor packed_ was made from
  mutable std::shared_ptr<const PackedLinearWeight> packed_;
  LoraBranch lora_;
};

// Lookup table weight [num_embeddings, dim]; padding_idx (>= 0) starts at zero and gets no grad.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t dim, int64_t padding_idx = -1);
  Tensor forward(const Tensor& ids) const;
  Tensor& weight() { return *weight_; }
  const Tensor& weight() const { return *weight_; }
  int64_t num_embeddings() const { return num_; }
  int64_t dim() const { return dim_; }
  int64_t padding_idx() const { return padding_idx_; }

 private:
  int64_t num_, dim_, padding_idx_;
  Tensor* weight_;
};

// Normalises the last dim; torch's default eps 1e-5 (BERT passes its layer_norm_eps, 1e-12).
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool affine = true, bool bias = true);
  Tensor forward(const Tensor& x) const;
  // forward(x + residual), fused when no gradient is needed (ops::add_layer_norm).
  Tensor forward(const Tensor& x, const Tensor& residual) const;
  Tensor weight() const { return weight_ ? *weight_ : Tensor(); }
  Tensor bias() const { return bias_ ? *bias_ : Tensor(); }
  double eps() const { return eps_; }

 private:
  int64_t dim_;
  double eps_;
  Tensor* weight_ = nullptr;
  Tensor* bias_ = nullptr;
};

// x / sqrt(mean(x^2) + eps) * weight (LLaMA); weight [dim].
class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-6);
  Tensor forward(const Tensor& x) const;
  Tensor& weight() { return *weight_; }
  const Tensor& weight() const { return *weight_; }
  double eps() const { return eps_; }

 private:
  int64_t dim_;
  double eps_;
  Tensor* weight_;
};

// Inverted dropout in training mode, identity in eval mode. No parameters.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.1);
  Tensor forward(const Tensor& x) const;
  double p() const { return p_; }

 private:
  double p_;
};

}  // namespace lmf::nn
