// Forward and backward of the nn modules against PyTorch / HF transformers goldens
// (tests/fixtures/module_goldens.json, made by scripts/reference/gen_module_goldens.py): weights go
// in through load_state_dict, outputs must match to 1e-4 absolute and the gradients of sum(output)
// to 1e-3 relative (max error over max magnitude, per tensor). Plus KV-cache and dropout checks.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/nn/attention.h"
#include "lmforge/nn/feed_forward.h"
#include "lmforge/nn/layers.h"
#include "lmforge/optim/adamw.h"
#include "lmforge/optim/grad_clip.h"
#include "lmforge/optim/lr_scheduler.h"
#include "nn/bert_layer_tree.h"

using namespace lmf;
using namespace lmf::nn;
using nlohmann::json;

namespace {

const json& goldens() {
  static const json doc = [] {
    std::ifstream f(std::string(LMF_FIXTURES_DIR) + "/module_goldens.json");
    if (!f.good()) throw std::runtime_error("missing tests/fixtures/module_goldens.json");
    return json::parse(f);
  }();
  return doc;
}

Tensor from_json(const json& j) {
  return Tensor::from_vector<float>(j["data"].get<std::vector<float>>(), j["shape"].get<Shape>());
}

Tensor ids_from_json(const json& rows) {
  std::vector<int64_t> v;
  for (const auto& r : rows)
    for (const auto& x : r) v.push_back(x.get<int64_t>());
  return Tensor::from_vector<int64_t>(
      v, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
}

StateDict weights_of(const json& c) {
  StateDict sd;
  for (const auto& [k, v] : c["weights"].items()) sd[k] = from_json(v);
  return sd;
}

void expect_close_abs(const Tensor& got, const json& want, double tol, const std::string& what) {
  ASSERT_EQ(got.shape(), want["shape"].get<Shape>()) << what;
  std::vector<float> g = got.to_vector<float>(), w = want["data"].get<std::vector<float>>();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::fabs(double(g[i]) - w[i]));
  EXPECT_LE(worst, tol) << what << ": max abs error";
}

void expect_close_rel(const Tensor& got, const json& want, double tol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << ": no gradient";
  ASSERT_EQ(got.shape(), want["shape"].get<Shape>()) << what;
  std::vector<float> g = got.to_vector<float>(), w = want["data"].get<std::vector<float>>();
  double worst = 0, scale = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    worst = std::max(worst, std::fabs(double(g[i]) - w[i]));
    scale = std::max(scale, std::fabs(double(w[i])));
  }
  // The floor covers gradients that are exactly zero in theory (the key bias: softmax ignores a
  // per-query constant), where both sides hold only f32 rounding noise.
  EXPECT_LE(worst, tol * std::max(scale, 1e-3))
      << what << ": max error " << worst << " vs scale " << scale;
}

// Loads the case's weights, runs `forward`, backprops sum(output), compares everything.
void check_case(Module& m, const json& c, const std::function<Tensor()>& forward,
                const std::vector<Tensor>& float_inputs = {}) {
  m.eval();
  LoadResult r = m.load_state_dict(weights_of(c));
  EXPECT_TRUE(r.missing_keys.empty() && r.unexpected_keys.empty());
  Tensor out = forward();
  expect_close_abs(out, c["output"], 1e-4, "output");
  sum(out).backward();
  for (const auto& [name, p] : m.named_parameters())
    expect_close_rel(p.grad(), c["grads"][name], 1e-3, "grad of " + name);
  for (size_t i = 0; i < float_inputs.size(); ++i)
    expect_close_rel(float_inputs[i].grad(), c["input_grads"][i], 1e-3,
                     "grad of input " + std::to_string(i));
}

}  // namespace

TEST(ModulesForward, LinearMatchesTorch) {
  const json& c = goldens()["linear"];
  Linear lin(6, 5);
  Tensor x = from_json(c["input"]).set_requires_grad(true);
  check_case(lin, c, [&] { return lin.forward(x); }, {x});
}

TEST(ModulesForward, LayerNormMatchesTorch) {
  const json& c = goldens()["layer_norm"];
  LayerNorm ln(8, c["eps"].get<double>());
  Tensor x = from_json(c["input"]).set_requires_grad(true);
  Tensor scale = Tensor::from_vector<float>(c["output_weights"].get<std::vector<float>>(), {8});
  check_case(ln, c, [&] { return ln.forward(x) * scale; }, {x});
}

