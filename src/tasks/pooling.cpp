#include "lmforge/tasks/pooling.h"

#include "lmforge/ops/ops.h"

namespace lmf::tasks {

Pooling parse_pooling(const std::string& name) {
  if (name == "cls") return Pooling::cls;
  if (name == "mean") return Pooling::mean;
  if (name == "max") return Pooling::max;
  if (name == "mean_sqrt_len") return Pooling::mean_sqrt_len;
  if (name == "pooler") return Pooling::pooler;
  fail<ValueError>("unknown pooling '{}': use cls, mean, max, mean_sqrt_len or pooler", name);
}

std::string pooling_name(Pooling p) {
  switch (p) {
    case Pooling::cls: return "cls";
    case Pooling::mean: return "mean";
    case Pooling::max: return "max";
    case Pooling::mean_sqrt_len: return "mean_sqrt_len";
    case Pooling::pooler: return "pooler";
  }
  return "?";
}

Tensor pool(const Tensor& hidden, const Tensor& attention_mask, Pooling mode) {
  LMF_CHECK(hidden.dim() == 3, ShapeError, "pool: hidden states must be [batch, seq, hidden], got {}",
            hidden.describe());
  LMF_CHECK(attention_mask.defined() && attention_mask.dim() == 2 &&
                attention_mask.size(0) == hidden.size(0) && attention_mask.size(1) == hidden.size(1),
            ShapeError, "pool: attention_mask {} does not match hidden states {}",
            attention_mask.describe(), hidden.describe());
  if (mode == Pooling::cls) return hidden.select(1, 0);
  LMF_CHECK(mode != Pooling::pooler, ValueError,
            "pool: 'pooler' pooling is the model's pooler_output, not a reduction of hidden states");
  Tensor m = attention_mask.to(DType::f32).unsqueeze(-1);  // [B, T, 1]
  if (mode == Pooling::max) {
    Tensor keep = attention_mask.to(DType::boolean).unsqueeze(-1).expand(hidden.shape());
    return max(where(keep, hidden, Tensor::full({}, -1e9)), 1);
  }
  Tensor summed = sum(mul(hidden, m), {1});  // [B, H]
  // sentence-transformers clamps the count to >= 1e-9; counts are whole numbers, so adding 1e-9
  // is the same in f32 for any real row and keeps an all-padding row at 0 instead of NaN.
  Tensor count = add(sum(m, {1}), 1e-9);  // [B, 1]
  return mode == Pooling::mean ? div(summed, count) : div(summed, sqrt(count));
}

Tensor l2_normalize(const Tensor& x, double eps) {
  // sqrt(|x|^2 + eps^2) equals max(|x|, eps) to f32 precision except within a factor of ~1 of
  // eps, and is differentiable everywhere; a zero row stays zero.
  return div(x, sqrt(add(sum(mul(x, x), {-1}, true), eps * eps)));
}

Tensor cosine_similarity_matrix(const Tensor& a, const Tensor& b) {
  LMF_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1), ShapeError,
            "cosine_similarity_matrix: need [Na, H] and [Nb, H], got {} and {}", a.describe(),
            b.describe());
  return matmul(l2_normalize(a, 1e-8), l2_normalize(b, 1e-8), false, true);
}

}  // namespace lmf::tasks
