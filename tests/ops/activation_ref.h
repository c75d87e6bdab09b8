// Float64 reference of every lmf::Activation, shared by the matmul/linear and GEMM kernel tests.
#pragma once
#include <cmath>

#include "lmforge/ops/ops.h"

namespace lmf::test {

inline double activation_ref(Activation act, double x) {
  switch (act) {
    case Activation::none:
      return x;
    case Activation::relu:
      return x > 0 ? x : 0;
    case Activation::gelu:
      return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case Activation::gelu_tanh:
      return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::silu:
      return x / (1 + std::exp(-x));
    case Activation::tanh:
      return std::tanh(x);
  }
  return x;
}

}  // namespace lmf::test
