// Learning-rate schedules: a LambdaLR (lr = initial_lr * factor(step) for every group) and the
// factors of transformers' get_constant_schedule / get_linear_schedule_with_warmup /
// get_cosine_schedule_with_warmup. Call scheduler.step() after optimizer.step(), as in HF.
#pragma once
#include <functional>

#include "lmforge/optim/optimizer.h"

namespace lmf::optim {

using LrLambda = std::function<double(int64_t step)>;

double constant_factor(int64_t step);
// step / max(1, warmup) during warmup, then linear decay to 0 at `total`.
double linear_warmup_factor(int64_t step, int64_t warmup, int64_t total);
// Warmup as above, then 0.5 * (1 + cos(pi * 2 * num_cycles * progress)), floored at 0.
double cosine_warmup_factor(int64_t step, int64_t warmup, int64_t total, double num_cycles = 0.5);

class LambdaLR {
 public:
  // Records each group's initial_lr (unless a previous scheduler did) and applies factor(0).
  LambdaLR(Optimizer& optimizer, LrLambda factor);
  void step();
  int64_t last_step() const { return last_step_; }
  std::vector<double> last_lrs() const;
  // {"last_step", "base_lrs.<g>"}; loading restores them without touching the optimizer's lrs
  // (those come back with the optimizer's own state).
  std::map<std::string, double> state_dict() const;
  void load_state_dict(const std::map<std::string, double>& state);

 private:
  void apply();
  Optimizer& opt_;
  LrLambda factor_;
  std::vector<double> base_lrs_;
  int64_t last_step_ = -1;
};

LambdaLR get_constant_schedule(Optimizer& optimizer);
LambdaLR get_linear_schedule_with_warmup(Optimizer& optimizer, int64_t num_warmup_steps,
                                         int64_t num_training_steps);
LambdaLR get_cosine_schedule_with_warmup(Optimizer& optimizer, int64_t num_warmup_steps,
                                         int64_t num_training_steps, double num_cycles = 0.5);

}  // namespace lmf::optim
