// Optimizer behaviour beyond the torch goldens: resume from saved state, skipped parameters,
// gradient accumulation, clipping edge cases, the no-decay rule, schedules and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/optim/adamw.h"
#include "lmforge/optim/grad_clip.h"
#include "lmforge/optim/lr_scheduler.h"
#include "lmforge/optim/sgd.h"

using namespace lmf;
using namespace lmf::optim;

namespace {

std::vector<Tensor> make_params(uint64_t seed) {
  manual_seed(seed);
  // One large parameter so the OpenMP path runs too.
  return {randn({50000}).set_requires_grad(true), randn({7, 3}).set_requires_grad(true),
          randn({3}).set_requires_grad(true)};
}

// Deterministic pseudo-gradients for step `step` (independent of the optimizer's history).
void set_grads(const std::vector<Tensor>& params, int step) {
  Generator gen(1000 + step);
  for (const Tensor& p : params) {
    Tensor g = Tensor::empty(p.shape());
    float* x = g.data<float>();
    for (int64_t i = 0; i < g.numel(); ++i) x[i] = static_cast<float>(gen.normal() * (1 + step));
    const_cast<Tensor&>(p).set_grad(g);
  }
}

std::vector<std::vector<float>> values(const std::vector<Tensor>& params) {
  std::vector<std::vector<float>> v;
  for (const Tensor& p : params) v.push_back(p.to_vector<float>());
  return v;
}

template <class Opt, class Options>
void check_resume_is_bit_identical(const Options& options) {
  const int k = 4, n = 5;
  auto groups_of = [](const std::vector<Tensor>& ps) {
    return std::vector<ParamGroup>{ParamGroup{{ps[0], ps[1]}, {}, {}, {}},
                                   ParamGroup{{ps[2]}, 0.5 * 1e-2, 0.0, {}}};
  };
  std::vector<Tensor> a = make_params(7);
  Opt opt_a(groups_of(a), options);
  LambdaLR sched_a = get_linear_schedule_with_warmup(opt_a, 2, k + n);
  for (int s = 0; s < k; ++s) {
    set_grads(a, s);
    opt_a.step();
    sched_a.step();
  }
  OptimizerState saved = opt_a.state_dict();
  auto saved_sched = sched_a.state_dict();
  std::vector<std::vector<float>> saved_params = values(a);
  std::vector<double> saved_lrs = sched_a.last_lrs();
  for (int s = k; s < k + n; ++s) {
    set_grads(a, s);
    opt_a.step();
    sched_a.step();
  }

  // A fresh optimizer (fresh state, default lrs) on the saved parameter values.
  std::vector<Tensor> b = make_params(99);
  for (size_t i = 0; i < b.size(); ++i)
    b[i].copy_(Tensor::from_vector<float>(saved_params[i], b[i].shape()));
  Opt opt_b(groups_of(b), options);
  LambdaLR sched_b = get_linear_schedule_with_warmup(opt_b, 2, k + n);
  opt_b.load_state_dict(saved);
  sched_b.load_state_dict(saved_sched);
  EXPECT_EQ(sched_b.last_step(), k);
  EXPECT_EQ(sched_b.last_lrs(), saved_lrs);
  for (int s = k; s < k + n; ++s) {
    set_grads(b, s);
    opt_b.step();
    sched_b.step();
  }
  auto va = values(a), vb = values(b);
  for (size_t i = 0; i < va.size(); ++i) {
    ASSERT_EQ(va[i].size(), vb[i].size());
    EXPECT_EQ(0, std::memcmp(va[i].data(), vb[i].data(), va[i].size() * sizeof(float)))
        << "parameter " << i << " differs after resume";
    EXPECT_NE(va[i], saved_params[i]) << "parameter " << i << " did not move";
  }
}

}  // namespace

TEST(AdamW, ResumeFromStateDictIsBitIdentical) {
  AdamWOptions o;
  o.lr = 1e-2;
  check_resume_is_bit_identical<AdamW>(o);
}

TEST(SGD, ResumeFromStateDictIsBitIdentical) {
  SGDOptions o;
  o.lr = 1e-2;
  o.momentum = 0.9;
  o.nesterov = true;
  o.weight_decay = 1e-3;
  check_resume_is_bit_identical<SGD>(o);
}

