// LoRA against PEFT 0.21 (scripts/reference/gen_lora_goldens.py, tests/fixtures/lora/): adapters
// on LLaMA's q_proj/v_proj and GPT-2's Conv1D c_attn, one SFT Trainer step from the same starting
// adapter (loss, adapter gradients and values after AdamW; the base untouched), the adapter folder
// in PEFT's layout, and merging it equal to running with it attached.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../train_data_util.h"
#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/models/lora.h"
#include "lmforge/models/registry.h"
#include "lmforge/train/sft.h"

namespace {

using namespace lmf;
using namespace lmf::train;
namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kFix = std::string(LMF_FIXTURES_DIR);

json read_json(const fs::path& path) {
  std::ifstream f(path);
  return json::parse(f);
}

fs::path temp_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("lmf_lora_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The SFT goldens' tokenizer folder (the tiny models share one byte-level BPE) with the chat
// template.
std::string chat_tokenizer() {
  const fs::path d = temp_dir("tok");
  fs::copy_file(kFix + "/decoder/llama/tokenizer.json", d / "tokenizer.json");
  fs::copy_file(kFix + "/sft/tokenizer_config.json", d / "tokenizer_config.json");
  return d.string();
}

// A copy of the decoder fixture with dropout 0 (as the goldens' models).
std::string model_copy(const std::string& name) {
  const fs::path d = temp_dir("model_" + name);
  lmf::test::copy_decoder_without_dropout(kFix + "/decoder/" + name, d);
  return d.string();
}

class LoraStep : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Models, LoraStep, ::testing::Values("llama", "gpt2"));

TEST_P(LoraStep, OneSftStepMatchesPeft) {
  const std::string name = GetParam();
  const std::string init = kFix + "/lora/" + name + "_init";
  const io::StateDict g = io::load_safetensors(kFix + "/lora/step_" + name + ".safetensors");
  SftOptions o;
  o.model_dir = model_copy(name);
  o.tokenizer_dir = chat_tokenizer();
  o.train_file = kFix + "/sft/alpaca.json";
  o.lora = models::read_lora_config(init);
  SftReport rep;
  auto obj = make_sft_objective(o, &rep);
  const size_t n_targets = name == "llama" ? 4 : 2;  // 2 layers x targets
  EXPECT_EQ(rep.lora_modules.size(), n_targets);
  EXPECT_EQ(obj->parameters().size(), 2 * n_targets);  // only lora_A / lora_B train
  EXPECT_LT(rep.trainable_parameters * 20, rep.total_parameters);
  models::load_lora_weights(obj->model(), init);

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

  // The saved folder is a PEFT adapter: PEFT's key names, every adapter updated as PEFT did.
  EXPECT_FALSE(fs::exists(out / "model.safetensors"));
  const json cfg = read_json(out / "adapter_config.json");
  EXPECT_EQ(cfg.at("peft_type"), "LORA");
  EXPECT_EQ(cfg.at("r"), 4);
  EXPECT_EQ(cfg.at("lora_alpha"), 8.0);
  EXPECT_EQ(cfg.at("fan_in_fan_out"), name == "gpt2");
  EXPECT_EQ(cfg.at("task_type"), "CAUSAL_LM");
  const io::StateDict saved = io::load_safetensors((out / "adapter_model.safetensors").string());
  EXPECT_EQ(saved.size(), 2 * n_targets);
  for (const auto& [key, v] : saved) {
    ASSERT_EQ(key.rfind("base_model.model.", 0), 0u) << key;
    const std::string ours = key.substr(std::string("base_model.model.").size());
    ASSERT_TRUE(g.count("param." + ours)) << key;
    EXPECT_LE(lmf::test::rel_l2(v, g.at("param." + ours)), 1e-3) << key;
  }
  // The base weights did not move.
  const io::StateDict base = io::load_safetensors(o.model_dir + "/model.safetensors");
  for (const auto& [key, t_base] : obj->model().state_dict()) {
    if (key.find("lora_") != std::string::npos || !base.count(key)) continue;
    EXPECT_EQ(t_base.to_vector<float>(), base.at(key).to_vector<float>()) << key;
  }

  // Merging the saved adapter into the base model gives the adapted model's logits.
  models::DecoderInputs in;
  in.input_ids = Tensor::from_vector(std::vector<int64_t>{5, 17, 250, 31, 9, 1200, 77, 4}, {1, 8});
  NoGradGuard ng;
  obj->model().eval();
  const Tensor adapted = obj->model().forward(in).logits;
  auto merged = models::load_pretrained_as<models::DecoderModel>(o.model_dir, "a decoder");
  EXPECT_EQ(models::merge_lora(*merged, out.string()), static_cast<int64_t>(n_targets));
  EXPECT_LE(lmf::test::rel_l2(merged->forward(in).logits, adapted), 1e-5);
  fs::remove_all(out);
}

TEST(Lora, BadAdaptersAndTargetsAreClearErrors) {
  auto m = models::load_pretrained_as<models::DecoderModel>(kFix + "/decoder/llama", "a decoder");
  models::LoraConfig c;
  c.target_modules = {"query"};
  const std::string none = lmf::test::error_of([&] { models::add_lora(*m, c); });
  EXPECT_NE(none.find("q_proj"), std::string::npos) << none;  // lists the model's layer names
  EXPECT_NE(lmf::test::error_of([&] {
              models::read_lora_config(kFix + "/decoder/llama");
            }).find("adapter_config.json"),
            std::string::npos);
  const fs::path d = temp_dir("dora");
  json cfg = read_json(kFix + "/lora/llama_init/adapter_config.json");
  cfg["use_dora"] = true;
  std::ofstream(d / "adapter_config.json") << cfg.dump();
  EXPECT_NE(lmf::test::error_of([&] { models::read_lora_config(d.string()); }).find("DoRA"),
            std::string::npos);
  // GPT-2's adapter does not fit LLaMA.
  EXPECT_THROW(models::merge_lora(*m, kFix + "/lora/gpt2_init"), Error);
  models::LoraConfig def;
  EXPECT_EQ(models::add_lora(*m, def).size(), 4u);  // default targets q_proj, v_proj
  EXPECT_EQ(def.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
}

}  // namespace
