// SGD with momentum as torch.optim.SGD (dampening 0, optional Nesterov, L2 weight decay added to
// the gradient), in place in f32.
#pragma once
#include "lmforge/optim/optimizer.h"

namespace lmf::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, const SGDOptions& options = {});
  SGD(const std::vector<Tensor>& params, const SGDOptions& options = {});
  void step() override;
  const SGDOptions& options() const { return opt_; }

 protected:
  void save_state(OptimizerState& out) const override;
  void load_state(const OptimizerState& in) override;

 private:
  SGDOptions opt_;
  std::vector<Tensor> momentum_buffer_;  // per parameter; undefined until its first step
};

}  // namespace lmf::optim
