#include "lmforge/optim/sgd.h"

namespace lmf::optim {

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& options)
    : Optimizer("SGD", std::move(groups), options.lr, options.weight_decay), opt_(options) {
  LMF_CHECK(opt_.lr >= 0, ValueError, "SGD: invalid lr {}", opt_.lr);
  LMF_CHECK(opt_.momentum >= 0, ValueError, "SGD: invalid momentum {}", opt_.momentum);
  LMF_CHECK(!opt_.nesterov || opt_.momentum > 0, ValueError,
            "SGD: Nesterov momentum needs momentum > 0");
  momentum_buffer_.resize(num_params());
}

SGD::SGD(const std::vector<Tensor>& params, const SGDOptions& options)
    : SGD(std::vector<ParamGroup>{ParamGroup{params, {}, {}, {}}}, options) {}

void SGD::step() {
  int64_t index = 0;
  for (const ParamGroup& group : groups_) {
    const float neg_lr = static_cast<float>(-*group.lr);
    const float wd = static_cast<float>(*group.weight_decay);
    const bool use_wd = *group.weight_decay != 0.0;
    const float mom = static_cast<float>(opt_.momentum);
    const bool use_mom = opt_.momentum != 0.0, nesterov = opt_.nesterov;
    for (const Tensor& p : group.params) {
      Tensor& buf_t = momentum_buffer_[index];
      Tensor g = grad_f32(p, index++);
      if (!g.defined()) continue;
      const bool first = !buf_t.defined();
      if (use_mom && first) buf_t = Tensor::empty(p.shape());
      float* w = p.data<float>();
      const float* gr = g.data<float>();
      float* buf = use_mom ? buf_t.data<float>() : nullptr;
      const int64_t n = p.numel();
      // torch's single-tensor SGD, dampening 0: the first step's buffer is the gradient itself.
#pragma omp parallel for if (n > 32768) schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        float gi = gr[i];
        if (use_wd) gi = gi + wd * w[i];
        if (use_mom) {
          buf[i] = first ? gi : buf[i] * mom + gi;
          gi = nesterov ? gi + mom * buf[i] : buf[i];
        }
        w[i] = w[i] + neg_lr * gi;
      }
    }
  }
}

void SGD::save_state(OptimizerState& out) const {
  for (size_t i = 0; i < momentum_buffer_.size(); ++i)
    if (momentum_buffer_[i].defined())
      out.tensors[fmt::format("state.{}.momentum_buffer", i)] = momentum_buffer_[i].clone();
}

void SGD::load_state(const OptimizerState& in) {
  std::vector<Tensor> loaded(momentum_buffer_.size());
  int64_t index = 0;
  for (const ParamGroup& group : groups_) {
    for (const Tensor& p : group.params) {
      const std::string key = fmt::format("state.{}.momentum_buffer", index);
      if (in.tensors.count(key)) loaded[index] = load_tensor(in, key, p.shape(), name_);
      ++index;
    }
  }
  momentum_buffer_ = std::move(loaded);
}

}  // namespace lmf::optim
