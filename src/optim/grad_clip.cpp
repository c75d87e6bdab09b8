#include "lmforge/optim/grad_clip.h"

#include <cmath>
#include <unordered_set>

namespace lmf::optim {

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  LMF_CHECK(norm_type == 2.0 || std::isinf(norm_type), ValueError,
            "clip_grad_norm_: norm_type {} is not supported (2 or infinity)", norm_type);
  LMF_CHECK(max_norm >= 0, ValueError, "clip_grad_norm_: max_norm {} is negative", max_norm);
  const bool inf = std::isinf(norm_type);
  // Tied parameters are listed once so that their gradient is neither counted nor scaled twice.
  std::vector<Tensor> grads;  // the gradients themselves
  std::vector<Tensor> work;   // the same, as contiguous f32 (a copy only when they are not)
  std::unordered_set<const TensorImpl*> seen;
  for (const Tensor& p : params) {
    if (!p.defined() || !p.grad().defined() || !seen.insert(p.impl()).second) continue;
    Tensor g = p.grad();
    LMF_CHECK(is_floating(g.dtype()), DTypeError, "clip_grad_norm_: gradient {} is not floating",
              g.describe());
    grads.push_back(g);
    work.push_back(g.detach().to(DType::f32).contiguous());
  }
  if (grads.empty()) return 0.0;
  // Each gradient's norm in f32 (as torch's per-tensor vector_norm), then the norm of those norms.
  double total = 0;
  for (const Tensor& g : work) {
    const float* x = g.data<float>();
    const int64_t n = g.numel();
    double acc = 0;
    if (inf) {
#pragma omp parallel for reduction(max : acc) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) acc = std::max(acc, static_cast<double>(std::fabs(x[i])));
      total = std::max(total, acc);
    } else {
#pragma omp parallel for reduction(+ : acc) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]) * x[i];
      const float norm = static_cast<float>(std::sqrt(acc));
      total += static_cast<double>(norm) * norm;
    }
  }
  const float total_f = static_cast<float>(inf ? total : std::sqrt(total));
  const float coef = std::min(1.0f, static_cast<float>(max_norm) / (total_f + 1e-6f));
  if (coef < 1.0f) {
    for (size_t k = 0; k < work.size(); ++k) {
      float* x = work[k].data<float>();
      const int64_t n = work[k].numel();
#pragma omp parallel for if (n > 65536)
      for (int64_t i = 0; i < n; ++i) x[i] *= coef;
      if (work[k].data_ptr() != grads[k].data_ptr()) grads[k].copy_(work[k]);
    }
  }
  return total_f;
}

}  // namespace lmf::optim