TEST(AdamW, StateDictHasPerParameterTensorsStepsAndGroups) {
  std::vector<Tensor> ps = make_params(1);
  AdamW opt(ps);
  set_grads(ps, 0);
  ps[1].zero_grad();  // parameter 1 never gets a gradient
  opt.step();
  opt.step();
  OptimizerState st = opt.state_dict();
  EXPECT_EQ(st.scalars.at("state.0.step"), 2.0);
  EXPECT_EQ(st.tensors.at("state.2.exp_avg_sq").shape(), (Shape{3}));
  EXPECT_FALSE(st.tensors.count("state.1.exp_avg"));
  EXPECT_EQ(st.scalars.at("param_groups.0.lr"), 1e-3);
  EXPECT_EQ(st.scalars.at("param_groups.0.weight_decay"), 1e-2);
  EXPECT_EQ(opt.step_count(0), 2);
  EXPECT_EQ(opt.step_count(1), 0);
  // The saved tensors are copies: another step does not change them.
  std::vector<float> before = st.tensors.at("state.0.exp_avg").to_vector<float>();
  opt.step();
  EXPECT_EQ(st.tensors.at("state.0.exp_avg").to_vector<float>(), before);
}

TEST(AdamW, LoadStateDictRejectsMismatchedState) {
  std::vector<Tensor> ps = make_params(1);
  AdamW opt(ps);
  set_grads(ps, 0);
  opt.step();
  OptimizerState st = opt.state_dict();
  OptimizerState bad_shape = st;
  bad_shape.tensors["state.1.exp_avg"] = Tensor::zeros({3, 7});
  AdamW other(make_params(2));
  EXPECT_THROW(other.load_state_dict(bad_shape), ShapeError);
  OptimizerState missing = st;
  missing.tensors.erase("state.2.exp_avg_sq");
  EXPECT_THROW(other.load_state_dict(missing), ValueError);
  std::vector<Tensor> two = make_params(3);
  AdamW fewer(std::vector<Tensor>{two[0], two[1]});
  EXPECT_THROW(fewer.load_state_dict(st), ValueError);
  try {
    other.load_state_dict(bad_shape);
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("state.1.exp_avg"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[3, 7]"), std::string::npos) << e.what();
  }
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  std::vector<Tensor> ps = make_params(3);
  std::vector<float> before = ps[2].to_vector<float>();
  AdamW opt(ps);
  set_grads(ps, 0);
  ps[2].zero_grad();
  opt.step();
  EXPECT_EQ(ps[2].to_vector<float>(), before);  // not even weight-decayed
  EXPECT_NE(ps[1].to_vector<float>(), std::vector<float>(ps[1].numel(), 0.f));
}

TEST(AdamW, FirstStepMovesEachWeightByLrTimesSignOfGradient) {
  // After one step m/sqrt(v) = g/|g| (bias-corrected), so p -= lr*sign(g) (eps negligible).
  Tensor p = Tensor::from_vector<float>({1.f, -2.f, 3.f}, {3}).set_requires_grad(true);
  AdamWOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.0;
  AdamW opt(std::vector<Tensor>{p}, o);
  p.set_grad(Tensor::from_vector<float>({0.5f, -3.f, 1e-3f}, {3}));
  opt.step();
  std::vector<float> v = p.to_vector<float>();
  EXPECT_NEAR(v[0], 0.9f, 1e-6);
  EXPECT_NEAR(v[1], -1.9f, 1e-6);
  EXPECT_NEAR(v[2], 2.9f, 1e-5);
}

TEST(AdamW, LargeParameterMatchesFloat64Reference) {
  // 40003 elements: several OpenMP chunks, the SIMD path and a scalar tail.
  const int64_t n = 40003;
  manual_seed(21);
  Tensor p = randn({n}).set_requires_grad(true);
  std::vector<double> w(n), m(n, 0.0), v(n, 0.0);
  for (int64_t i = 0; i < n; ++i) w[i] = p.data<float>()[i];
  AdamWOptions o;
  o.lr = 0.01;
  o.weight_decay = 0.1;
  AdamW opt(std::vector<Tensor>{p}, o);
  for (int step = 1; step <= 3; ++step) {
    Tensor g = randn({n}, 0.0, 0.1 * step);
    p.set_grad(g);
    opt.step();
    const float* gp = g.data<float>();
    for (int64_t i = 0; i < n; ++i) {
      w[i] *= 1.0 - o.lr * o.weight_decay;
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * gp[i];
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * double(gp[i]) * gp[i];
      const double mh = m[i] / (1 - std::pow(o.beta1, step));
      const double vh = std::sqrt(v[i]) / std::sqrt(1 - std::pow(o.beta2, step));
      w[i] -= o.lr * mh / (vh + o.eps);
    }
  }
  const float* got = p.data<float>();
  for (int64_t i = 0; i < n; ++i)
    ASSERT_NEAR(got[i], w[i], 1e-6 * std::max(1.0, std::fabs(w[i]))) << i;
}

TEST(AdamW, DecoupledWeightDecayWithZeroGradient) {
  Tensor p = Tensor::from_vector<float>({2.f}, {1}).set_requires_grad(true);
  AdamWOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.5;
  AdamW opt(std::vector<Tensor>{p}, o);
  p.set_grad(Tensor::zeros({1}));
  opt.step();
  EXPECT_FLOAT_EQ(p.item(), 2.f * (1.f - 0.05f));
}

TEST(Optimizer, GradientsAccumulateAcrossBackwardUntilZeroGrad) {
  // Core accumulates (+=) into .grad on every backward; optimizers use the sum, zero_grad clears.
  Tensor p = Tensor::from_vector<float>({1.f, 2.f}, {2}).set_requires_grad(true);
  SGDOptions o;
  o.lr = 0.5;
  SGD opt(std::vector<Tensor>{p}, o);
  p.clone().backward(Tensor::from_vector<float>({1.f, 10.f}, {2}));
  p.clone().backward(Tensor::from_vector<float>({3.f, 20.f}, {2}));
  EXPECT_EQ(p.grad().to_vector<float>(), (std::vector<float>{4.f, 30.f}));
  opt.step();
  EXPECT_EQ(p.to_vector<float>(), (std::vector<float>{1.f - 2.f, 2.f - 15.f}));
  opt.zero_grad();
  EXPECT_FALSE(p.grad().defined());
  p.clone().backward(Tensor::from_vector<float>({1.f, 1.f}, {2}));
  EXPECT_EQ(p.grad().to_vector<float>(), (std::vector<float>{1.f, 1.f}));
}

TEST(Optimizer, PerGroupLearningRatesAndWeightDecay) {
  Tensor a = Tensor::from_vector<float>({1.f}, {1}).set_requires_grad(true);
  Tensor b = Tensor::from_vector<float>({1.f}, {1}).set_requires_grad(true);
  SGDOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.5;
  SGD opt({ParamGroup{{a}, {}, {}, {}}, ParamGroup{{b}, 1.0, 0.0, {}}}, o);
  EXPECT_EQ(*opt.param_groups()[0].lr, 0.1);
  EXPECT_EQ(*opt.param_groups()[1].weight_decay, 0.0);
  a.set_grad(Tensor::ones({1}));
  b.set_grad(Tensor::ones({1}));
  opt.step();
  EXPECT_FLOAT_EQ(a.item(), 1.f - 0.1f * (1.f + 0.5f));
  EXPECT_FLOAT_EQ(b.item(), 0.f);
}

TEST(Optimizer, RejectsBadParameters) {
  Tensor p = Tensor::zeros({2}).set_requires_grad(true);
  EXPECT_THROW(AdamW(std::vector<Tensor>{p, p}), ValueError);  // duplicate
  EXPECT_THROW(AdamW(std::vector<Tensor>{Tensor::zeros({2}, DType::bf16)}), DTypeError);
  EXPECT_THROW(AdamW(std::vector<Tensor>{Tensor::zeros({2, 3}).transpose(0, 1)}), ValueError);
  EXPECT_THROW(AdamW(std::vector<ParamGroup>{}), ValueError);
  AdamWOptions bad;
  bad.beta1 = 1.0;
  EXPECT_THROW(AdamW(std::vector<Tensor>{p}, bad), ValueError);
  SGDOptions nesterov_without_momentum;
  nesterov_without_momentum.nesterov = true;
  EXPECT_THROW(SGD(std::vector<Tensor>{p}, nesterov_without_momentum), ValueError);
  SGD sgd(std::vector<Tensor>{p});
  p.set_grad(Tensor::zeros({3}));
  EXPECT_THROW(sgd.step(), ShapeError);
}

TEST(ClipGradNorm, ReturnsTotalNormAndScalesOnlyAboveMax) {
  Tensor a = Tensor::zeros({2}).set_requires_grad(true);
  Tensor b = Tensor::zeros({1}).set_requires_grad(true);
  Tensor c = Tensor::zeros({1}).set_requires_grad(true);  // no grad: ignored
  a.set_grad(Tensor::from_vector<float>({3.f, 0.f}, {2}));
  b.set_grad(Tensor::from_vector<float>({-4.f}, {1}));
  EXPECT_NEAR(clip_grad_norm_({a, b, c}, 10.0), 5.0, 1e-6);
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{3.f, 0.f}));  // untouched
  EXPECT_NEAR(clip_grad_norm_({a, b, c, a}, 1.0), 5.0, 1e-6);  // a listed twice: counted once
  EXPECT_NEAR(a.grad().at({0}), 3.0 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(b.grad().at({0}), -4.0 / (5.0 + 1e-6), 1e-6);
  EXPECT_NEAR(clip_grad_norm_({a, b}, 0.1, kInfNorm), 0.8, 1e-6);
  EXPECT_NEAR(b.grad().at({0}), -0.1, 1e-6);
  EXPECT_EQ(clip_grad_norm_({c}, 1.0), 0.0);
  EXPECT_THROW(clip_grad_norm_({a}, 1.0, 1.0), ValueError);
}