TEST(ModulesForward, RMSNormMatchesTorch) {
  const json& c = goldens()["rms_norm"];
  RMSNorm rms(8, c["eps"].get<double>());
  Tensor x = from_json(c["input"]).set_requires_grad(true);
  Tensor scale = Tensor::from_vector<float>(c["output_weights"].get<std::vector<float>>(), {8});
  check_case(rms, c, [&] { return rms.forward(x) * scale; }, {x});
}

TEST(ModulesForward, EmbeddingWithPaddingIdxMatchesTorch) {
  const json& c = goldens()["embedding"];
  Embedding emb(10, 4, c["padding_idx"].get<int64_t>());
  Tensor ids = ids_from_json(c["ids"]);
  Tensor scale = Tensor::from_vector<float>(c["output_weights"].get<std::vector<float>>(), {4});
  check_case(emb, c, [&] { return emb.forward(ids) * scale; });
}

TEST(ModulesForward, BertLayerMatchesHfBertLayer) {
  const json& c = goldens()["bert_layer"];
  const json& cfg = c["config"];
  test::BertLayerTree layer(cfg["hidden"], cfg["heads"], cfg["intermediate"], cfg["eps"]);
  Tensor x = from_json(c["input"]).set_requires_grad(true);
  Tensor mask = ids_from_json(c["mask"]);
  auto forward = [&] {
    AttentionInputs in;
    in.options.key_padding_mask = mask;
    const auto& att = *layer.attention;
    Tensor a = att.self->forward(x, in).out;
    Tensor h = att.output->layer_norm->forward(
        att.output->dropout->forward(att.output->dense->forward(a)) + x);
    Tensor i = layer.intermediate_->dense->forward(h, Activation::gelu);
    const auto& out = *layer.output;
    return out.layer_norm->forward(out.dropout->forward(out.dense->forward(i)) + h);
  };
  check_case(layer, c, forward, {x});
}

TEST(ModulesForward, LlamaAttentionGqaRotaryCausalMatchesHf) {
  const json& c = goldens()["llama_attention"];
  MultiHeadAttention attn(AttentionConfig::llama(16, c["heads"], c["kv_heads"], c["rope_theta"]));
  Tensor x = from_json(c["input"]).set_requires_grad(true);
  auto forward = [&] {
    AttentionInputs in;
    in.options.causal = true;
    return attn.forward(x, in).out;
  };
  check_case(attn, c, forward, {x});
}

TEST(ModulesForward, SwigluMatchesHfLlamaMlp) {
  const json& c = goldens()["swiglu"];
  FeedForward mlp(FeedForwardConfig::swiglu(16, c["intermediate"]));
  Tensor x = from_json(c["input"]).set_requires_grad(true);
  check_case(mlp, c, [&] { return mlp.forward(x); }, {x});
}

TEST(ModulesForward, CrossAttentionWithContextMaskMatchesTorch) {
  const json& c = goldens()["cross_attention"];
  AttentionConfig cfg;
  cfg.dim = 16;
  cfg.n_heads = c["heads"];
  cfg.kv_input_dim = 12;
  MultiHeadAttention attn(cfg);
  Tensor x = from_json(c["input"]).set_requires_grad(true);
  Tensor ctx = from_json(c["context"]).set_requires_grad(true);
  Tensor mask = ids_from_json(c["context_mask"]);
  auto forward = [&] {
    AttentionInputs in;
    in.context = ctx;
    in.options.key_padding_mask = mask;
    return attn.forward(x, in).out;
  };
  check_case(attn, c, forward, {x, ctx});
}

TEST(ModulesForward, KvCacheDecodingEqualsFullCausalForward) {
  manual_seed(11);
  MultiHeadAttention attn(AttentionConfig::llama(16, 4, 2));
  attn.eval();
  NoGradGuard no_grad;
  Tensor x = randn({2, 6, 16});
  AttentionInputs full;
  full.options.causal = true;
  Tensor want = attn.forward(x, full).out;
  KVCache cache;
  AttentionInputs step;
  step.options.causal = true;
  step.cache = &cache;
  Tensor prefix = attn.forward(x.narrow(1, 0, 3), step).out;  // prompt of 3, then 1 at a time
  std::vector<Tensor> outs{prefix};
  for (int64_t t = 3; t < 6; ++t) outs.push_back(attn.forward(x.narrow(1, t, 1), step).out);
  EXPECT_EQ(cache.length(), 6);
  Tensor got = concat(outs, 1);
  std::vector<float> g = got.to_vector<float>(), w = want.to_vector<float>();
  for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], w[i], 1e-5) << i;
}

