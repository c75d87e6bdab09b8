// DPO against TRL 1.16's DPOTrainer (scripts/reference/gen_dpo_goldens.py, tests/fixtures/dpo/):
// extract_prompt, DPOTrainer's prompt / answer token ids, the reference's sequence
// log-probabilities and one Trainer step of a tiny LLaMA on the sigmoid loss (log 2 at the start;
// gradient norm and every parameter after the step).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../train_data_util.h"
#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/train/dpo.h"

namespace {

using namespace lmf;
using namespace lmf::train;
namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kFix = std::string(LMF_FIXTURES_DIR);
const std::string kDir = kFix + "/dpo";

std::string tokenizer_dir() {
  return lmf::test::tiny_decoder_tokenizer(kFix, "dpo");
}

TEST(DpoData, ExtractPromptIsTrls) {
  PreferenceRecord r;
  r.chosen = "\n\nHuman: hi\n\nAssistant: Hello there.";
  r.rejected = "\n\nHuman: hi\n\nAssistant: Go away.";
  PreferenceRecord e = extract_prompt(r);
  EXPECT_EQ(e.prompt, "\n\nHuman: hi\n\nAssistant:");  // the space goes back to the answers
  EXPECT_EQ(e.chosen, " Hello there.");
  EXPECT_EQ(e.rejected, " Go away.");
  r.chosen = "caf\xC3\xA9 ok";  // café vs cafè: differ in the second byte of a character
  r.rejected = "caf\xC3\xA8 no";
  e = extract_prompt(r);
  EXPECT_EQ(e.prompt, "caf");
  EXPECT_EQ(e.chosen, "\xC3\xA9 ok");
  r.prompt = "given";
  r.explicit_prompt = true;
  EXPECT_EQ(extract_prompt(r).prompt, "given");  // an explicit prompt stays
}

TEST(DpoTrain, OneTrainerStepMatchesTrl) {
  const io::StateDict g = io::load_safetensors(kDir + "/step_llama.safetensors");
  DpoOptions o;
  o.model_dir = kFix + "/decoder/llama";
  o.tokenizer_dir = tokenizer_dir();
  o.train_file = kDir + "/pairs.jsonl";
  DpoReport rep;
  auto obj = make_dpo_objective(o, &rep);
  std::ifstream f(kDir + "/ids.json");
  const json ids = json::parse(f);
  ASSERT_EQ(obj->train_examples().size(), ids.size());
  const auto ref = g.at("ref_logps").to_vector<float>();
  const size_t n = ids.size();
  for (size_t i = 0; i < n; ++i) {
    const DpoExample& e = obj->train_examples()[i];
    EXPECT_EQ(e.prompt, ids[i].at("prompt_ids").get<std::vector<int32_t>>()) << i;
    EXPECT_EQ(e.chosen, ids[i].at("chosen_ids").get<std::vector<int32_t>>()) << i;
    EXPECT_EQ(e.rejected, ids[i].at("rejected_ids").get<std::vector<int32_t>>()) << i;
    EXPECT_NEAR(e.ref_chosen, ref[i], 1e-4 * std::abs(ref[i])) << i;
    EXPECT_NEAR(e.ref_rejected, ref[n + i], 1e-4 * std::abs(ref[n + i])) << i;
  }
  const fs::path out = fs::temp_directory_path() / ("lmf_dpo_out_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const TrainerOptions t = lmf::test::one_step_options(out, 4);
  double logged_grad_norm = -1, logged_loss = -1, logged_acc = -1;
  lmf::train::train(*obj, t, [&](const Metrics& m) {
    if (m.count("grad_norm")) logged_grad_norm = m.at("grad_norm");
    if (m.count("loss")) logged_loss = m.at("loss");
    if (m.count("rewards_accuracy")) logged_acc = m.at("rewards_accuracy");
  });
  EXPECT_NEAR(logged_loss, std::log(2.0), 1e-5);  // policy = reference at the start
  EXPECT_NEAR(logged_loss, g.at("loss").to_vector<float>()[0], 1e-5);
  EXPECT_EQ(logged_acc, g.at("rewards_accuracy").to_vector<float>()[0]);
  const double ref_norm = g.at("grad_norm").to_vector<float>()[0];
  EXPECT_NEAR(logged_grad_norm, ref_norm, 1e-4 * ref_norm);
  const int checked = lmf::test::expect_saved_params_match_golden(out / "model.safetensors", g);
  EXPECT_EQ(checked, 21);
  fs::remove_all(out);
}

// The same step on the tiny GPT-2 (tied LM head, Conv1D layers).
TEST(DpoTrain, OneTrainerStepMatchesTrlGpt2) {
  const io::StateDict g = io::load_safetensors(kDir + "/step_gpt2.safetensors");
  const fs::path model = fs::temp_directory_path() / ("lmf_dpo_gpt2_" + std::to_string(::getpid()));
  lmf::test::copy_decoder_without_dropout(kFix + "/decoder/gpt2", model);
  DpoOptions o;
  o.model_dir = model.string();
  o.tokenizer_dir = tokenizer_dir();
  o.train_file = kDir + "/pairs.jsonl";
  auto obj = make_dpo_objective(o);
  const auto ref = g.at("ref_logps").to_vector<float>();
  const size_t n = obj->train_examples().size();
  ASSERT_EQ(ref.size(), 2 * n);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_NEAR(obj->train_examples()[i].ref_chosen, ref[i], 1e-4 * std::abs(ref[i])) << i;
    EXPECT_NEAR(obj->train_examples()[i].ref_rejected, ref[n + i], 1e-4 * std::abs(ref[n + i]));
  }
  const fs::path out = model.string() + "_out";
  fs::remove_all(out);
  double logged_grad_norm = -1, logged_loss = -1;
  lmf::train::train(*obj, lmf::test::one_step_options(out, 4), [&](const Metrics& m) {
    if (m.count("grad_norm")) logged_grad_norm = m.at("grad_norm");
    if (m.count("loss")) logged_loss = m.at("loss");
  });
  EXPECT_NEAR(logged_loss, g.at("loss").to_vector<float>()[0], 1e-5);
  const double ref_norm = g.at("grad_norm").to_vector<float>()[0];
  EXPECT_NEAR(logged_grad_norm, ref_norm, 1e-4 * ref_norm);
  const int checked = lmf::test::expect_saved_params_match_golden(out / "model.safetensors", g);
  EXPECT_EQ(checked, 28);
  fs::remove_all(out);
  fs::remove_all(model);
}

TEST(DpoTrain, LoraStartsAtTheReferenceAndSavesAnAdapter) {
  DpoOptions o;
  o.model_dir = kFix + "/decoder/llama";
  o.tokenizer_dir = tokenizer_dir();
  o.train_file = kDir + "/pairs.jsonl";
  o.lora = models::LoraConfig{};
  o.lora->r = 2;
  auto obj = make_dpo_objective(o);
  EXPECT_EQ(obj->parameters().size(), 8u);  // lora_A/B of q_proj, v_proj in 2 layers
  std::vector<int64_t> all{0, 1, 2, 3};
  const DpoObjective::Result r = obj->score(obj->train_examples(), all);
  EXPECT_NEAR(r.loss.item(), std::log(2.0), 1e-5);
  const fs::path out = fs::temp_directory_path() / ("lmf_dpo_lora_" + std::to_string(::getpid()));
  obj->save_pretrained(out.string());
  EXPECT_TRUE(fs::exists(out / "adapter_model.safetensors"));
  EXPECT_FALSE(fs::exists(out / "model.safetensors"));
  fs::remove_all(out);
}

}  // namespace
