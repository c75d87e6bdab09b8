// In-place initialisers (torch.nn.init), drawing from lmf::default_generator() (seeded with
// lmf::manual_seed) unless a generator is given. They write data directly; autograd is not
// involved. Any dtype and layout; values are drawn in f32 row-major order.
#pragma once
#include <utility>

#include "lmforge/core/runtime.h"
#include "lmforge/core/tensor.h"

namespace lmf::nn::init {

// While one exists on this thread, the random initialisers below (normal_, uniform_,
// trunc_normal_, xavier_*, kaiming_uniform_) leave their tensor as it is and draw nothing, like
// HF's no_init_weights: for modules built only to receive a checkpoint's weights (22M draws and
// a touch of every page, ~0.3 s, for all-MiniLM-L6-v2). Nestable.
class NoInitGuard {
 public:
  NoInitGuard();
  ~NoInitGuard();
  NoInitGuard(const NoInitGuard&) = delete;
  NoInitGuard& operator=(const NoInitGuard&) = delete;

 private:
  bool prev_;
};
bool random_init_skipped();

void normal_(const Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
void uniform_(const Tensor& t, double low = 0.0, double high = 1.0, Generator* gen = nullptr);
// Normal(mean, std) redrawn until inside [low, high] (torch.nn.init.trunc_normal_).
void trunc_normal_(const Tensor& t, double mean = 0.0, double std = 1.0, double low = -2.0,
                   double high = 2.0, Generator* gen = nullptr);
void constant_(const Tensor& t, double value);
void zeros_(const Tensor& t);
void ones_(const Tensor& t);
// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (2-D or more).
std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t);
// U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// N(0, s), s = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_normal_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// U(-b, b), b = sqrt(6 / ((1 + a^2) fan_in)) (leaky-relu gain, fan_in mode): torch's default for
// nn.Linear weights is a = sqrt(5).
void kaiming_uniform_(const Tensor& t, double a = 0.0, Generator* gen = nullptr);

}  // namespace lmf::nn::init
