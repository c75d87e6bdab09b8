// Optimizer base: parameter groups (each with its own lr / weight decay), zero_grad, and state
// saved as named tensors + scalars so a training run can resume bit-identically.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf::optim {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// A set of parameters sharing hyper-parameters. Unset lr / weight_decay take the optimizer's
// defaults (the constructor fills them in, so they are always set afterwards). initial_lr is the
// base lr a scheduler multiplies (torch's group["initial_lr"]), set by the first scheduler.
struct ParamGroup {
  std::vector<Tensor> params;
  std::optional<double> lr;
  std::optional<double> weight_decay;
  std::optional<double> initial_lr;
};

// Optimizer state: tensors named "state.<i>.<field>" and scalars "state.<i>.step",
// "param_groups.<g>.lr", ... where <i> numbers parameters across groups in order (as in torch).
struct OptimizerState {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, double> scalars;
};

// HF Trainer's rule for parameters that get no weight decay: biases and normalisation weights.
// True when the name ends with "bias", or its module (the part before the last '.') contains
// "layernorm", "layer_norm" or "rmsnorm", ends with "norm", or starts with "ln_" (GPT-2), case
// insensitive.
bool is_no_decay_name(const std::string& name);
// Two groups as in HF Trainer: {decay: weight_decay} and {no decay: 0.0}; parameters that do not
// require grad are left out; empty groups are dropped.
std::vector<ParamGroup> decay_param_groups(const NamedTensors& named_params, double weight_decay);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient; parameters without one are skipped.
  virtual void step() = 0;
  // Drops every parameter's gradient (torch's set_to_none=True). Gradients otherwise accumulate
  // (+=) across backward() calls, which is how gradient accumulation works.
  void zero_grad();

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  int64_t num_params() const;

  OptimizerState state_dict() const;
  // Restores state saved from an optimizer with the same groups and parameter shapes (ShapeError
  // / ValueError naming the key otherwise). Tensors are copied, never aliased.
  void load_state_dict(const OptimizerState& state);

 protected:
  Optimizer(const char* name, std::vector<ParamGroup> groups, double lr, double weight_decay);
  virtual void save_state(OptimizerState& out) const = 0;
  virtual void load_state(const OptimizerState& in) = 0;
  // The gradient of `p` as a contiguous f32 tensor of p's shape, or undefined when p has none.
  Tensor grad_f32(const Tensor& p, int64_t index) const;
  // Helpers for save/load of per-parameter tensors.
  static Tensor load_tensor(const OptimizerState& in, const std::string& key, const Shape& shape,
                            const char* who);
  static double load_scalar(const OptimizerState& in, const std::string& key, const char* who);

  const char* name_;
  std::vector<ParamGroup> groups_;
};

}  // namespace lmf::optim
