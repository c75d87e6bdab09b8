// Causal-LM training against transformers (scripts/reference/gen_clm_train_goldens.py,
// tests/fixtures/clm/): run_clm's text reading, validation split and group_texts with two
// tokenizers (without and with a <s> per line); one HF Trainer step (clipping, AdamW with decay
// groups) of tiny GPT-2 and LLaMA models, plain and with gradient accumulation; run_clm's
// evaluation metrics; the from-config initialisation; bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "../train_data_util.h"
#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/models/registry.h"
#include "lmforge/train/clm.h"

namespace {

using namespace lmf;
using namespace lmf::train;
namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kFix = std::string(LMF_FIXTURES_DIR);
const std::string kDir = kFix + "/clm";

fs::path temp_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("lmf_clm_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

json read_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f);
}

std::vector<std::vector<int32_t>> blocks_of(const json& j) {
  return j.get<std::vector<std::vector<int32_t>>>();
}

std::vector<std::vector<int32_t>> ids_of(const std::vector<LmExample>& examples) {
  std::vector<std::vector<int32_t>> out;
  for (const LmExample& e : examples) out.push_back(e.input_ids);
  return out;
}

// A copy of tests/fixtures/decoder/<name> with every dropout 0 (as the goldens' models).
fs::path model_copy(const std::string& name) {
  const fs::path d = temp_dir("model_" + name);
  lmf::test::copy_decoder_without_dropout(kFix + "/decoder/" + name, d);
  return d;
}

std::unique_ptr<models::DecoderModel> load_pretrained_decoder_for_test(const std::string& dir) {
  return models::load_pretrained_as<models::DecoderModel>(dir, "a decoder");
}

TEST(ClmData, TextLinesKeepTheirBreaksWithUniversalNewlines) {
  const fs::path d = temp_dir("lines");
  write(d / "a.txt", "one\r\ntwo\rthree\n\nfour");
  EXPECT_EQ(read_clm_texts((d / "a.txt").string()),
            (std::vector<std::string>{"one\n", "two\n", "three\n", "\n", "four"}));
  write(d / "b.jsonl", "{\"text\": \"x y\\nz\"}\n\n{\"text\": \"w\", \"id\": 3}\n");
  EXPECT_EQ(read_clm_texts((d / "b.jsonl").string()), (std::vector<std::string>{"x y\nz", "w"}));
  write(d / "c.json", "[{\"body\": \"p\"}, {\"body\": \"q\"}]");
  EXPECT_EQ(read_clm_texts((d / "c.json").string(), "body"), (std::vector<std::string>{"p", "q"}));
  fs::remove_all(d);
}

TEST(ClmData, GroupTextsDropsTheRemainder) {
  const std::vector<std::vector<int32_t>> ex = {{1, 2, 3}, {}, {4, 5}, {6, 7, 8, 9}};
  EXPECT_EQ(group_texts(ex, 4), (std::vector<std::vector<int32_t>>{{1, 2, 3, 4}, {5, 6, 7, 8}}));
  EXPECT_TRUE(group_texts(ex, 10).empty());
  EXPECT_THROW(group_texts(ex, 1), ValueError);
}

