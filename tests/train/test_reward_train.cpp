// Reward modelling against TRL 1.16's RewardTrainer (scripts/reference/gen_reward_goldens.py,
// tests/fixtures/reward/): preference records with malformed ones skipped, RewardTrainer's token
// ids, and one Trainer step of tiny LLaMA and GPT-2 sequence classifiers on the Bradley-Terry loss
// (loss, accuracy and margin before it; gradient norm and every parameter after it).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "../train_data_util.h"
#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/train/reward.h"

namespace {

using namespace lmf;
using namespace lmf::train;
namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kFix = std::string(LMF_FIXTURES_DIR);
const std::string kDir = kFix + "/reward";

fs::path temp_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("lmf_reward_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The tiny models' folder with dropout 0 and the goldens' tokenizer_config (eos </s>, pad <pad>).
std::string model_copy(const std::string& name) {
  const fs::path d = temp_dir(name);
  lmf::test::copy_decoder_without_dropout(kFix + "/decoder/" + name, d);
  std::ofstream(d / "tokenizer_config.json")
      << R"({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"})";
  return d.string();
}

TEST(RewardData, MalformedPairsAreSkippedWithTheirPlace) {
  const PreferenceData d = read_preference_records(kDir + "/pairs.jsonl");
  ASSERT_EQ(d.records.size(), 4u);
  EXPECT_EQ(d.records[3].prompt, "\n\nHuman: What is 3 times 4?\n\nAssistant:");
  ASSERT_EQ(d.skipped.size(), 3u);
  EXPECT_NE(d.skipped[0].find("pairs.jsonl:4: chosen equals rejected"), std::string::npos);
  EXPECT_NE(d.skipped[1].find("pairs.jsonl:5: no \"rejected\" field"), std::string::npos);
  EXPECT_NE(d.skipped[2].find("pairs.jsonl:8: an empty"), std::string::npos);
  const std::string strict =
      lmf::test::error_of([] { read_preference_records(kDir + "/pairs.jsonl", true); });
  EXPECT_NE(strict.find("pairs.jsonl:4"), std::string::npos) << strict;
  const std::string gz = lmf::test::error_of([] { read_preference_records("x.jsonl.gz"); });
  EXPECT_NE(gz.find("gunzip"), std::string::npos) << gz;
}

class RewardStep : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Models, RewardStep, ::testing::Values("llama", "gpt2"));

TEST_P(RewardStep, OneTrainerStepMatchesTrl) {
  const std::string name = GetParam();
  const io::StateDict g = io::load_safetensors(kDir + "/step_" + name + ".safetensors");
  RewardOptions o;
  o.model_dir = model_copy(name);
  o.train_file = kDir + "/pairs.jsonl";
  RewardReport rep;
  auto obj = make_reward_objective(o, &rep);
  EXPECT_TRUE(rep.new_head);
  EXPECT_EQ(rep.skipped.size(), 3u);
  // RewardTrainer's token ids (EOS appended, special tokens).
  std::ifstream f(kDir + "/ids.json");
  const json ids = json::parse(f);
  ASSERT_EQ(obj->train_examples().size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(obj->train_examples()[i].chosen, ids[i].at("chosen_ids").get<std::vector<int32_t>>());
    EXPECT_EQ(obj->train_examples()[i].rejected,
              ids[i].at("rejected_ids").get<std::vector<int32_t>>());
  }
  obj->model().parameter("score.weight").copy_(g.at("score.weight"));
  {
    NoGradGuard ng;
    obj->set_training(false);
    std::vector<int64_t> all(4);
    std::iota(all.begin(), all.end(), 0);
    const RewardObjective::Scores s = obj->score(obj->train_examples(), all);
    const double ref = g.at("loss").to_vector<float>()[0];
    EXPECT_NEAR(s.loss.item(), ref, 1e-4 * ref);
    double acc = 0, margin = 0;
    for (size_t i = 0; i < 4; ++i) {
      acc += s.chosen[i] > s.rejected[i];
      margin += s.chosen[i] - s.rejected[i];
    }
    EXPECT_EQ(acc / 4, g.at("accuracy").to_vector<float>()[0]);
    EXPECT_NEAR(margin / 4, g.at("margin").to_vector<float>()[0], 1e-4);
  }
  const fs::path out = temp_dir("out_" + name);
  const TrainerOptions t = lmf::test::one_step_options(out, 4);
  double logged_grad_norm = -1, logged_loss = -1;
  lmf::train::train(*obj, t, [&](const Metrics& m) {
    if (m.count("grad_norm")) logged_grad_norm = m.at("grad_norm");
    if (m.count("loss")) logged_loss = m.at("loss");
  });
  const double ref = g.at("loss").to_vector<float>()[0];
  EXPECT_NEAR(logged_loss, ref, 1e-4 * ref);
  const double ref_norm = g.at("grad_norm").to_vector<float>()[0];
  EXPECT_NEAR(logged_grad_norm, ref_norm, 1e-4 * ref_norm);
  const int checked = lmf::test::expect_saved_params_match_golden(out / "model.safetensors", g);
  EXPECT_GT(checked, 15);
  std::ifstream cf(out / "config.json");
  const json cfg = json::parse(cf);
  EXPECT_EQ(cfg.at("architectures")[0],
            name == "llama" ? "LlamaForSequenceClassification" : "GPT2ForSequenceClassification");
  EXPECT_EQ(cfg.at("id2label").size(), 1u);
  fs::remove_all(out);
}

}  // namespace
