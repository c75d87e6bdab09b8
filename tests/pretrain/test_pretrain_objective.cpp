// Pretraining objectives: loss on a fixed masked batch equals transformers' (goldens from
// scripts/reference/gen_pretrain_goldens.py), evaluation metrics, dynamic padding and masking,
// the seeded pooler, and a short AdamW run that lowers the held-out MLM loss.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/models/bert.h"
#include "lmforge/optim/adamw.h"
#include "lmforge/train/pretrain.h"

using namespace lmf;
using namespace lmf::train;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& rel) {
  return std::string(LMF_FIXTURES_DIR) + "/" + rel;
}

const nlohmann::json& goldens() {
  static const nlohmann::json j = [] {
    std::ifstream in(fixture("pretrain/goldens.json"));
    return nlohmann::json::parse(in);
  }();
  return j;
}

SpecialTokens golden_special(const nlohmann::json& g, int64_t vocab) {
  SpecialTokens sp;
  sp.cls = g["special"]["cls"], sp.sep = g["special"]["sep"];
  sp.mask = g["special"]["mask"], sp.pad = g["special"]["pad"];
  sp.vocab_size = vocab;
  sp.special.assign(vocab, 0);
  for (int32_t id : {sp.cls, sp.sep, sp.mask, sp.pad}) sp.special[id] = 1;
  return sp;
}

Tensor tensor2d(const nlohmann::json& rows) {
  std::vector<int64_t> v;
  for (const auto& r : rows)
    for (int64_t x : r) v.push_back(x);
  const auto b = static_cast<int64_t>(rows.size());
  return Tensor::from_vector(v, {b, static_cast<int64_t>(v.size()) / b});
}

// The golden rows as unpadded, already-masked instances.
std::vector<PretrainInstance> golden_instances(const nlohmann::json& g) {
  std::vector<PretrainInstance> out;
  for (size_t r = 0; r < g["input_ids"].size(); ++r) {
    PretrainInstance in;
    for (size_t j = 0; j < g["input_ids"][r].size(); ++j) {
      if (g["attention_mask"][r][j] == 0) break;
      in.input_ids.push_back(g["input_ids"][r][j]);
      in.token_type_ids.push_back(g["token_type_ids"][r][j]);
      in.labels.push_back(g["labels"][r][j]);
      in.word_start.push_back(1);
    }
    if (g.contains("sentence_labels")) in.sentence_label = g["sentence_labels"][r];
    out.push_back(std::move(in));
  }
  return out;
}

std::unique_ptr<PretrainObjective> golden_objective(const std::string& name, bool with_eval,
                                                    int64_t eval_batch = 3, bool sparse = true) {
  const auto& g = goldens()[name];
  auto model = models::create_model(fixture("bert/" + name));
  const SpecialTokens sp = golden_special(g, model->config().vocab_size);
  PretrainObjective::Config c;
  c.eval_batch_size = eval_batch;
  c.sparse_mlm = sparse;
  auto inst = golden_instances(g);
  return std::make_unique<PretrainObjective>(std::move(model), sp, inst,
                                             with_eval ? inst : std::vector<PretrainInstance>{}, c);
}

}  // namespace

class PretrainGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(PretrainGolden, BatchLossMatchesTransformers) {
  const std::string name = GetParam();
  const auto& g = goldens()[name];
  for (bool sparse : {true, false}) {
    SCOPED_TRACE(sparse ? "MLM head on chosen positions" : "MLM head everywhere");
    auto obj = golden_objective(name, false, 3, sparse);
    obj->set_training(false);
    PretrainBatch b;
    b.input_ids = tensor2d(g["input_ids"]);
    b.attention_mask = tensor2d(g["attention_mask"]);
    b.token_type_ids = tensor2d(g["token_type_ids"]);
    b.labels = tensor2d(g["labels"]);
    if (g.contains("sentence_labels"))
      b.sentence_labels = Tensor::from_vector(g["sentence_labels"].get<std::vector<int64_t>>(),
                                              {static_cast<int64_t>(g["sentence_labels"].size())});
    const auto out = obj->batch_loss(b);
    EXPECT_NEAR(out.loss.item(), g["loss"].get<double>(), 1e-4);
    EXPECT_NEAR(out.parts.at("mlm_loss"), g["mlm_loss"].get<double>(), 1e-4);
    if (g.contains("sentence_loss"))
      EXPECT_NEAR(out.parts.at(std::string(obj->sentence_task()) + "_loss"),
                  g["sentence_loss"].get<double>(), 1e-4);

    // The same rows collated by the objective (dynamic padding) give the same loss.
    std::vector<const PretrainInstance*> ptrs;
    for (const auto& in : obj->train_instances()) ptrs.push_back(&in);
    const PretrainBatch c = collate(ptrs, obj->special_tokens().pad);
    EXPECT_EQ(c.input_ids.to_vector<int64_t>(), b.input_ids.to_vector<int64_t>());
    EXPECT_EQ(c.attention_mask.to_vector<int64_t>(), b.attention_mask.to_vector<int64_t>());
    EXPECT_NEAR(obj->batch_loss(c).loss.item(), g["loss"].get<double>(), 1e-4);
  }
}