TEST(ClipGradNorm, LargeGradientUsesAllElements) {
  Tensor p = Tensor::zeros({200000}).set_requires_grad(true);
  p.set_grad(Tensor::full({200000}, 0.5));
  EXPECT_NEAR(clip_grad_norm_({p}, 1.0), 0.5 * std::sqrt(200000.0), 1e-3);
  EXPECT_NEAR(p.grad().at({123456}), 1.0 / std::sqrt(200000.0), 1e-7);
}

TEST(DecayGroups, NoDecayForBiasesAndNormWeights) {
  for (const char* name :
       {"bert.encoder.layer.0.attention.output.dense.bias",
        "bert.encoder.layer.0.attention.output.LayerNorm.weight",
        "bert.embeddings.LayerNorm.weight", "model.layers.0.input_layernorm.weight",
        "model.norm.weight", "transformer.h.0.ln_1.weight", "transformer.ln_f.weight",
        "encoder.layer_norm.weight", "decoder.final_rmsnorm.weight"})
    EXPECT_TRUE(is_no_decay_name(name)) << name;
  for (const char* name :
       {"bert.encoder.layer.0.attention.self.query.weight",
        "bert.embeddings.word_embeddings.weight", "model.layers.0.mlp.up_proj.weight",
        "lm_head.weight", "normalizer.dense.weight"})
    EXPECT_FALSE(is_no_decay_name(name)) << name;
  Tensor w = Tensor::zeros({2, 2}).set_requires_grad(true);
  Tensor b = Tensor::zeros({2}).set_requires_grad(true);
  Tensor frozen = Tensor::zeros({2});
  auto groups =
      decay_param_groups({{"dense.weight", w}, {"dense.bias", b}, {"pos.weight", frozen}}, 0.01);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(*groups[0].weight_decay, 0.01);
  EXPECT_EQ(groups[0].params.size(), 1u);
  EXPECT_TRUE(groups[1].params[0].same(b));
  EXPECT_EQ(*groups[1].weight_decay, 0.0);
}

