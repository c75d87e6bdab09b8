// AdamW exactly as torch.optim.AdamW (amsgrad off): decoupled decay p *= 1 - lr*wd, then the
// bias-corrected Adam update, computed in f32 in place over raw pointers (OpenMP).
#pragma once
#include "lmforge/optim/optimizer.h"

namespace lmf::optim {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // torch's default; a group's own weight_decay overrides it
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options = {});
  AdamW(const std::vector<Tensor>& params, const AdamWOptions& options = {});
  void step() override;
  const AdamWOptions& options() const { return opt_; }
  int64_t step_count(int64_t param_index) const { return state_.at(param_index).step; }

 protected:
  void save_state(OptimizerState& out) const override;
  void load_state(const OptimizerState& in) override;

 private:
  struct ParamState {
    int64_t step = 0;
    Tensor exp_avg, exp_avg_sq;
  };
  AdamWOptions opt_;
  std::vector<ParamState> state_;  // one per parameter (index across groups)
};

}  // namespace lmf::optim
