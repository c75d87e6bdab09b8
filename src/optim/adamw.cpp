#include "lmforge/optim/adamw.h"

#include <cmath>

namespace lmf::optim {

namespace {
void check_options(const AdamWOptions& o) {
  LMF_CHECK(o.lr >= 0, ValueError, "AdamW: invalid lr {}", o.lr);
  LMF_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, ValueError,
            "AdamW: betas ({}, {}) must lie in [0, 1)", o.beta1, o.beta2);
  LMF_CHECK(o.eps >= 0, ValueError, "AdamW: invalid eps {}", o.eps);
  LMF_CHECK(o.weight_decay >= 0, ValueError, "AdamW: invalid weight_decay {}", o.weight_decay);
}
}  // namespace

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options)
    : Optimizer("AdamW", std::move(groups), options.lr, options.weight_decay), opt_(options) {
  check_options(opt_);
  state_.resize(num_params());
}

AdamW::AdamW(const std::vector<Tensor>& params, const AdamWOptions& options)
    : AdamW(std::vector<ParamGroup>{ParamGroup{params, {}, {}, {}}}, options) {}

void AdamW::step() {
  int64_t index = 0;
  for (const ParamGroup& group : groups_) {
    const double lr = *group.lr, wd = *group.weight_decay;
    for (const Tensor& p : group.params) {
      ParamState& st = state_[index];
      Tensor g = grad_f32(p, index++);
      if (!g.defined()) continue;
      if (!st.exp_avg.defined()) {
        st.exp_avg = Tensor::zeros(p.shape());
        st.exp_avg_sq = Tensor::zeros(p.shape());
      }
      st.step += 1;
      // The same f32 operations, in the same order, as torch's single-tensor Adam(W).
      const double step = static_cast<double>(st.step);
      const double bc1 = 1.0 - std::pow(opt_.beta1, step);
      const double bc2 = 1.0 - std::pow(opt_.beta2, step);
      const float decay = static_cast<float>(1.0 - lr * wd);
      const float w1 = static_cast<float>(1.0 - opt_.beta1);
      const float b2 = static_cast<float>(opt_.beta2);
      const float w2 = static_cast<float>(1.0 - opt_.beta2);
      const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
      const float eps = static_cast<float>(opt_.eps);
      const float neg_step_size = static_cast<float>(-(lr / bc1));
      const bool apply_decay = wd != 0.0;
      float* w = p.data<float>();
      float* m = st.exp_avg.data<float>();
      float* v = st.exp_avg_sq.data<float>();
      const float* gr = g.data<float>();
      const int64_t n = p.numel();
#pragma omp parallel for if (n > 32768) schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        float wi = w[i];
        if (apply_decay) wi = wi * decay;
        const float gi = gr[i];
        m[i] = m[i] + w1 * (gi - m[i]);
        v[i] = v[i] * b2;
        v[i] = v[i] + w2 * gi * gi;
        const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
        w[i] = wi + neg_step_size * m[i] / denom;
      }
    }
  }
}

void AdamW::save_state(OptimizerState& out) const {
  for (size_t i = 0; i < state_.size(); ++i) {
    const ParamState& st = state_[i];
    if (!st.exp_avg.defined()) continue;
    const std::string pre = fmt::format("state.{}.", i);
    out.scalars[pre + "step"] = static_cast<double>(st.step);
    out.tensors[pre + "exp_avg"] = st.exp_avg.clone();
    out.tensors[pre + "exp_avg_sq"] = st.exp_avg_sq.clone();
  }
}

void AdamW::load_state(const OptimizerState& in) {
  std::vector<ParamState> loaded(state_.size());
  int64_t index = 0;
  for (const ParamGroup& group : groups_) {
    for (const Tensor& p : group.params) {
      const std::string pre = fmt::format("state.{}.", index);
      ParamState& st = loaded[index++];
      if (!in.scalars.count(pre + "step")) continue;  // never stepped
      st.step = static_cast<int64_t>(in.scalars.at(pre + "step"));
      st.exp_avg = load_tensor(in, pre + "exp_avg", p.shape(), name_);
      st.exp_avg_sq = load_tensor(in, pre + "exp_avg_sq", p.shape(), name_);
    }
  }
  state_ = std::move(loaded);
}

}  // namespace lmf::optim
