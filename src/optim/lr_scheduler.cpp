#include "lmforge/optim/lr_scheduler.h"

#include <algorithm>
#include <cmath>

namespace lmf::optim {

double constant_factor(int64_t) {
  return 1.0;
}

double linear_warmup_factor(int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup)
    return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  return std::max(0.0, static_cast<double>(total - step) /
                           static_cast<double>(std::max<int64_t>(1, total - warmup)));
}

double cosine_warmup_factor(int64_t step, int64_t warmup, int64_t total, double num_cycles) {
  if (step < warmup)
    return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  const double progress = static_cast<double>(step - warmup) /
                          static_cast<double>(std::max<int64_t>(1, total - warmup));
  return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * num_cycles * 2.0 * progress)));
}

LambdaLR::LambdaLR(Optimizer& optimizer, LrLambda factor)
    : opt_(optimizer), factor_(std::move(factor)) {
  LMF_CHECK(factor_ != nullptr, ValueError, "LambdaLR: the lr factor function is empty");
  for (ParamGroup& g : opt_.param_groups()) {
    if (!g.initial_lr) g.initial_lr = *g.lr;
    base_lrs_.push_back(*g.initial_lr);
  }
  step();
}

void LambdaLR::step() {
  ++last_step_;
  apply();
}

void LambdaLR::apply() {
  auto& groups = opt_.param_groups();
  LMF_CHECK(groups.size() == base_lrs_.size(), ValueError,
            "LambdaLR: the optimizer has {} groups but the scheduler was made for {}",
            groups.size(), base_lrs_.size());
  const double f = factor_(last_step_);
  for (size_t g = 0; g < groups.size(); ++g) groups[g].lr = base_lrs_[g] * f;
}

std::vector<double> LambdaLR::last_lrs() const {
  std::vector<double> lrs;
  for (const ParamGroup& g : opt_.param_groups()) lrs.push_back(*g.lr);
  return lrs;
}

std::map<std::string, double> LambdaLR::state_dict() const {
  std::map<std::string, double> st{{"last_step", static_cast<double>(last_step_)}};
  for (size_t g = 0; g < base_lrs_.size(); ++g) st[fmt::format("base_lrs.{}", g)] = base_lrs_[g];
  return st;
}

void LambdaLR::load_state_dict(const std::map<std::string, double>& state) {
  auto get = [&](const std::string& key) {
    auto it = state.find(key);
    LMF_CHECK(it != state.end(), ValueError, "LambdaLR.load_state_dict: missing '{}'", key);
    return it->second;
  };
  std::vector<double> base(base_lrs_.size());
  for (size_t g = 0; g < base.size(); ++g) base[g] = get(fmt::format("base_lrs.{}", g));
  last_step_ = static_cast<int64_t>(get("last_step"));
  base_lrs_ = std::move(base);
}

LambdaLR get_constant_schedule(Optimizer& optimizer) {
  return LambdaLR(optimizer, constant_factor);
}

LambdaLR get_linear_schedule_with_warmup(Optimizer& optimizer, int64_t num_warmup_steps,
                                         int64_t num_training_steps) {
  return LambdaLR(optimizer, [=](int64_t s) {
    return linear_warmup_factor(s, num_warmup_steps, num_training_steps);
  });
}

LambdaLR get_cosine_schedule_with_warmup(Optimizer& optimizer, int64_t num_warmup_steps,
                                         int64_t num_training_steps, double num_cycles) {
  return LambdaLR(optimizer, [=](int64_t s) {
    return cosine_warmup_factor(s, num_warmup_steps, num_training_steps, num_cycles);
  });
}

}  // namespace lmf::optim