TEST(ClmData, BadInputIsAClearError) {
  const fs::path d = temp_dir("bad");
  write(d / "latin1.txt", "ok\ncaf\xe9\n");
  const std::string latin1 =
      lmf::test::error_of([&] { read_clm_texts((d / "latin1.txt").string()); });
  EXPECT_NE(latin1.find("latin1.txt:2"), std::string::npos) << latin1;
  write(d / "blank.txt", "\n  \n\n");
  EXPECT_THROW(read_clm_texts((d / "blank.txt").string()), ValueError);
  write(d / "bad.jsonl", "{\"text\": \"a\"}\n{\"txt\": \"b\"}\n");
  const std::string field =
      lmf::test::error_of([&] { read_clm_texts((d / "bad.jsonl").string()); });
  EXPECT_NE(field.find("bad.jsonl:2"), std::string::npos) << field;
  EXPECT_NE(field.find("--text-field"), std::string::npos) << field;
  write(d / "broken.jsonl", "{\"text\": \"a\"\n");
  EXPECT_THROW(read_clm_texts((d / "broken.jsonl").string()), ValueError);
  EXPECT_THROW(read_clm_texts((d / "missing.txt").string()), IoError);

  ClmOptions o;
  o.model_dir = kFix + "/decoder/gpt2";
  o.train_files = {kDir + "/corpus.txt"};
  o.block_size = 97;  // n_positions 96
  EXPECT_THROW(make_clm_objective(o), ValueError);
  o.block_size = 90;
  write(d / "short.txt", "just a few words\n");
  o.train_files = {(d / "short.txt").string()};
  EXPECT_THROW(make_clm_objective(o), ValueError);  // not one block
  o.config_path = o.model_dir + "/config.json";
  EXPECT_THROW(make_clm_objective(o), ValueError);  // both --model and --config
  write(d / "bert.json", "{\"model_type\": \"bert\"}");
  o.model_dir.clear();
  o.config_path = (d / "bert.json").string();
  EXPECT_THROW(make_clm_objective(o), ValueError);  // not a decoder
  fs::remove_all(d);
}

// run_clm's lm_datasets: the validation split (first 10 % of the lines), tokenization with the
// tokenizer's special tokens, group_texts with block_size 16.
TEST(ClmData, BlocksEqualRunClms) {
  for (const std::string tname : {"gpt2", "bos"}) {
    const json g = read_json(kDir + "/blocks_" + tname + ".json");
    ClmOptions o;
    o.model_dir = kFix + "/decoder/llama";
    if (tname == "bos") {
      const fs::path t = temp_dir("bos_tok");
      fs::copy_file(kDir + "/bos_tokenizer.json", t / "tokenizer.json");
      o.tokenizer_dir = t.string();
    }
    o.train_files = {kDir + "/corpus.txt"};
    o.eval_split = g.at("validation_split_percentage").get<double>() / 100.0;
    o.block_size = g.at("block_size").get<int64_t>();
    auto obj = make_clm_objective(o);
    EXPECT_EQ(ids_of(obj->train_examples()), blocks_of(g.at("train_blocks"))) << tname;
    EXPECT_EQ(ids_of(obj->eval_examples()), blocks_of(g.at("eval_blocks"))) << tname;
    for (const LmExample& e : obj->train_examples()) EXPECT_TRUE(e.labels.empty());
    EXPECT_EQ(obj->block_size(), 16);
  }
}

// The default block size: min(1024, the model's positions, the tokenizer's model_max_length).
TEST(ClmData, DefaultBlockSizeIsRunClms) {
  ClmOptions o;
  o.model_dir = kFix + "/decoder/gpt2";
  const fs::path d = temp_dir("long");
  std::string text;
  for (int i = 0; i < 40; ++i) text += "First Citizen: we are accounted poor citizens.\n";
  write(d / "long.txt", text);
  o.train_files = {(d / "long.txt").string()};
  EXPECT_EQ(make_clm_objective(o)->block_size(), 96);
  fs::remove_all(d);
}

struct StepCase {
  std::string model;
  int accumulation;
};
class ClmStep : public ::testing::TestWithParam<StepCase> {};
INSTANTIATE_TEST_SUITE_P(Models, ClmStep,
                         ::testing::Values(StepCase{"gpt2", 1}, StepCase{"gpt2", 2},
                                           StepCase{"llama", 1}, StepCase{"llama", 2},
                                           StepCase{"llama_rope_linear", 1}),
                         [](const auto& info) {
                           return info.param.model + "_accum" +
                                  std::to_string(info.param.accumulation);
                         });

