// Module tree behaviour that needs only core: HF key names, dedup of shared tensors, state_dict,
// load_state_dict (copy into storage, dtype conversion, errors), train/eval, grads, module names.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/nn/attention.h"
#include "lmforge/nn/feed_forward.h"
#include "lmforge/nn/init.h"
#include "lmforge/nn/layers.h"
#include "nn/bert_layer_tree.h"

using namespace lmf;
using namespace lmf::nn;

namespace {
std::vector<std::string> keys_of(const NamedTensors& named) {
  std::vector<std::string> keys;
  for (const auto& [k, t] : named) keys.push_back(k);
  return keys;
}

struct Block : Module {
  explicit Block(int64_t n) {
    dense = register_module("dense", std::make_shared<Linear>(n, n));
    norm = register_module("LayerNorm", std::make_shared<LayerNorm>(n));
    register_buffer("position_ids", Tensor::arange(n), /*persistent=*/false);
    register_buffer("running", Tensor::zeros({n}));
  }
  std::shared_ptr<Linear> dense;
  std::shared_ptr<LayerNorm> norm;
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Module, BertLayerTreeHasExactlyHfBertLayerKeys) {
  std::ifstream f(std::string(LMF_FIXTURES_DIR) + "/module_goldens.json");
  ASSERT_TRUE(f.good()) << "missing tests/fixtures/module_goldens.json";
  const auto hf_keys = nlohmann::json::parse(f)["bert_layer_keys"].get<std::vector<std::string>>();
  ASSERT_EQ(hf_keys.size(), 16u);
  test::BertLayerTree layer(32, 4, 64);
  EXPECT_EQ(keys_of(layer.named_parameters()), hf_keys);  // same names, same order
  EXPECT_EQ(layer.parameter("intermediate.dense.weight").shape(), (Shape{64, 32}));
  EXPECT_EQ(layer.parameter("output.dense.weight").shape(), (Shape{32, 64}));
  EXPECT_EQ(layer.num_parameters(), 4 * (32 * 32 + 32) + 2 * 64 + (64 * 32 + 64) + (32 * 64 + 32));
}

TEST(Module, ModuleListNamesChildrenByIndex) {
  struct Encoder : Module {
    Encoder() {
      layer = register_module("layer", std::make_shared<ModuleList>());
      for (int i = 0; i < 3; ++i) layer->push_back(std::make_shared<Linear>(2, 2, i != 1));
    }
    std::shared_ptr<ModuleList> layer;
  } enc;
  EXPECT_EQ(keys_of(enc.named_parameters()),
            (std::vector<std::string>{"layer.0.weight", "layer.0.bias", "layer.1.weight",
                                      "layer.2.weight", "layer.2.bias"}));
  EXPECT_EQ(enc.layer->size(), 3u);
  EXPECT_FALSE(enc.layer->at<Linear>(1)->bias().defined());
  EXPECT_THROW(enc.layer->at<LayerNorm>(0), ValueError);
  EXPECT_THROW((*enc.layer)[3], IndexError);
  int n = 0;
  for (const auto& m : *enc.layer) n += m != nullptr;
  EXPECT_EQ(n, 3);
  auto mods = enc.named_modules();
  ASSERT_EQ(mods.size(), 5u);
  EXPECT_EQ(mods[0].first, "");
  EXPECT_EQ(mods[4].first, "layer.2");
}

TEST(Module, TiedWeightsAreListedOnceButSavedUnderBothKeys) {
  struct Tied : Module {
    Tied() {
      emb = register_module("embeddings", std::make_shared<Embedding>(5, 3));
      head = register_module("decoder", std::make_shared<Linear>(3, 5, false));
      head->weight() = emb->weight();  // tie
    }
    std::shared_ptr<Embedding> emb;
    std::shared_ptr<Linear> head;
  } m;
  EXPECT_EQ(keys_of(m.named_parameters()), (std::vector<std::string>{"embeddings.weight"}));
  EXPECT_EQ(m.num_parameters(), 15);
  StateDict sd = m.state_dict();
  ASSERT_EQ(sd.size(), 2u);
  EXPECT_TRUE(sd.at("decoder.weight").same(sd.at("embeddings.weight")));
  EXPECT_TRUE(m.parameter("decoder.weight").same(m.head->weight()));
  // Loading one key updates both (same storage).
  Tensor w = Tensor::full({5, 3}, 2.0);
  m.load_state_dict({{"embeddings.weight", w}, {"decoder.weight", w}});
  EXPECT_EQ(m.head->weight().at({4, 2}), 2.0);
}

TEST(Module, StateDictHasParamsAndPersistentBuffersOnly) {
  Block b(4);
  StateDict sd = b.state_dict();
  EXPECT_EQ(sd.size(), 5u);
  EXPECT_TRUE(sd.count("running"));
  EXPECT_FALSE(sd.count("position_ids"));
  EXPECT_EQ(keys_of(b.named_buffers()), (std::vector<std::string>{"position_ids", "running"}));
  EXPECT_TRUE(sd.at("dense.weight").same(b.dense->weight()));  // no copy
  EXPECT_FALSE(b.buffer("running").requires_grad());
  EXPECT_TRUE(b.parameter("LayerNorm.bias").requires_grad());
}

TEST(Module, LoadStateDictCopiesIntoExistingStorageAndConvertsDtype) {
  Block src(4), dst(4);
  init::normal_(src.dense->weight(), 0.0, 1.0);
  StateDict sd = src.state_dict();
  sd["dense.weight"] = src.dense->weight().to(DType::bf16);  // e.g. a bf16 checkpoint
  void* before = dst.dense->weight().data_ptr();
  LoadResult r = dst.load_state_dict(sd);
  EXPECT_TRUE(r.missing_keys.empty() && r.unexpected_keys.empty());
  EXPECT_EQ(dst.dense->weight().data_ptr(), before);
  EXPECT_EQ(dst.dense->weight().dtype(), DType::f32);
  EXPECT_TRUE(dst.dense->weight().requires_grad());
  std::vector<float> want = src.dense->weight().to(DType::bf16).to_vector<float>();
  EXPECT_EQ(dst.dense->weight().to_vector<float>(), want);
  EXPECT_FALSE(dst.dense->weight().same(src.dense->weight()));
}

TEST(Module, LoadStateDictReportsMissingAndUnexpectedKeys) {
  Block b(4);
  StateDict sd = b.state_dict();
  Tensor old = b.dense->bias().clone();
  sd.erase("LayerNorm.bias");
  sd["pooler.dense.weight"] = Tensor::zeros({4, 4});
  sd["dense.bias"] = Tensor::full({4}, 3.0);
  std::string msg = message_of([&] { b.load_state_dict(sd); });
  EXPECT_NE(msg.find("LayerNorm.bias"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pooler.dense.weight"), std::string::npos) << msg;
  EXPECT_THROW(b.load_state_dict(sd), ValueError);
  EXPECT_EQ(b.dense->bias().to_vector<float>(), old.to_vector<float>());  // nothing changed
  LoadResult r = b.load_state_dict(sd, /*strict=*/false);
  EXPECT_EQ(r.missing_keys, (std::vector<std::string>{"LayerNorm.bias"}));
  EXPECT_EQ(r.unexpected_keys, (std::vector<std::string>{"pooler.dense.weight"}));
  EXPECT_EQ(b.dense->bias().at({2}), 3.0);
}

TEST(Module, LoadStateDictShapeMismatchNamesKeyAndShapes) {
  Block b(4);
  StateDict sd = b.state_dict();
  sd["dense.weight"] = Tensor::zeros({4, 5});
  std::string msg = message_of([&] { b.load_state_dict(sd, false); });
  EXPECT_NE(msg.find("dense.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4, 5]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4, 4]"), std::string::npos) << msg;
  EXPECT_THROW(b.load_state_dict(sd, false), ShapeError);
}

TEST(Module, TrainEvalPropagatesToAllDescendants) {
  test::BertLayerTree layer(8, 2, 16);
  EXPECT_TRUE(layer.is_training());
  layer.eval();
  for (auto& [name, m] : layer.named_modules()) EXPECT_FALSE(m->is_training()) << name;
  layer.attention->train();
  EXPECT_TRUE(layer.attention->output->dropout->is_training());
  EXPECT_FALSE(layer.output->dropout->is_training());
  layer.train();
  for (auto& [name, m] : layer.named_modules()) EXPECT_TRUE(m->is_training()) << name;
}

TEST(Module, ZeroGradFreezeAndTrainableCount) {
  Block b(3);
  for (Tensor& p : b.parameters()) p.set_grad(Tensor::ones(p.shape()));
  b.zero_grad();
  for (Tensor& p : b.parameters()) EXPECT_FALSE(p.grad().defined());
  EXPECT_EQ(b.num_parameters(), 9 + 3 + 3 + 3);
  b.norm->requires_grad_(false);
  EXPECT_EQ(b.num_parameters(/*trainable_only=*/true), 12);
  int visited = 0;
  b.apply([&](Module&) { ++visited; });
  EXPECT_EQ(visited, 3);
}

TEST(Module, RejectsBadNames) {
  Module m;
  m.register_parameter("w", Tensor::zeros({1}));
  EXPECT_THROW(m.register_parameter("w", Tensor::zeros({1})), ValueError);
  EXPECT_THROW(m.register_buffer("w", Tensor::zeros({1})), ValueError);
  EXPECT_THROW(m.register_module("a.b", std::make_shared<Module>()), ValueError);
  EXPECT_THROW(m.register_parameter("", Tensor::zeros({1})), ValueError);
  EXPECT_THROW(m.register_parameter("x", Tensor()), ValueError);
  EXPECT_THROW(m.parameter("nope.weight"), ValueError);
  EXPECT_THROW(m.register_parameter("i", Tensor::zeros({1}, DType::i64)), DTypeError);
}

TEST(Layers, ShapesNamesAndHfInitialisation) {
  manual_seed(0);
  Linear lin(256, 512);
  EXPECT_EQ(lin.weight().shape(), (Shape{512, 256}));
  std::vector<float> w = lin.weight().to_vector<float>();
  double sum = 0, sq = 0;
  for (float v : w) sum += v, sq += double(v) * v;
  const double n = static_cast<double>(w.size()), mean = sum / n;
  EXPECT_NEAR(mean, 0.0, 5 * 0.02 / std::sqrt(n));
  EXPECT_NEAR(std::sqrt(sq / n - mean * mean), 0.02, 0.02 * 0.01);
  EXPECT_EQ(lin.bias().to_vector<float>(), std::vector<float>(512, 0.f));
  EXPECT_EQ(keys_of(Linear(2, 3, false).named_parameters()), (std::vector<std::string>{"weight"}));

  LayerNorm ln(6, 1e-12);
  EXPECT_EQ(ln.weight().to_vector<float>(), std::vector<float>(6, 1.f));
  EXPECT_EQ(ln.bias().to_vector<float>(), std::vector<float>(6, 0.f));
  EXPECT_EQ(ln.eps(), 1e-12);
  EXPECT_EQ(LayerNorm(4).eps(), 1e-5);
  EXPECT_TRUE(LayerNorm(4, 1e-5, false).named_parameters().empty());
  RMSNorm rms(6);
  EXPECT_EQ(rms.eps(), 1e-6);
  EXPECT_EQ(keys_of(rms.named_parameters()), (std::vector<std::string>{"weight"}));

  Embedding emb(10, 4, 3);
  EXPECT_EQ(emb.weight().shape(), (Shape{10, 4}));
  for (int j = 0; j < 4; ++j) EXPECT_EQ(emb.weight().at({3, j}), 0.0);
  EXPECT_NE(emb.weight().at({2, 0}), 0.0);
  EXPECT_THROW(Embedding(10, 4, 10), IndexError);
  EXPECT_THROW(Linear(0, 4), ValueError);
  EXPECT_THROW(Dropout(1.0), ValueError);
  EXPECT_TRUE(Dropout(0.1).named_parameters().empty());
}

TEST(Layers, SameSeedGivesSameInitialisation) {
  manual_seed(42);
  Linear a(8, 8);
  manual_seed(42);
  Linear b(8, 8);
  EXPECT_EQ(a.weight().to_vector<float>(), b.weight().to_vector<float>());
  Linear c(8, 8);
  EXPECT_NE(a.weight().to_vector<float>(), c.weight().to_vector<float>());
}

TEST(Attention, BertAndLlamaStyleProjectionNamesAndShapes) {
  MultiHeadAttention bert(AttentionConfig::bert(32, 4));
  EXPECT_EQ(keys_of(bert.named_parameters()),
            (std::vector<std::string>{"query.weight", "query.bias", "key.weight", "key.bias",
                                      "value.weight", "value.bias"}));
  EXPECT_EQ(bert.o_proj(), nullptr);
  EXPECT_EQ(bert.config().head_dim, 8);

  MultiHeadAttention llama(AttentionConfig::llama(32, 4, 2));
  EXPECT_EQ(keys_of(llama.named_parameters()),
            (std::vector<std::string>{"q_proj.weight", "k_proj.weight", "v_proj.weight",
                                      "o_proj.weight"}));
  EXPECT_EQ(llama.parameter("k_proj.weight").shape(), (Shape{16, 32}));  // 2 kv heads x 8
  EXPECT_EQ(llama.parameter("o_proj.weight").shape(), (Shape{32, 32}));

  AttentionConfig cross;
  cross.dim = 16;
  cross.n_heads = 4;
  cross.kv_input_dim = 12;
  MultiHeadAttention ca(cross);
  EXPECT_EQ(keys_of(ca.named_parameters()).back(), "output.bias");
  EXPECT_EQ(ca.parameter("key.weight").shape(), (Shape{16, 12}));

  AttentionConfig bad = AttentionConfig::llama(32, 4, 3);
  EXPECT_THROW(MultiHeadAttention{bad}, ValueError);
  EXPECT_THROW(MultiHeadAttention{AttentionConfig::bert(30, 4)}, ValueError);
}

TEST(FeedForward, GeluAndSwigluNames) {
  FeedForward mlp(FeedForwardConfig::gelu_mlp(8, 32));
  EXPECT_EQ(keys_of(mlp.named_parameters()),
            (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  FeedForward glu(FeedForwardConfig::swiglu(8, 24));
  EXPECT_EQ(keys_of(glu.named_parameters()),
            (std::vector<std::string>{"gate_proj.weight", "up_proj.weight", "down_proj.weight"}));
  EXPECT_EQ(glu.parameter("down_proj.weight").shape(), (Shape{8, 24}));
}
