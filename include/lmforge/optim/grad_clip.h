// Gradient clipping with torch.nn.utils.clip_grad_norm_ semantics.
#pragma once
#include <limits>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf::optim {

// Total norm of all gradients taken together (norm_type 2, or infinity for the max-abs norm);
// parameters without a gradient are ignored. Every gradient is scaled in place by
// min(1, max_norm / (total + 1e-6)). Returns the total norm before clipping.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);
inline constexpr double kInfNorm = std::numeric_limits<double>::infinity();

}  // namespace lmf::optim