TEST_P(PretrainGolden, SparseMlmHeadGivesTheSameGradients) {
  const std::string name = GetParam();
  auto sparse = golden_objective(name, false, 3, true);
  auto full = golden_objective(name, false, 3, false);
  const std::vector<int64_t> idx{0, 1, 2, 3};
  Generator r1(1), r2(1);
  for (auto* o : {sparse.get(), full.get()}) {
    o->set_training(false);
    o->loss(idx, o == sparse.get() ? r1 : r2).loss.backward();
  }
  const auto ps = sparse->parameters(), pf = full->parameters();
  ASSERT_EQ(ps.size(), pf.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    ASSERT_EQ(ps[i].first, pf[i].first);
    const Tensor gs = ps[i].second.grad(), gf = pf[i].second.grad();
    ASSERT_EQ(gs.defined(), gf.defined()) << ps[i].first;
    if (!gs.defined()) continue;
    const auto a = gs.to_vector<float>(), b = gf.to_vector<float>();
    // Floor 1e-3: the attention key bias has an exactly-zero gradient (softmax is shift
    // invariant), so both sides hold rounding noise (~1e-9) there.
    double diff = 0, norm = 1e-3;
    for (size_t j = 0; j < a.size(); ++j)
      diff = std::max<double>(diff, std::abs(a[j] - b[j])),
      norm = std::max<double>(norm, std::abs(b[j]));
    EXPECT_LE(diff / norm, 1e-5) << ps[i].first;
  }
}

