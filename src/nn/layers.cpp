// Construction of the basic layers: parameter registration and HF-style initialisation. Their
// forward passes live in forward.cpp, so building, initialising and loading a module tree does
// not pull in the op kernels.
#include "lmforge/nn/layers.h"

#include <cmath>

#include "lmforge/nn/init.h"

namespace lmf::nn {

namespace {
void check_positive(const char* who, const char* what, int64_t v) {
  LMF_CHECK(v > 0, ValueError, "{}: {} must be positive, got {}", who, what, v);
}
}  // namespace

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : in_(in_features), out_(out_features) {
  check_positive("Linear", "in_features", in_features);
  check_positive("Linear", "out_features", out_features);
  weight_ = &register_parameter("weight", Tensor::empty({out_features, in_features}));
  init::normal_(*weight_, 0.0, kDefaultInitStd);
  if (bias) bias_ = &register_parameter("bias", Tensor::zeros({out_features}));
}

Conv1D::Conv1D(int64_t in_features, int64_t out_features) : in_(in_features), out_(out_features) {
  check_positive("Conv1D", "in_features", in_features);
  check_positive("Conv1D", "out_features", out_features);
  weight_ = &register_parameter("weight", Tensor::empty({in_features, out_features}));
  init::normal_(*weight_, 0.0, kDefaultInitStd);
  bias_ = &register_parameter("bias", Tensor::zeros({out_features}));
}

namespace {
LoraBranch make_lora(Module& owner, int64_t in, int64_t out, int64_t r, double scaling,
                     double dropout) {
  LMF_CHECK(r > 0, ValueError, "LoRA: r must be positive, got {}", r);
  LMF_CHECK(dropout >= 0 && dropout < 1, ValueError, "LoRA: dropout must be in [0, 1), got {}",
            dropout);
  LoraBranch l;
  l.r = r;
  l.scaling = scaling;
  l.dropout = dropout;
  l.a = owner.register_module("lora_A", std::make_shared<Linear>(in, r, false));
  l.b = owner.register_module("lora_B", std::make_shared<Linear>(r, out, false));
  init::kaiming_uniform_(l.a->weight(), std::sqrt(5.0));
  init::zeros_(l.b->weight());
  return l;
}
}  // namespace

void Linear::attach_lora(int64_t r, double scaling, double dropout) {
  LMF_CHECK(!has_lora(), ValueError, "Linear: a LoRA adapter is attached already");
  lora_ = make_lora(*this, in_, out_, r, scaling, dropout);
}

void Conv1D::attach_lora(int64_t r, double scaling, double dropout) {
  LMF_CHECK(!has_lora(), ValueError, "Conv1D: a LoRA adapter is attached already");
  lora_ = make_lora(*this, in_, out_, r, scaling, dropout);
}

Embedding::Embedding(int64_t num_embeddings, int64_t dim, int64_t padding_idx)
    : num_(num_embeddings), dim_(dim), padding_idx_(padding_idx) {
  check_positive("Embedding", "num_embeddings", num_embeddings);
  check_positive("Embedding", "dim", dim);
  LMF_CHECK(padding_idx >= -1 && padding_idx < num_embeddings, IndexError,
            "Embedding: padding_idx {} out of range for {} embeddings (-1 for none)", padding_idx,
            num_embeddings);
  weight_ = &register_parameter("weight", Tensor::empty({num_embeddings, dim}));
  init::normal_(*weight_, 0.0, kDefaultInitStd);
  if (padding_idx >= 0) weight_->select(0, padding_idx).zero_();
}

LayerNorm::LayerNorm(int64_t dim, double eps, bool affine, bool bias) : dim_(dim), eps_(eps) {
  check_positive("LayerNorm", "dim", dim);
  LMF_CHECK(eps >= 0, ValueError, "LayerNorm: eps {} is negative", eps);
  if (!affine) return;
  weight_ = &register_parameter("weight", Tensor::ones({dim}));
  if (bias) bias_ = &register_parameter("bias", Tensor::zeros({dim}));
}

RMSNorm::RMSNorm(int64_t dim, double eps) : dim_(dim), eps_(eps) {
  check_positive("RMSNorm", "dim", dim);
  LMF_CHECK(eps >= 0, ValueError, "RMSNorm: eps {} is negative", eps);
  weight_ = &register_parameter("weight", Tensor::ones({dim}));
}

Dropout::Dropout(double p) : p_(p) {
  LMF_CHECK(p >= 0 && p < 1, ValueError, "Dropout: p {} must lie in [0, 1)", p);
}

}  // namespace lmf::nn
