// The real SmolLM2-135M-Instruct (Q4_1 GGUF, installed by scripts/setup.sh) against transformers
// loading the same file with gguf_file= in f32 (tests/fixtures/smollm2/goldens.json, made by
// scripts/reference/gen_smollm2_goldens.py): prompt ids, the rendered chat prompt, logits within
// 1e-3 and greedy continuations token for token. Skipped when the model is not installed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/core/autograd.h"
#include "lmforge/tasks/causal_lm.h"

namespace lmf::tasks {
namespace {

namespace fs = std::filesystem;

std::string model_path() {
  const fs::path fixtures(LMF_FIXTURES_DIR);
  return (fixtures.parent_path().parent_path() / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
      .string();
}

class SmolLM2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(model_path())) return;
    lm_ = new CausalLM(load_causal_lm(model_path()));
    golden_ = new nlohmann::json(nlohmann::json::parse(
        std::ifstream(std::string(LMF_FIXTURES_DIR) + "/smollm2/goldens.json")));
  }
  static void TearDownTestSuite() {
    delete lm_;
    delete golden_;
    lm_ = nullptr;
    golden_ = nullptr;
  }
  void SetUp() override {
    if (lm_ == nullptr)
      GTEST_SKIP() << "the real SmolLM2 is not installed at " << model_path()
                   << " (bash scripts/setup.sh installs it)";
  }
  static std::vector<int64_t> prompt_ids(const nlohmann::json& p) {
    if (p["chat"].get<bool>()) {
      nlohmann::ordered_json messages = nlohmann::ordered_json::parse(p["messages"].dump());
      EXPECT_EQ(render_chat(*lm_, messages, true), p["rendered"].get<std::string>());
      return encode_chat(*lm_, messages, true);
    }
    return encode_text(*lm_, p["text"].get<std::string>());
  }
  static CausalLM* lm_;
  static nlohmann::json* golden_;
};
CausalLM* SmolLM2::lm_ = nullptr;
nlohmann::json* SmolLM2::golden_ = nullptr;

TEST_F(SmolLM2, PromptIdsAndChatTemplateEqualTransformers) {
  for (const auto& p : (*golden_)["prompts"])
    EXPECT_EQ(prompt_ids(p), p["prompt_ids"].get<std::vector<int64_t>>());
}

TEST_F(SmolLM2, LogitsMatchTransformersGgufLoadingWithin1e3) {
  NoGradGuard no_grad;
  for (const auto& p : (*golden_)["prompts"]) {
    const auto ids = p["prompt_ids"].get<std::vector<int64_t>>();
    const int64_t T = static_cast<int64_t>(ids.size());
    Tensor x = Tensor::empty({1, T}, DType::i64);
    for (int64_t i = 0; i < T; ++i) x.data<int64_t>()[i] = ids[i];
    models::DecoderInputs in;
    in.input_ids = x;
    const Tensor logits = lm_->model->forward(in).logits.contiguous();
    ASSERT_EQ(logits.size(1), T);
    const int64_t V = logits.size(2);
    const float* last = logits.data<float>() + (T - 1) * V;
    const auto head = p["last_logits_head"].get<std::vector<double>>();
    for (size_t v = 0; v < head.size(); ++v)
      EXPECT_NEAR(last[v], head[v], 1e-3) << "logit " << v;
    const auto top = p["last_top_ids"].get<std::vector<int64_t>>();
    const auto top_val = p["last_top_logits"].get<std::vector<double>>();
    for (size_t i = 0; i < top.size(); ++i) EXPECT_NEAR(last[top[i]], top_val[i], 1e-3);
    const auto argmax = p["row_argmax"].get<std::vector<int64_t>>();
    const auto row_max = p["row_max_abs"].get<std::vector<double>>();
    for (int64_t t = 0; t < T; ++t) {
      const float* row = logits.data<float>() + t * V;
      int64_t best = 0;
      float max_abs = 0;
      for (int64_t v = 0; v < V; ++v) {
        if (row[v] > row[best]) best = v;
        max_abs = std::max(max_abs, std::abs(row[v]));
      }
      EXPECT_EQ(best, argmax[t]) << "position " << t;
      EXPECT_NEAR(max_abs, row_max[t], 1e-3) << "position " << t;
    }
  }
}

TEST_F(SmolLM2, GreedyContinuationsEqualTransformersGenerate) {
  for (const auto& p : (*golden_)["prompts"]) {
    GenerationConfig cfg = lm_->generation;
    cfg.do_sample = false;
    cfg.max_new_tokens = (*golden_)["new_tokens"].get<int64_t>();
    GenerateOptions opt;
    opt.tokenizer = lm_->tokenizer.get();
    const auto r = generate(*lm_->model, {p["prompt_ids"].get<std::vector<int64_t>>()}, cfg, opt);
    ASSERT_EQ(r.sequences.size(), 1u);
    EXPECT_EQ(r.sequences[0].output_ids, p["greedy_ids"].get<std::vector<int64_t>>());
    EXPECT_EQ(r.sequences[0].text, p["greedy_text"].get<std::string>());
  }
}

}  // namespace
}  // namespace lmf::tasks