// One Trainer step over the first 4 training blocks (as one batch, or 2 micro-batches of 2):
// loss, per-parameter gradient norms, the global norm and every parameter after AdamW match
// PyTorch's (relative 1e-3); run_clm's eval metrics of the model before the step too.
TEST_P(ClmStep, OneTrainerStepMatchesPyTorch) {
  const StepCase c = GetParam();
  const io::StateDict g = io::load_safetensors(kDir + "/step_" + c.model + ".safetensors");
  const json blocks = read_json(kDir + "/blocks_gpt2.json");
  const fs::path model_dir = model_copy(c.model);
  auto train = blocks_of(blocks.at("train_blocks"));
  train.resize(4);
  ClmObjective obj(load_pretrained_decoder_for_test(model_dir.string()), as_examples(train),
                   as_examples(blocks_of(blocks.at("eval_blocks"))), 1, model_dir.string(),
                   model_dir.string(), 3);

  // Loss and gradients of the whole batch.
  {
    obj.set_training(true);
    std::vector<int64_t> all{0, 1, 2, 3};
    Generator rng(0);
    const Objective::BatchLoss l = obj.loss(all, rng);
    EXPECT_EQ(l.tokens, 64);
    EXPECT_EQ(obj.loss_items(all), 60);
    const double ref = g.at("loss").to_vector<float>()[0];
    EXPECT_NEAR(l.loss.item(), ref, 1e-4 * ref);
  }
  const Metrics m = obj.evaluate();
  EXPECT_NEAR(m.at("eval_loss"), g.at("eval_loss").to_vector<float>()[0], 1e-4 * m.at("eval_loss"));
  EXPECT_NEAR(m.at("eval_perplexity"), std::exp(m.at("eval_loss")), 1e-9 * m.at("eval_perplexity"));
  EXPECT_NEAR(m.at("eval_accuracy"), g.at("eval_accuracy").to_vector<float>()[0], 1e-6);

  const fs::path out = temp_dir("step_" + c.model + std::to_string(c.accumulation));
  const TrainerOptions t = lmf::test::one_step_options(out, 4 / c.accumulation, c.accumulation);
  double logged_grad_norm = -1, logged_loss = -1;
  const TrainResult r = lmf::train::train(obj, t, [&](const Metrics& mm) {
    if (mm.count("grad_norm")) logged_grad_norm = mm.at("grad_norm");
    if (mm.count("loss")) logged_loss = mm.at("loss");
  });
  const double ref = g.at("loss").to_vector<float>()[0];
  EXPECT_NEAR(r.train_loss, ref, 1e-4 * ref);
  EXPECT_NEAR(logged_loss, ref, 1e-4 * ref);
  const double ref_norm = g.at("grad_norm").to_vector<float>()[0];
  EXPECT_NEAR(logged_grad_norm, ref_norm, 1e-4 * ref_norm);
  const int checked = lmf::test::expect_saved_params_match_golden(out / "model.safetensors", g);
  int golden_params = 0;
  for (const auto& [k, v] : g) golden_params += k.rfind("param.", 0) == 0;
  EXPECT_EQ(checked, golden_params);
  // Saved as transformers saves a causal LM: generation_config.json and the tokenizer too.
  EXPECT_TRUE(fs::is_regular_file(out / "generation_config.json"));
  EXPECT_TRUE(fs::is_regular_file(out / "tokenizer.json"));
  fs::remove_all(out);
  fs::remove_all(model_dir);
}

// Gradients of one batch, per parameter (norms for all, full tensors for a few).
class ClmGradients : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Models, ClmGradients,
                         ::testing::Values("gpt2", "llama", "llama_rope_linear"));

