// Pretraining through train(): the BERT recipe (MLM+NSP, dynamic masking) on a tiny corpus lowers
// the held-out perplexity, writes an HF folder with the tokenizer, and resumes bit-exactly (the
// dynamic masks come from the trainer's saved rng).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/train/pretrain.h"
#include "lmforge/train/trainer.h"

using namespace lmf;
using namespace lmf::train;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& rel) {
  return std::string(LMF_FIXTURES_DIR) + "/" + rel;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("lmf_pretrain_train_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::unique_ptr<PretrainObjective> tiny_bert() {
  static const fs::path dir = [] {
    const fs::path d = fresh_dir("model");
    fs::copy_file(fixture("tokenizers/wp_trained_a.json"), d / "tokenizer.json");
    nlohmann::json c = {{"model_type", "bert"},
                        {"vocab_size", 2048},
                        {"hidden_size", 32},
                        {"num_hidden_layers", 2},
                        {"num_attention_heads", 4},
                        {"intermediate_size", 64},
                        {"max_position_embeddings", 64},
                        {"hidden_dropout_prob", 0.1},
                        {"attention_probs_dropout_prob", 0.1}};
    std::ofstream(d / "config.json") << c.dump(1);
    return d;
  }();
  PretrainOptions o;
  o.config_path = (dir / "config.json").string();
  o.recipe = "bert";
  o.max_seq_length = 32;
  o.train_files = {fixture("pretrain/corpus.txt")};
  o.eval_split = 0.1;
  o.seed = 5;
  return make_pretrain_objective(o);
}

TrainerOptions options(const fs::path& out) {
  TrainerOptions t;
  t.output_dir = out.string();
  t.per_device_train_batch_size = 16;
  t.learning_rate = 2e-3;
  t.lr_scheduler_type = "constant_with_warmup";
  t.warmup_steps = 2;
  t.logging_steps = 5;
  t.save_steps = 6;
  t.progress = false;
  t.seed = 9;
  return t;
}

}  // namespace

TEST(PretrainTrain, LowersPerplexityAndSavesAnHfFolder) {
  const fs::path out = fresh_dir("run");
  auto obj = tiny_bert();
  const Metrics before = obj->evaluate();
  auto t = options(out);
  t.max_steps = 30;
  const TrainResult r = train::train(*obj, t);
  EXPECT_EQ(r.global_step, 30);
  RecordProperty("perplexity_before", std::to_string(before.at("eval_perplexity")));
  if (r.final_eval.count("eval_perplexity"))
    RecordProperty("perplexity_after", std::to_string(r.final_eval.at("eval_perplexity")));
  ASSERT_TRUE(r.final_eval.count("eval_perplexity"));
  EXPECT_LT(r.final_eval.at("eval_perplexity"), before.at("eval_perplexity") / 4)
      << before.at("eval_perplexity") << " -> " << r.final_eval.at("eval_perplexity");
  EXPECT_TRUE(r.final_eval.count("eval_nsp_accuracy"));
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  fs::remove_all(out);
}

TEST(PretrainTrain, ResumeEqualsAStraightRun) {
  const fs::path d1 = fresh_dir("resume1"), d2 = fresh_dir("resume2");
  auto t = options(d1);
  t.max_steps = 6;
  auto a = tiny_bert();
  train::train(*a, t);
  t.max_steps = 12;
  t.resume = true;
  auto a2 = tiny_bert();
  const TrainResult ra = train::train(*a2, t);

  auto s = options(d2);
  s.max_steps = 12;
  auto b = tiny_bert();
  const TrainResult rb = train::train(*b, s);
  EXPECT_EQ(ra.global_step, 12);
  EXPECT_EQ(ra.train_loss, rb.train_loss);
  const auto pa = a2->parameters(), pb = b->parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i)
    EXPECT_EQ(pa[i].second.to_vector<float>(), pb[i].second.to_vector<float>()) << pa[i].first;
  fs::remove_all(d1);
  fs::remove_all(d2);
}
