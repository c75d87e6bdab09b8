// Replays the gradients of tests/fixtures/optim_goldens.json (made by
// scripts/reference/gen_optim_goldens.py with torch.optim + transformers' schedules) and compares
// every parameter after every step, the lrs, and the clipping norms.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/optim/adamw.h"
#include "lmforge/optim/grad_clip.h"
#include "lmforge/optim/lr_scheduler.h"
#include "lmforge/optim/sgd.h"

using namespace lmf;
using namespace lmf::optim;
using nlohmann::json;

namespace {

json load_goldens() {
  std::ifstream f(std::string(LMF_FIXTURES_DIR) + "/optim_goldens.json");
  EXPECT_TRUE(f.good()) << "missing tests/fixtures/optim_goldens.json";
  return json::parse(f);
}

Tensor tensor_from(const json& values, const Shape& shape) {
  return Tensor::from_vector<float>(values.get<std::vector<float>>(), shape);
}

LambdaLR make_schedule(Optimizer& opt, const json& sc) {
  const std::string kind = sc["schedule"];
  if (kind == "linear") return get_linear_schedule_with_warmup(opt, sc["warmup"], sc["total"]);
  if (kind == "cosine") return get_cosine_schedule_with_warmup(opt, sc["warmup"], sc["total"]);
  return get_constant_schedule(opt);
}

void replay(const json& doc, const json& sc) {
  SCOPED_TRACE(sc["name"].get<std::string>());
  std::vector<Shape> shapes = doc["shapes"].get<std::vector<Shape>>();
  std::vector<Tensor> params;
  NamedTensors named;
  for (size_t i = 0; i < shapes.size(); ++i) {
    params.push_back(tensor_from(doc["init"][i], shapes[i]).set_requires_grad(true));
    named.emplace_back(doc["names"][i].get<std::string>(), params.back());
  }
  // The HF helper must produce exactly the script's grouping: [weight] decays, the rest not.
  std::vector<ParamGroup> groups = decay_param_groups(named, sc["weight_decay"]);
  EXPECT_EQ(groups.size(), 2u);
  EXPECT_TRUE(groups[0].params.size() == 1 && groups[0].params[0].same(params[0]));
  std::unique_ptr<Optimizer> opt;
  if (sc["optimizer"] == "adamw") {
    AdamWOptions o;
    o.lr = sc["lr"];
    o.beta1 = sc["betas"][0];
    o.beta2 = sc["betas"][1];
    o.eps = sc["eps"];
    opt = std::make_unique<AdamW>(groups, o);
  } else {
    SGDOptions o;
    o.lr = sc["lr"];
    o.momentum = sc["momentum"];
    o.nesterov = sc["nesterov"];
    opt = std::make_unique<SGD>(groups, o);
  }
  LambdaLR sched = make_schedule(*opt, sc);
  const bool clip = !sc["clip"].is_null();
  for (size_t step = 0; step < doc["grads"].size(); ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    for (size_t i = 0; i < params.size(); ++i) {
      const json& g = doc["grads"][step][i];
      params[i].set_grad(g.is_null() ? Tensor() : tensor_from(g, shapes[i]));
    }
    if (clip) {
      const double norm = clip_grad_norm_(params, sc["clip"]);
      EXPECT_NEAR(norm, sc["norms"][step].get<double>(), 1e-6 * norm);
    }
    std::vector<double> lrs = sched.last_lrs();
    for (size_t g = 0; g < lrs.size(); ++g)
      EXPECT_DOUBLE_EQ(lrs[g], sc["lrs"][step][g].get<double>());
    opt->step();
    sched.step();
    for (size_t i = 0; i < params.size(); ++i) {
      std::vector<float> got = params[i].to_vector<float>();
      std::vector<float> want = sc["after"][step][i].get<std::vector<float>>();
      ASSERT_EQ(got.size(), want.size());
      for (size_t k = 0; k < got.size(); ++k)
        ASSERT_NEAR(got[k], want[k], 1e-6 * std::max(1.0f, std::fabs(want[k])))
            << doc["names"][i].get<std::string>() << "[" << k << "]";
    }
  }
}

}  // namespace

TEST(OptimGoldens, AdamWLinearWarmupMatchesTorch) {
  auto d = load_goldens();
  replay(d, d["scenarios"][0]);
}
TEST(OptimGoldens, AdamWCosineWithClippingMatchesTorch) {
  auto d = load_goldens();
  replay(d, d["scenarios"][1]);
}
TEST(OptimGoldens, SgdMomentumMatchesTorch) {
  auto d = load_goldens();
  replay(d, d["scenarios"][2]);
}
TEST(OptimGoldens, SgdNesterovWithClippingMatchesTorch) {
  auto d = load_goldens();
  replay(d, d["scenarios"][3]);
}
