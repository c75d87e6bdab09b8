#include "lmforge/optim/optimizer.h"

#include <algorithm>
#include <cctype>
#include <unordered_set>

namespace lmf::optim {

namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

bool is_no_decay_name(const std::string& name) {
  if (ends_with(name, "bias")) return true;
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  const std::string module = lower(name.substr(0, dot));
  const size_t leaf_start = module.rfind('.') == std::string::npos ? 0 : module.rfind('.') + 1;
  const std::string leaf = module.substr(leaf_start);
  return module.find("layernorm") != std::string::npos ||
         module.find("layer_norm") != std::string::npos ||
         module.find("rmsnorm") != std::string::npos || ends_with(leaf, "norm") ||
         leaf.rfind("ln_", 0) == 0;
}

std::vector<ParamGroup> decay_param_groups(const NamedTensors& named_params, double weight_decay) {
  ParamGroup decay, no_decay;
  decay.weight_decay = weight_decay;
  no_decay.weight_decay = 0.0;
  for (const auto& [name, p] : named_params) {
    if (!p.requires_grad()) continue;
    (is_no_decay_name(name) ? no_decay : decay).params.push_back(p);
  }
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

Optimizer::Optimizer(const char* name, std::vector<ParamGroup> groups, double lr,
                     double weight_decay)
    : name_(name), groups_(std::move(groups)) {
  LMF_CHECK(!groups_.empty(), ValueError, "{}: got no parameter groups", name_);
  std::unordered_set<const TensorImpl*> seen;
  int64_t index = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& group = groups_[g];
    if (!group.lr) group.lr = lr;
    if (!group.weight_decay) group.weight_decay = weight_decay;
    LMF_CHECK(*group.lr >= 0, ValueError, "{}: group {} has negative lr {}", name_, g, *group.lr);
    LMF_CHECK(*group.weight_decay >= 0, ValueError, "{}: group {} has negative weight_decay {}",
              name_, g, *group.weight_decay);
    for (const Tensor& p : group.params) {
      LMF_CHECK(p.defined(), ValueError, "{}: parameter {} (group {}) is an undefined tensor",
                name_, index, g);
      LMF_CHECK(p.dtype() == DType::f32, DTypeError,
                "{}: parameter {} is {}; optimizers update f32 parameters (keep f32 master "
                "weights and cast copies for compute)",
                name_, index, p.describe());
      LMF_CHECK(p.is_contiguous(), ValueError,
                "{}: parameter {} ({}) is not contiguous; register the contiguous tensor", name_,
                index, p.describe());
      LMF_CHECK(p.is_leaf(), ValueError,
                "{}: parameter {} ({}) is not a leaf tensor (it has a grad_fn); optimise the "
                "leaf it was computed from",
                name_, index, p.describe());
      LMF_CHECK(seen.insert(p.impl()).second, ValueError,
                "{}: parameter {} ({}) appears more than once across parameter groups", name_,
                index, p.describe());
      ++index;
    }
  }
}

int64_t Optimizer::num_params() const {
  int64_t n = 0;
  for (const auto& g : groups_) n += static_cast<int64_t>(g.params.size());
  return n;
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (Tensor& p : g.params) p.zero_grad();
}

Tensor Optimizer::grad_f32(const Tensor& p, int64_t index) const {
  Tensor g = p.grad();
  if (!g.defined()) return g;
  LMF_CHECK(g.shape() == p.shape(), ShapeError,
            "{}: gradient of parameter {} has shape {} but the parameter is {}", name_, index,
            shape_str(g.shape()), p.describe());
  LMF_CHECK(is_floating(g.dtype()), DTypeError, "{}: gradient of parameter {} is {}", name_, index,
            g.describe());
  return g.detach().to(DType::f32).contiguous();
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState st;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string pre = fmt::format("param_groups.{}.", g);
    st.scalars[pre + "lr"] = *groups_[g].lr;
    st.scalars[pre + "weight_decay"] = *groups_[g].weight_decay;
    st.scalars[pre + "num_params"] = static_cast<double>(groups_[g].params.size());
    if (groups_[g].initial_lr) st.scalars[pre + "initial_lr"] = *groups_[g].initial_lr;
  }
  save_state(st);
  return st;
}

void Optimizer::load_state_dict(const OptimizerState& state) {
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string pre = fmt::format("param_groups.{}.", g);
    const double n = load_scalar(state, pre + "num_params", name_);
    LMF_CHECK(n == static_cast<double>(groups_[g].params.size()), ValueError,
              "{}.load_state_dict: group {} has {} parameters but the saved state has {}", name_, g,
              groups_[g].params.size(), n);
  }
  LMF_CHECK(!state.scalars.count(fmt::format("param_groups.{}.lr", groups_.size())), ValueError,
            "{}.load_state_dict: the saved state has more than {} parameter groups", name_,
            groups_.size());
  load_state(state);  // validates everything before the groups change
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string pre = fmt::format("param_groups.{}.", g);
    groups_[g].lr = state.scalars.at(pre + "lr");
    groups_[g].weight_decay = load_scalar(state, pre + "weight_decay", name_);
    auto it = state.scalars.find(pre + "initial_lr");
    groups_[g].initial_lr = it == state.scalars.end() ? std::nullopt : std::optional(it->second);
  }
}

Tensor Optimizer::load_tensor(const OptimizerState& in, const std::string& key, const Shape& shape,
                              const char* who) {
  auto it = in.tensors.find(key);
  LMF_CHECK(it != in.tensors.end(), ValueError, "{}.load_state_dict: missing tensor '{}'", who,
            key);
  LMF_CHECK(it->second.shape() == shape, ShapeError,
            "{}.load_state_dict: '{}' has shape {} in the saved state but the parameter is {}", who,
            key, shape_str(it->second.shape()), shape_str(shape));
  Tensor t = Tensor::empty(shape, DType::f32);
  t.copy_(it->second);
  return t;
}

double Optimizer::load_scalar(const OptimizerState& in, const std::string& key, const char* who) {
  auto it = in.scalars.find(key);
  LMF_CHECK(it != in.scalars.end(), ValueError, "{}.load_state_dict: missing scalar '{}'", who,
            key);
  return it->second;
}

}  // namespace lmf::optim
