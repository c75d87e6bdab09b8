#include "lmforge/optim/adamw.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

namespace lmf::optim {

namespace {
struct AdamWScalars {
  float decay, w1, b2, w2, bc2_sqrt, eps, neg_step_size;
};

// The same f32 operations, in the same order, as torch's single-tensor Adam(W), on [begin, end).
void adamw_chunk(float* w, float* m, float* v, const float* g, int64_t begin, int64_t end,
                 const AdamWScalars& s) {
  for (int64_t i = begin; i < end; ++i) {
    const float wi = w[i] * s.decay;
    const float gi = g[i];
    const float mi = m[i] + s.w1 * (gi - m[i]);
    float vi = v[i] * s.b2;
    vi = vi + s.w2 * gi * gi;
    const float denom = std::sqrt(vi) / s.bc2_sqrt + s.eps;
    m[i] = mi;
    v[i] = vi;
    w[i] = wi + s.neg_step_size * mi / denom;
  }
}

// The compiler does not vectorise the loop above (sqrt may set errno), so AVX-512 by hand. The
// compiler may contract a multiply and add into an FMA here: within an ulp of torch, and every
// element always takes the same path (fixed chunks), so runs stay reproducible.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 false positive in _mm512_sqrt_ps
__attribute__((target("avx512f"))) void adamw_chunk_avx512(float* w, float* m, float* v,
                                                           const float* g, int64_t begin,
                                                           int64_t end, const AdamWScalars& s) {
  const __m512 decay = _mm512_set1_ps(s.decay), w1 = _mm512_set1_ps(s.w1);
  const __m512 b2 = _mm512_set1_ps(s.b2), w2 = _mm512_set1_ps(s.w2);
  const __m512 bc2 = _mm512_set1_ps(s.bc2_sqrt), eps = _mm512_set1_ps(s.eps);
  const __m512 nss = _mm512_set1_ps(s.neg_step_size);
  int64_t i = begin;
  for (; i + 16 <= end; i += 16) {
    const __m512 wi = _mm512_mul_ps(_mm512_loadu_ps(w + i), decay);
    const __m512 gi = _mm512_loadu_ps(g + i);
    __m512 mi = _mm512_loadu_ps(m + i);
    mi = _mm512_add_ps(mi, _mm512_mul_ps(w1, _mm512_sub_ps(gi, mi)));
    __m512 vi = _mm512_mul_ps(_mm512_loadu_ps(v + i), b2);
    vi = _mm512_add_ps(vi, _mm512_mul_ps(_mm512_mul_ps(w2, gi), gi));
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc2), eps);
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    _mm512_storeu_ps(w + i, _mm512_add_ps(wi, _mm512_div_ps(_mm512_mul_ps(nss, mi), denom)));
  }
  adamw_chunk(w, m, v, g, i, end, s);
}
#pragma GCC diagnostic pop

void adamw_update(float* w, float* m, float* v, const float* g, int64_t n, const AdamWScalars& s) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  auto run = avx512 ? adamw_chunk_avx512 : adamw_chunk;
  const int64_t chunk = 16384;
  const int64_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for if (chunks > 2) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) run(w, m, v, g, c * chunk, std::min(n, (c + 1) * chunk), s);
}

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
      const double step = static_cast<double>(st.step);
      const double bc1 = 1.0 - std::pow(opt_.beta1, step);
      const double bc2 = 1.0 - std::pow(opt_.beta2, step);
      const float decay = static_cast<float>(1.0 - lr * wd);  // 1 (exact no-op) when wd = 0
      const float w1 = static_cast<float>(1.0 - opt_.beta1);
      const float b2 = static_cast<float>(opt_.beta2);
      const float w2 = static_cast<float>(1.0 - opt_.beta2);
      const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
      const float eps = static_cast<float>(opt_.eps);
      const float neg_step_size = static_cast<float>(-(lr / bc1));
      adamw_update(p.data<float>(), st.exp_avg.data<float>(), st.exp_avg_sq.data<float>(),
                   g.data<float>(), p.numel(), {decay, w1, b2, w2, bc2_sqrt, eps, neg_step_size});
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