TEST(LrSchedule, FactorsMatchTransformersFormulas) {
  EXPECT_EQ(linear_warmup_factor(0, 4, 10), 0.0);
  EXPECT_EQ(linear_warmup_factor(2, 4, 10), 0.5);
  EXPECT_EQ(linear_warmup_factor(4, 4, 10), 1.0);
  EXPECT_DOUBLE_EQ(linear_warmup_factor(7, 4, 10), 0.5);
  EXPECT_EQ(linear_warmup_factor(12, 4, 10), 0.0);
  EXPECT_EQ(cosine_warmup_factor(1, 2, 10), 0.5);
  EXPECT_DOUBLE_EQ(cosine_warmup_factor(6, 2, 10), 0.5);  // halfway: cos(pi/2)
  EXPECT_NEAR(cosine_warmup_factor(10, 2, 10), 0.0, 1e-15);
  EXPECT_EQ(constant_factor(1000), 1.0);
}

TEST(LrSchedule, LambdaLRSetsGroupLrsFromInitialLr) {
  Tensor p = Tensor::zeros({1}).set_requires_grad(true);
  Tensor q = Tensor::zeros({1}).set_requires_grad(true);
  SGD opt({ParamGroup{{p}, 1.0, {}, {}}, ParamGroup{{q}, 0.1, {}, {}}});
  LambdaLR sched = get_linear_schedule_with_warmup(opt, 2, 4);
  EXPECT_EQ(sched.last_lrs(), (std::vector<double>{0.0, 0.0}));
  sched.step();
  EXPECT_EQ(sched.last_lrs(), (std::vector<double>{0.5, 0.05}));
  sched.step();
  EXPECT_EQ(*opt.param_groups()[0].initial_lr, 1.0);
  EXPECT_EQ(sched.last_lrs(), (std::vector<double>{1.0, 0.1}));
  EXPECT_THROW(sched.load_state_dict({{"last_step", 1.0}}), ValueError);
}