TEST(ModulesForward, CrossAttentionCacheReusesEncoderKeys) {
  manual_seed(12);
  AttentionConfig cfg;
  cfg.dim = 8;
  cfg.n_heads = 2;
  MultiHeadAttention attn(cfg);
  NoGradGuard no_grad;
  Tensor x = randn({1, 2, 8}), ctx = randn({1, 4, 8});
  AttentionInputs in;
  in.context = ctx;
  Tensor want = attn.forward(x, in).out;
  KVCache cache;
  in.cache = &cache;
  attn.forward(x, in);
  EXPECT_EQ(cache.length(), 4);
  Tensor got = attn.forward(x, in).out;  // second call: keys/values from the cache
  EXPECT_EQ(cache.length(), 4);
  std::vector<float> g = got.to_vector<float>(), w = want.to_vector<float>();
  for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], w[i], 1e-6) << i;
}

TEST(ModulesForward, AttentionReturnsProbabilitiesAndChecksShapes) {
  MultiHeadAttention attn(AttentionConfig::bert(16, 4));
  attn.eval();
  Tensor x = randn({2, 3, 16});
  AttentionInputs in;
  in.options.return_probs = true;
  AttentionResult r = attn.forward(x, in);
  EXPECT_EQ(r.out.shape(), (Shape{2, 3, 16}));  // no output projection (BERT style)
  ASSERT_EQ(r.probs.shape(), (Shape{2, 4, 3, 3}));
  EXPECT_NEAR(sum(r.probs).item(), 2 * 4 * 3, 1e-4);
  EXPECT_THROW(attn.forward(randn({2, 3, 15})), ShapeError);
  EXPECT_THROW(attn.forward(randn({3, 16})), ShapeError);
  Linear lin(4, 2);
  EXPECT_THROW(lin.forward(randn({3, 5})), ShapeError);
}

TEST(ModulesForward, DropoutFollowsTrainEval) {
  Dropout drop(0.5);
  Tensor x = Tensor::ones({10000});
  drop.eval();
  EXPECT_TRUE(drop.forward(x).to_vector<float>() == x.to_vector<float>());
  drop.train();
  std::vector<float> y = drop.forward(x).to_vector<float>();
  int zeros = 0;
  for (float v : y) {
    EXPECT_TRUE(v == 0.f || v == 2.f);
    zeros += v == 0.f;
  }
  EXPECT_NEAR(zeros, 5000, 300);
}

TEST(ModulesForward, GeluMlpComposesFc1GeluFc2) {
  manual_seed(13);
  FeedForward mlp(FeedForwardConfig::gelu_mlp(8, 16));
  NoGradGuard no_grad;
  Tensor x = randn({2, 8});
  Tensor want = linear(gelu(linear(x, mlp.up().weight(), mlp.up().bias())), mlp.down().weight(),
                       mlp.down().bias());
  std::vector<float> g = mlp.forward(x).to_vector<float>(), w = want.to_vector<float>();
  for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], w[i], 1e-6) << i;
}

TEST(ModulesForward, AdamWTrainsALinearRegressionToLowLoss) {
  // End to end: modules + autograd + AdamW + schedule + clipping fit y = x A^T + b.
  manual_seed(14);
  Tensor x = randn({64, 4});
  Tensor a = Tensor::from_vector<float>({1.f, -2.f, 0.5f, 3.f, 0.f, 1.f, -1.f, 2.f}, {2, 4});
  Tensor y = linear(x, a, Tensor::from_vector<float>({0.5f, -1.f}, {2}));
  Linear model(4, 2);
  optim::AdamWOptions o;
  o.lr = 0.05;
  o.weight_decay = 0.0;
  optim::AdamW opt(optim::decay_param_groups(model.named_parameters(), 0.0), o);
  optim::LambdaLR sched = optim::get_linear_schedule_with_warmup(opt, 10, 400);
  double first = 0, last = 0;
  for (int step = 0; step < 400; ++step) {
    opt.zero_grad();
    Tensor loss = mse_loss(model.forward(x), y);
    loss.backward();
    optim::clip_grad_norm_(model.parameters(), 10.0);
    opt.step();
    sched.step();
    (step == 0 ? first : last) = loss.item();
  }
  EXPECT_GT(first, 1.0);
  EXPECT_LT(last, 1e-3);
}
