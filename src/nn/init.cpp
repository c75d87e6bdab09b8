#include "lmforge/nn/init.h"

#include <cmath>

namespace lmf::nn::init {

namespace {
thread_local bool g_skip_random = false;
}  // namespace

NoInitGuard::NoInitGuard() : prev_(g_skip_random) { g_skip_random = true; }
NoInitGuard::~NoInitGuard() { g_skip_random = prev_; }
bool random_init_skipped() { return g_skip_random; }

namespace {
// Draws t.numel() values in row-major order into an f32 buffer, then copies (and converts) them
// into t, so any layout and dtype gets the same values in the same order.
template <class Draw>
void fill_with(const Tensor& t, Draw draw) {
  LMF_CHECK(t.defined() && is_floating(t.dtype()), DTypeError,
            "init: needs a floating-point tensor, got {}",
            t.defined() ? t.describe() : "undefined");
  if (g_skip_random) return;
  Tensor buf = Tensor::empty(t.shape(), DType::f32);
  float* p = buf.data<float>();
  for (int64_t i = 0; i < buf.numel(); ++i) p[i] = static_cast<float>(draw());
  const_cast<Tensor&>(t).copy_(buf);
}
Generator& pick(Generator* gen) {
  return gen ? *gen : default_generator();
}
}  // namespace

void normal_(const Tensor& t, double mean, double std, Generator* gen) {
  LMF_CHECK(std >= 0, ValueError, "init::normal_: std {} is negative", std);
  Generator& g = pick(gen);
  fill_with(t, [&] { return mean + std * g.normal(); });
}

void uniform_(const Tensor& t, double low, double high, Generator* gen) {
  LMF_CHECK(low <= high, ValueError, "init::uniform_: low {} > high {}", low, high);
  Generator& g = pick(gen);
  fill_with(t, [&] { return low + (high - low) * g.uniform(); });
}

void trunc_normal_(const Tensor& t, double mean, double std, double low, double high,
                   Generator* gen) {
  LMF_CHECK(std > 0 && low < high && mean + 6 * std > low && mean - 6 * std < high, ValueError,
            "init::trunc_normal_: N({}, {}) has (almost) no mass in [{}, {}]", mean, std, low,
            high);
  Generator& g = pick(gen);
  fill_with(t, [&] {
    for (;;) {
      const double v = mean + std * g.normal();
      if (v >= low && v <= high) return v;
    }
  });
}

void constant_(const Tensor& t, double value) {
  LMF_CHECK(t.defined(), ValueError, "init::constant_: undefined tensor");
  const_cast<Tensor&>(t).fill_(value);
}
void zeros_(const Tensor& t) {
  constant_(t, 0.0);
}
void ones_(const Tensor& t) {
  constant_(t, 1.0);
}

std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t) {
  LMF_CHECK(t.dim() >= 2, ShapeError,
            "init: fan in and fan out need a tensor with at least 2 dims, got {}", t.describe());
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

void xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  uniform_(t, -bound, bound, gen);
}

void xavier_normal_(const Tensor& t, double gain, Generator* gen) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

void kaiming_uniform_(const Tensor& t, double a, Generator* gen) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  const double bound = std::sqrt(6.0 / ((1.0 + a * a) * static_cast<double>(fan_in)));
  uniform_(t, -bound, bound, gen);
}

}  // namespace lmf::nn::init