TEST_P(PretrainGolden, EvaluateReportsTransformersMetrics) {
  const std::string name = GetParam();
  const auto& g = goldens()[name];
  auto obj = golden_objective(name, true, 3);  // two eval batches: token-weighted aggregation
  obj->set_training(true);
  const Metrics m = obj->evaluate();
  EXPECT_TRUE(obj->model().is_training());  // mode restored
  EXPECT_NEAR(m.at("eval_mlm_loss"), g["mlm_loss"].get<double>(), 1e-4);
  EXPECT_NEAR(m.at("eval_perplexity"), std::exp(g["mlm_loss"].get<double>()), 1e-3);
  EXPECT_NEAR(m.at("eval_masked_accuracy"), g["eval_masked_accuracy"].get<double>(), 1e-6);
  EXPECT_EQ(m.at("eval_masked_tokens"), g["masked_tokens"].get<double>());
  if (g.contains("sentence_loss")) {
    const std::string t = obj->sentence_task();
    EXPECT_NEAR(m.at("eval_" + t + "_loss"), g["sentence_loss"].get<double>(), 1e-4);
    EXPECT_NEAR(m.at("eval_" + t + "_accuracy"), g["sentence_accuracy"].get<double>(), 1e-6);
    EXPECT_NEAR(m.at("eval_loss"), g["loss"].get<double>(), 1e-4);
  } else {
    EXPECT_NEAR(m.at("eval_loss"), g["mlm_loss"].get<double>(), 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, PretrainGolden,
                         ::testing::Values("bert_pretraining", "albert_pretraining",
                                           "roberta_mlm"));

TEST(PretrainObjectiveTest, SentenceTaskFollowsTheHead) {
  EXPECT_STREQ(golden_objective("bert_pretraining", false)->sentence_task(), "nsp");
  EXPECT_STREQ(golden_objective("albert_pretraining", false)->sentence_task(), "sop");
  EXPECT_STREQ(golden_objective("roberta_mlm", false)->sentence_task(), "");
  // Instances without sentence labels cannot feed an NSP head.
  auto model = models::create_model(fixture("bert/bert_pretraining"));
  auto inst = golden_instances(goldens()["roberta_mlm"]);
  EXPECT_THROW(PretrainObjective(std::move(model),
                                 golden_special(goldens()["bert_pretraining"], 64), inst, {}, {}),
               ValueError);
}

TEST(PretrainObjectiveTest, DynamicPaddingAndMaskingPerServe) {
  const auto& g = goldens()["bert_pretraining"];
  auto inst = golden_instances(g);
  for (auto& in : inst) in.labels.clear();  // unmasked: the objective masks
  auto model = models::create_model(fixture("bert/bert_pretraining"));
  PretrainObjective::Config c;
  c.masking.mlm_probability = 0.5;
  PretrainObjective dyn(std::move(model), golden_special(g, 64), inst, {}, c);
  const std::vector<int64_t> idx{1, 3};  // lengths 7 and 5 -> padded to 7
  Generator r1(4), r2(4);
  const PretrainBatch a = dyn.make_batch(idx, r1), b = dyn.make_batch(idx, r1);
  const PretrainBatch a2 = dyn.make_batch(idx, r2);
  EXPECT_EQ(a.input_ids.shape(), (Shape{2, 7}));
  EXPECT_EQ(sum(a.attention_mask.to(DType::f32)).item(), 12);
  EXPECT_EQ(a.tokens, 12);
  EXPECT_EQ(a.labels.to_vector<int64_t>(), a2.labels.to_vector<int64_t>());  // same seed
  EXPECT_NE(a.labels.to_vector<int64_t>(), b.labels.to_vector<int64_t>());   // re-masked
  EXPECT_EQ(a.labels.at({1, 5}), -100);  // padding never a label
  EXPECT_EQ(a.input_ids.at({1, 6}), 0);

  // Static masking: masked once when built, identical on every serve, different per copy.
  c.dynamic_masking = false;
  std::vector<PretrainInstance> dup{inst[0], inst[0], inst[0], inst[0]};
  PretrainObjective st(models::create_model(fixture("bert/bert_pretraining")),
                       golden_special(g, 64), dup, {}, c);
  const PretrainBatch s1 = st.make_batch(idx, r1), s2 = st.make_batch(idx, r2);
  EXPECT_EQ(s1.labels.to_vector<int64_t>(), s2.labels.to_vector<int64_t>());
  EXPECT_NE(st.train_instances()[0].labels, st.train_instances()[1].labels);
}

TEST(PretrainObjectiveTest, MissingPoolerIsSeededAndTrained) {
  // bert_mlm has no pooler: BertForPreTraining from it gets a pooler from the seed, the same
  // on every load, and NSP gradients reach it.
  models::LoadOptions lo;
  lo.architecture = "BertForPreTraining";
  lo.pooler_init_seed = 42;
  models::LoadReport rep;
  auto m1 = models::create_model(fixture("bert/bert_mlm"), lo, &rep);
  auto m2 = models::create_model(fixture("bert/bert_mlm"), lo);
  EXPECT_TRUE(rep.pooler_missing);
  EXPECT_TRUE(rep.pooler_initialized);
  const Tensor w1 = m1->parameter("bert.pooler.dense.weight");
  EXPECT_EQ(w1.to_vector<float>(), m2->parameter("bert.pooler.dense.weight").to_vector<float>());
  const auto& g = goldens()["bert_pretraining"];
  PretrainObjective obj(std::move(m1), golden_special(g, 64), golden_instances(g), {}, {});
  Generator rng(1);
  const std::vector<int64_t> idx{0, 1, 2, 3};
  obj.loss(idx, rng).loss.backward();
  bool found = false;
  for (const auto& [name, t] : obj.parameters()) {
    if (name != "bert.pooler.dense.weight") continue;
    found = true;
    ASSERT_TRUE(t.grad().defined());
    EXPECT_GT(sum(mul(t.grad(), t.grad())).item(), 0.0);
  }
  EXPECT_TRUE(found);
}

namespace {
// A from-scratch tiny BERT with the wp_trained_a tokenizer, in a temporary folder.
std::string scratch_dir(const std::string& family) {
  const fs::path dir = fs::temp_directory_path() / ("lmf_pretrain_scratch_" + family);
  fs::create_directories(dir);
  fs::copy_file(fixture(family == "roberta" ? "tokenizers/bpe_tokenizer.json"
                                            : "tokenizers/wp_trained_a.json"),
                dir / "tokenizer.json", fs::copy_options::overwrite_existing);
  nlohmann::json c = {{"model_type", family},
                      {"vocab_size", 3072},
                      {"hidden_size", 64},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", 4},
                      {"intermediate_size", 128},
                      {"max_position_embeddings", 64},
                      {"hidden_dropout_prob", 0.0},
                      {"attention_probs_dropout_prob", 0.0}};
  if (family == "roberta") c.update({{"pad_token_id", 1}, {"type_vocab_size", 1}});
  std::ofstream(dir / "config.json") << c.dump(1);
  return dir.string();
}

// `steps` AdamW steps by hand; returns eval_mlm_loss before and after.
std::pair<double, double> short_run(PretrainObjective& obj, int steps, int batch) {
  const double before = obj.evaluate().at("eval_mlm_loss");
  std::vector<Tensor> params;
  for (auto& [n, t] : obj.parameters()) params.push_back(t);
  optim::AdamWOptions ao;
  ao.lr = 2e-3;
  ao.weight_decay = 0.0;
  optim::AdamW opt(params, ao);
  obj.set_training(true);
  Generator rng(3);
  for (int s = 0; s < steps; ++s) {
    std::vector<int64_t> idx;
    for (int k = 0; k < batch; ++k)
      idx.push_back(static_cast<int64_t>(rng.next_u64() % obj.num_examples()));
    auto l = obj.loss(idx, rng);
    EXPECT_TRUE(std::isfinite(l.loss.item()));
    l.loss.backward();
    opt.step();
    opt.zero_grad();
  }
  const double after = obj.evaluate().at("eval_mlm_loss");
  ::testing::Test::RecordProperty("eval_mlm_loss_before", std::to_string(before));
  ::testing::Test::RecordProperty("eval_mlm_loss_after", std::to_string(after));
  return {before, after};
}
}  // namespace

TEST(PretrainSmoke, BertFromScratchLowersHeldOutMlmLoss) {
  PretrainOptions o;
  o.config_path = scratch_dir("bert") + "/config.json";
  o.recipe = "bert";
  o.max_seq_length = 48;
  o.train_files = {fixture("pretrain/corpus.txt")};
  o.eval_split = 0.15;
  auto obj = make_pretrain_objective(o);
  EXPECT_EQ(obj->model().architecture(), "BertForPreTraining");
  EXPECT_GT(obj->num_examples(), 50);
  EXPECT_GT(obj->eval_instances().size(), 5u);
  const auto [before, after] = short_run(*obj, 30, 16);
  EXPECT_GT(before, 6.0);  // ~ln(3072) at random init
  EXPECT_LT(after, before - 1.0) << before << " -> " << after;
  const Metrics m = obj->evaluate();
  EXPECT_TRUE(m.count("eval_nsp_accuracy"));
  EXPECT_NEAR(m.at("eval_loss"), m.at("eval_mlm_loss") + m.at("eval_nsp_loss"), 1e-9);
}

TEST(PretrainSmoke, RobertaRecipeMlmOnlyWithByteLevelTokenizer) {
  PretrainOptions o;
  o.config_path = scratch_dir("roberta") + "/config.json";
  o.recipe = "roberta";
  o.max_seq_length = 48;
  o.masking = "static";
  o.dup_factor = 2;
  o.whole_word_mask = true;
  o.train_files = {fixture("pretrain/corpus.txt")};
  o.eval_split = 0.15;
  auto obj = make_pretrain_objective(o);
  EXPECT_EQ(obj->model().architecture(), "RobertaForMaskedLM");
  EXPECT_FALSE(obj->has_sentence_task());
  const auto [before, after] = short_run(*obj, 20, 16);
  EXPECT_LT(after, before - 0.5) << before << " -> " << after;
}

TEST(PretrainFactory, EvalFilesAndJsonlInput) {
  const fs::path dir = fs::temp_directory_path() / "lmf_pretrain_factory";
  fs::create_directories(dir);
  std::ofstream(dir / "train.jsonl") << "{\"body\": \"the film is good .\\nthe plot is thin .\"}\n"
                                        "{\"body\": \"a fine cast .\\nbad jokes though .\"}\n";
  std::ofstream(dir / "eval.txt") << "one sentence here .\nand another one .\n";
  PretrainOptions o;
  o.config_path = scratch_dir("bert") + "/config.json";
  o.train_files = {(dir / "train.jsonl").string()};
  o.text_field = "body";
  o.eval_files = {(dir / "eval.txt").string()};
  o.short_seq_prob = 0;
  o.max_seq_length = 32;
  auto obj = make_pretrain_objective(o);
  EXPECT_GE(obj->num_examples(), 2);
  ASSERT_EQ(obj->eval_instances().size(), 1u);  // one document, one [CLS] A [SEP] B [SEP]
  const Metrics m = obj->evaluate();
  EXPECT_GT(m.at("eval_masked_tokens"), 0);
  EXPECT_TRUE(m.count("eval_nsp_accuracy"));
}

TEST(PretrainFactory, RejectsInconsistentOptions) {
  PretrainOptions o;
  o.train_files = {fixture("pretrain/corpus.txt")};
  EXPECT_THROW(make_pretrain_objective(o), ValueError);  // neither model nor config
  o.config_path = scratch_dir("bert") + "/config.json";
  o.recipe = "albert";
  EXPECT_THROW(make_pretrain_objective(o), ValueError);  // ALBERT recipe on a BERT config
  o.recipe = "bert";
  o.masking = "sometimes";
  EXPECT_THROW(make_pretrain_objective(o), ValueError);
  o.masking = "static";
  o.max_seq_length = 65;
  EXPECT_THROW(make_pretrain_objective(o), ValueError);  // longer than the positions
  o.max_seq_length = 32;
  o.train_files = {"/nonexistent.txt"};
  EXPECT_THROW(make_pretrain_objective(o), IoError);
}

TEST(PretrainSave, KeepsTheTrainedPoolerAndReloadsExactly) {
  models::LoadOptions lo;
  lo.architecture = "BertForPreTraining";
  lo.pooler_init_seed = 7;
  const auto& g = goldens()["bert_pretraining"];
  const fs::path tokdir = fs::temp_directory_path() / "lmf_pretrain_save_tok";
  fs::create_directories(tokdir);
  fs::copy_file(fixture("tokenizers/wp_trained_a.json"), tokdir / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  PretrainObjective::Config c;
  c.tokenizer_dir = tokdir.string();
  PretrainObjective obj(models::create_model(fixture("bert/bert_mlm"), lo), golden_special(g, 64),
                        golden_instances(g), {}, c);
  // One SGD-like update so the saved weights differ from both the checkpoint and the seed.
  std::vector<Tensor> params;
  for (auto& [n, t] : obj.parameters()) params.push_back(t);
  optim::AdamW opt(params, optim::AdamWOptions{});
  Generator rng(2);
  const std::vector<int64_t> idx{0, 1, 2, 3};
  obj.set_training(true);
  obj.loss(idx, rng).loss.backward();
  opt.step();

  const fs::path dir = fs::temp_directory_path() / "lmf_pretrain_save_out";
  fs::remove_all(dir);
  obj.save_pretrained(dir.string());
  EXPECT_TRUE(fs::exists(dir / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "tokenizer.json"));
  models::LoadReport rep;
  auto back = models::create_model(dir.string(), {}, &rep);
  EXPECT_EQ(back->architecture(), "BertForPreTraining");
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  EXPECT_FALSE(rep.pooler_missing);  // the seed-002 pitfall: the trained pooler is kept
  for (const auto& [name, t] : obj.parameters())
    EXPECT_EQ(back->parameter(name).to_vector<float>(), t.to_vector<float>()) << name;

  // load_pretrained restores into the same parameter tensors (the optimizer keeps its handles).
  PretrainObjective fresh(models::create_model(fixture("bert/bert_mlm"), lo), golden_special(g, 64),
                          golden_instances(g), {}, c);
  const auto before = fresh.parameters();
  fresh.load_pretrained(dir.string());
  const auto after = fresh.parameters();
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(before[i].second.same(after[i].second)) << before[i].first;
    EXPECT_EQ(after[i].second.to_vector<float>(), obj.parameters()[i].second.to_vector<float>())
        << after[i].first;
  }
}