TEST_P(ClmGradients, MatchPyTorch) {
  const std::string model = GetParam();
  const io::StateDict g = io::load_safetensors(kDir + "/step_" + model + ".safetensors");
  const json blocks = read_json(kDir + "/blocks_gpt2.json");
  const fs::path model_dir = model_copy(model);
  auto train = blocks_of(blocks.at("train_blocks"));
  train.resize(4);
  ClmObjective obj(load_pretrained_decoder_for_test(model_dir.string()), as_examples(train), {}, 1,
                   model_dir.string(), model_dir.string(), 8);
  obj.set_training(true);
  std::vector<int64_t> all{0, 1, 2, 3};
  Generator rng(0);
  obj.loss(all, rng).loss.backward();
  double total = 0;
  int full = 0;
  for (const auto& [name, t] : obj.parameters()) {
    const Tensor gr = t.grad();
    ASSERT_TRUE(gr.defined()) << name;
    const double n = lmf::test::l2_norm(gr);
    total += n * n;
    if (auto it = g.find("grad." + name); it != g.end()) {
      EXPECT_LE(lmf::test::rel_l2(gr, it->second), 1e-3) << name;
      ++full;
    }
    const double rn = g.at("grad_norm." + name).to_vector<float>()[0];
    EXPECT_NEAR(n, rn, 1e-3 * rn + 1e-7) << name;
  }
  EXPECT_GE(full, 2);
  const double ref_norm = g.at("grad_norm").to_vector<float>()[0];
  EXPECT_NEAR(std::sqrt(total), ref_norm, 1e-3 * ref_norm);
  fs::remove_all(model_dir);
}

// From a config: HF's _init_weights (biases 0, norms 1, N(0, initializer_range), GPT-2's c_proj
// with initializer_range / sqrt(2 n_layer), LLaMA's pad row of embed_tokens zero), seeded.
TEST(ClmTrain, FromConfigInitialisesAsTransformers) {
  const fs::path d = temp_dir("scratch");
  std::string text;
  for (int i = 0; i < 20; ++i) text += "We are accounted poor citizens, the patricians good.\n";
  write(d / "t.txt", text);
  for (const std::string name : {"gpt2", "llama"}) {
    ClmOptions o;
    o.config_path = kFix + "/decoder/" + name + "/config.json";
    o.train_files = {(d / "t.txt").string()};
    o.block_size = 32;
    auto obj = make_clm_objective(o);
    const nn::StateDict s = obj->model().state_dict();
    auto rms = [&](const std::string& k) {
      const auto w = s.at(k).to_vector<float>();
      double sq = 0;
      for (float v : w) sq += double(v) * v;
      return std::sqrt(sq / w.size());
    };
    if (name == "gpt2") {
      EXPECT_NEAR(rms("transformer.h.0.mlp.c_fc.weight"), 0.1, 0.01);
      EXPECT_NEAR(rms("transformer.h.0.mlp.c_proj.weight"), 0.1 / 2.0, 0.005);  // sqrt(2*2)
      EXPECT_NEAR(rms("transformer.h.1.attn.c_proj.weight"), 0.1 / 2.0, 0.005);
      for (float v : s.at("transformer.h.0.ln_1.weight").to_vector<float>()) EXPECT_EQ(v, 1.0f);
      for (float v : s.at("transformer.h.0.attn.c_attn.bias").to_vector<float>())
        EXPECT_EQ(v, 0.0f);
      EXPECT_EQ(s.at("lm_head.weight").data_ptr(), s.at("transformer.wte.weight").data_ptr());
    } else {
      EXPECT_NEAR(rms("model.layers.0.mlp.down_proj.weight"), 0.1, 0.01);
      for (float v : s.at("model.embed_tokens.weight").select(0, 1).to_vector<float>())
        EXPECT_EQ(v, 0.0f);  // pad_token_id 1
      for (float v : s.at("model.norm.weight").to_vector<float>()) EXPECT_EQ(v, 1.0f);
    }
    // The same seed gives the same model; another seed another one.
    auto again = make_clm_objective(o);
    const std::string k = name == "gpt2" ? "transformer.h.1.mlp.c_fc.weight"
                                         : "model.layers.1.self_attn.q_proj.weight";
    EXPECT_EQ(again->model().state_dict().at(k).to_vector<float>(), s.at(k).to_vector<float>());
    o.seed = 7;
    EXPECT_NE(make_clm_objective(o)->model().state_dict().at(k).to_vector<float>(),
              s.at(k).to_vector<float>());
  }
  fs::remove_all(d);
}

}  // namespace
