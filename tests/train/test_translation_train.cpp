// Translation training against PyTorch: one Seq2SeqTrainer step (label smoothing 0.1, clipping,
// AdamW with decay groups) of a tiny MarianMTModel on a padded batch of id pairs, from
// scripts/reference/gen_translation_train_goldens.py (tests/fixtures/translation/); the data
// readers' bad input (mismatched line counts, empty lines, unknown language fields).
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
#include "lmforge/train/translation.h"

namespace {

using namespace lmf;
using namespace lmf::train;
namespace fs = std::filesystem;

const std::string kDir = std::string(LMF_FIXTURES_DIR) + "/translation";

fs::path temp_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("lmf_translation_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

TranslationOptions options() {
  TranslationOptions o;
  o.model_dir = kDir + "/marian_tiny";
  o.train_data = kDir + "/train.jsonl";
  o.label_smoothing = 0.1;
  return o;
}

// The options of the one-step comparisons with the goldens' Trainer step.
TrainerOptions one_step_options(const fs::path& out, int64_t batch, int64_t accumulation) {
  TrainerOptions t;
  t.output_dir = out.string();
  t.max_steps = 1;
  t.per_device_train_batch_size = batch;
  t.gradient_accumulation_steps = accumulation;
  t.learning_rate = 1e-3;
  t.weight_decay = 0.01;
  t.max_grad_norm = 1.0;
  t.save_steps = 0;
  t.progress = false;
  t.logging_steps = 1;
  return t;
}

TEST(TranslationTrain, LossAndGradientsMatchLabelSmoother) {
  const io::StateDict g = io::load_safetensors(kDir + "/step.safetensors");
  auto obj = make_translation_objective(options());
  EXPECT_EQ(obj->num_examples(), 4);
  EXPECT_EQ(obj->skipped_empty(), 1);  // the pair with an empty target
  obj->set_training(true);
  std::vector<int64_t> all(obj->num_examples());
  std::iota(all.begin(), all.end(), 0);
  Generator rng(0);
  const Objective::BatchLoss l = obj->loss(all, rng);
  const double ref = g.at("loss").to_vector<float>()[0];
  EXPECT_NEAR(l.loss.item(), ref, 1e-3 * std::abs(ref));
  EXPECT_EQ(l.tokens, 5 + 4 + 3 + 6 + 7 + 2 + 4 + 5);
  l.loss.backward();
  double total = 0;
  for (const auto& [name, t] : obj->parameters()) {
    const Tensor gr = t.grad();
    if (!gr.defined()) continue;
    const double n = lmf::test::l2_norm(gr);
    total += n * n;
    auto it = g.find("grad." + name);
    if (it != g.end()) EXPECT_LE(lmf::test::rel_l2(gr, it->second), 1e-3) << name;
    const auto gn = g.find("grad_norm." + name);
    ASSERT_NE(gn, g.end()) << name;
    const double rn = gn->second.to_vector<float>()[0];
    EXPECT_NEAR(n, rn, 1e-3 * rn + 1e-7) << name;
  }
  const double ref_norm = g.at("grad_norm").to_vector<float>()[0];
  EXPECT_NEAR(std::sqrt(total), ref_norm, 1e-3 * ref_norm);
}

// One step over the 4 pairs, as one batch or as 2 micro-batches of 2 (gradient accumulation: HF
// normalises by the update's label tokens, so both equal the golden's single batch).
class TranslationStep : public ::testing::TestWithParam<int> {};
INSTANTIATE_TEST_SUITE_P(Accumulation, TranslationStep, ::testing::Values(1, 2));

TEST_P(TranslationStep, OneTrainerStepMatchesPyTorch) {
  const io::StateDict g = io::load_safetensors(kDir + "/step.safetensors");
  const fs::path out = temp_dir("step" + std::to_string(GetParam()));
  TranslationOptions o = options();
  auto obj = make_translation_objective(o);
  const io::StateDict before = io::load_safetensors(o.model_dir + "/model.safetensors");
  const TrainerOptions t = one_step_options(out, 4 / GetParam(), GetParam());
  double logged_grad_norm = -1, logged_loss = -1;
  const TrainResult r = lmf::train::train(*obj, t, [&](const Metrics& m) {
    if (m.count("grad_norm")) logged_grad_norm = m.at("grad_norm");
    if (m.count("loss")) logged_loss = m.at("loss");
  });
  const double ref = g.at("loss").to_vector<float>()[0];
  EXPECT_NEAR(r.train_loss, ref, 1e-3 * std::abs(ref));
  // The logged loss and pre-clipping gradient norm of the update: with accumulation they equal
  // the single batch's only when micro-batches are weighted by their target tokens.
  const double ref_norm = g.at("grad_norm").to_vector<float>()[0];
  EXPECT_NEAR(logged_loss, ref, 1e-5 * std::abs(ref));
  EXPECT_NEAR(logged_grad_norm, ref_norm, 1e-5 * ref_norm);
  EXPECT_GT(r.train_tokens_per_second, 0);
  // Parameters after the step (relative 1e-3) and the step itself, (p_new - p_old) / lr.
  const io::StateDict after = io::load_safetensors((out / "model.safetensors").string());
  int checked = 0;
  for (const auto& [name, t_new] : after) {
    auto p = g.find("param." + name);
    if (name == "final_logits_bias") {  // a buffer in transformers: never trained
      EXPECT_EQ(t_new.to_vector<float>(), before.at(name).to_vector<float>());
      continue;
    }
    ASSERT_NE(p, g.end()) << name;
    EXPECT_LE(lmf::test::rel_l2(t_new, p->second), 1e-3) << name;
    const auto a = t_new.to_vector<float>(), b = before.at(name).to_vector<float>();
    std::vector<float> step(a.size());
    for (size_t i = 0; i < a.size(); ++i) step[i] = (a[i] - b[i]) / 1e-3f;
    // k_proj biases have a zero gradient in exact arithmetic (softmax is shift-invariant): their
    // Adam step is the sign of rounding noise in both, so only their values are compared.
    if (g.at("grad_norm." + name).to_vector<float>()[0] > 1e-6)
      EXPECT_LE(lmf::test::rel_l2(Tensor::from_vector(step, t_new.shape()), g.at("update." + name)),
                1e-2)
          << name;
    ++checked;
  }
  EXPECT_GT(checked, 40);
  // The saved folder: MarianMTModel config, generation config copied, loads back.
  EXPECT_TRUE(fs::is_regular_file(out / "generation_config.json"));
  TranslationOptions back = o;
  back.model_dir = out.string();
  EXPECT_NO_THROW(make_translation_objective(back));
  fs::remove_all(out);
}

TEST(TranslationTrain, FromConfigInitialisesAsTransformers) {
  TranslationOptions o = options();
  o.model_dir.clear();
  o.config_path = kDir + "/marian_tiny/config.json";
  auto obj = make_translation_objective(o);
  const nn::StateDict s = obj->model().state_dict();
  const int64_t pad = 99;
  const auto shared = s.at("model.shared.weight");
  for (float v : shared.select(0, pad).to_vector<float>()) EXPECT_EQ(v, 0.0f);
  for (float v : s.at("final_logits_bias").to_vector<float>()) EXPECT_EQ(v, 0.0f);
  for (float v : s.at("model.encoder.layers.0.fc1.bias").to_vector<float>()) EXPECT_EQ(v, 0.0f);
  for (float v : s.at("model.encoder.layers.0.final_layer_norm.weight").to_vector<float>())
    EXPECT_EQ(v, 1.0f);
  // normal(0, init_std = 0.02)
  const auto w = s.at("model.decoder.layers.1.fc2.weight").to_vector<float>();
  double sq = 0;
  for (float v : w) sq += double(v) * v;
  EXPECT_NEAR(std::sqrt(sq / w.size()), 0.02, 0.003);
  // Tied: lm_head is the shared matrix.
  EXPECT_EQ(s.at("lm_head.weight").data_ptr(), shared.data_ptr());
}

// --freeze-pad-embedding: from a config the pad row starts at zero; training moves it through
// the tied output layer (as in PyTorch) unless it is frozen, when it stays exactly zero while the
// other rows train.
TEST(TranslationTrain, FreezePadEmbeddingKeepsThePadRowZero) {
  const int64_t pad = 99;
  for (bool freeze : {false, true}) {
    TranslationOptions o = options();
    o.model_dir.clear();
    o.config_path = kDir + "/marian_tiny/config.json";
    o.freeze_pad_embedding = freeze;
    auto obj = make_translation_objective(o);
    const Tensor shared = obj->model().state_dict().at("model.shared.weight");
    const auto row0_before = shared.select(0, 5).to_vector<float>();
    const fs::path out = temp_dir(freeze ? "frozen_pad" : "moving_pad");
    TrainerOptions t;
    t.output_dir = out.string();
    t.max_steps = 2;
    t.per_device_train_batch_size = 4;
    t.learning_rate = 1e-2;
    t.save_steps = 0;
    t.progress = false;
    lmf::train::train(*obj, t);
    double pad_sq = 0;
    for (float v : shared.select(0, pad).to_vector<float>()) pad_sq += double(v) * v;
    if (freeze)
      EXPECT_EQ(pad_sq, 0.0);
    else
      EXPECT_GT(pad_sq, 1e-6);
    EXPECT_NE(shared.select(0, 5).to_vector<float>(), row0_before);
    fs::remove_all(out);
  }
}

// T5: one Seq2SeqTrainer step of tests/fixtures/t5's tiny checkpoints (relu with tied, scaled
// lm_head; gated-gelu untied) with dropout_rate 0 (set in a copy of the folder, as the golden
// script does), against PyTorch (scripts/reference/gen_translation_train_goldens.py --t5).
class T5TranslationStep : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(T5, T5TranslationStep,
                         ::testing::Values("t5_relu_tied", "t5_gated_untied"));

TEST_P(T5TranslationStep, OneTrainerStepMatchesPyTorch) {
  const std::string name = GetParam();
  const io::StateDict g = io::load_safetensors(kDir + "/t5_step_" + name + ".safetensors");
  const fs::path model = temp_dir(name + "_model"), out = temp_dir(name + "_out");
  fs::copy(std::string(LMF_FIXTURES_DIR) + "/t5/" + name, model,
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  {
    std::ifstream f(model / "config.json");
    nlohmann::ordered_json c = nlohmann::ordered_json::parse(f);
    c["dropout_rate"] = 0.0;
    std::ofstream(model / "config.json") << c.dump(2);
  }
  TranslationOptions o;
  o.model_dir = model.string();
  o.train_data = kDir + "/t5_train.jsonl";
  o.label_smoothing = 0.1;
  auto obj = make_translation_objective(o);
  const TrainerOptions t = one_step_options(out, 4, 1);
  double logged_grad_norm = -1;
  const TrainResult r = lmf::train::train(*obj, t, [&](const Metrics& m) {
    if (m.count("grad_norm")) logged_grad_norm = m.at("grad_norm");
  });
  const double ref = g.at("loss").to_vector<float>()[0];
  EXPECT_NEAR(r.train_loss, ref, 1e-4 * std::abs(ref));
  const double ref_norm = g.at("grad_norm").to_vector<float>()[0];
  EXPECT_NEAR(logged_grad_norm, ref_norm, 1e-4 * ref_norm);
  const io::StateDict after = io::load_safetensors((out / "model.safetensors").string());
  int checked = 0;
  for (const auto& [key, ref_param] : g) {
    if (key.rfind("param.", 0) != 0) continue;
    const std::string pname = key.substr(6);
    auto p = after.find(pname);
    ASSERT_NE(p, after.end()) << pname;
    EXPECT_LE(lmf::test::rel_l2(p->second, ref_param), 1e-3) << pname;
    ++checked;
  }
  EXPECT_GT(checked, 20);
  // The folder's generation_config.json is copied; the saved folder trains on.
  EXPECT_TRUE(fs::is_regular_file(out / "generation_config.json"));
  TranslationOptions back = o;
  back.model_dir = out.string();
  EXPECT_NO_THROW(make_translation_objective(back));
  fs::remove_all(model);
  fs::remove_all(out);
}

// T5 from a config: HF's T5 initialisation and GenerationConfig.from_model_config's keys.
TEST(TranslationTrain, T5FromConfig) {
  TranslationOptions o;
  o.config_path = std::string(LMF_FIXTURES_DIR) + "/t5/t5_relu_tied/config.json";
  o.train_data = kDir + "/t5_train.jsonl";
  auto obj = make_translation_objective(o);
  const nn::StateDict s = obj->model().state_dict();
  EXPECT_EQ(s.at("lm_head.weight").data_ptr(), s.at("shared.weight").data_ptr());
  for (float v : s.at("encoder.final_layer_norm.weight").to_vector<float>()) EXPECT_EQ(v, 1.0f);
  // shared ~ normal(0, initializer_factor = 1)
  const auto w = s.at("shared.weight").to_vector<float>();
  double sq = 0;
  for (float v : w) sq += double(v) * v;
  EXPECT_NEAR(std::sqrt(sq / w.size()), 1.0, 0.1);
  const fs::path out = temp_dir("t5_from_config");
  obj->save_pretrained(out.string());
  std::ifstream f(out / "generation_config.json");
  const nlohmann::json gen = nlohmann::json::parse(f);
  EXPECT_EQ(gen.at("decoder_start_token_id"), 0);
  EXPECT_EQ(gen.at("eos_token_id"), 1);
  EXPECT_EQ(gen.at("pad_token_id"), 0);
  EXPECT_FALSE(gen.contains("forced_eos_token_id"));
  fs::remove_all(out);
}

// --source-prefix with a T5 tokenizer.json: the features of run_translation --source_prefix
// (tests/fixtures/translation/t5_text.json from transformers' T5 tokenizer).
TEST(TranslationTrain, T5SourcePrefixFeaturesMatchRunTranslation) {
  std::ifstream f(kDir + "/t5_text.json");
  const nlohmann::json ref = nlohmann::json::parse(f);
  TranslationOptions o;
  o.model_dir = std::string(LMF_FIXTURES_DIR) + "/t5/t5_translate";
  o.train_data = kDir + "/t5_text.jsonl";
  o.source_prefix = ref.at("prefix").get<std::string>();
  auto obj = make_translation_objective(o);
  ASSERT_EQ(obj->train_features().size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(obj->train_features()[i].input_ids,
              ref.at("input_ids")[i].get<std::vector<int64_t>>());
    EXPECT_EQ(obj->train_features()[i].labels, ref.at("labels")[i].get<std::vector<int64_t>>());
  }
}

// Text pairs through the Marian tokenizer (tests/fixtures/marian_tokenizer/joint, 200 Multi30k
// lines) into a from-scratch model of the tokenizer's size.
TEST(TranslationTrain, TextPairsThroughTheMarianTokenizer) {
  const std::string fix = LMF_FIXTURES_DIR;
  TranslationOptions o;
  o.config_path = kDir + "/joint_config.json";
  o.tokenizer_dir = fix + "/marian_tokenizer/joint";
  o.train_data = fix + "/marian_tokenizer/corpus.en," + fix + "/marian_tokenizer/corpus.fr";
  o.max_source_length = 8;
  auto obj = make_translation_objective(o);
  EXPECT_EQ(obj->num_examples(), 200);
  const TranslationTokenizer tok = load_translation_tokenizer(o.tokenizer_dir);
  const TranslationData d = read_translation_data(o.train_data, "en", "fr");
  for (int i = 0; i < 5; ++i) {
    std::vector<int64_t> src = tok.encode_source(d.pairs[i].source);
    if (src.size() > 8) {
      src.resize(8);
      src.back() = 0;  // truncation keeps </s>
    }
    EXPECT_EQ(obj->train_features()[i].input_ids, src);
    EXPECT_EQ(obj->train_features()[i].labels, tok.encode_target(d.pairs[i].target));
  }
  EXPECT_GT(obj->truncated(), 0);
  const fs::path out = temp_dir("text");
  obj->save_pretrained(out.string());
  for (const char* f : {"source.spm", "target.spm", "vocab.json", "tokenizer_config.json",
                        "generation_config.json", "config.json", "model.safetensors"})
    EXPECT_TRUE(fs::is_regular_file(out / f)) << f;
  // A tokenizer whose pad id is not the model's: a clear error.
  o.config_path = kDir + "/marian_tiny/config.json";
  EXPECT_THROW(make_translation_objective(o), ValueError);
  fs::remove_all(out);
}

// finetune --task translation from a BART checkpoint (tests/fixtures/bart/bart, goldens of
// scripts/reference/gen_bart_goldens.py): the golden's source/label rows as JSONL id pairs give
// transformers' loss (no label smoothing) and parameter gradients of the padded batch.
TEST(TranslationTrain, BartCheckpointLossAndGradientsMatchTransformers) {
  const std::string bart = std::string(LMF_FIXTURES_DIR) + "/bart/bart";
  std::ifstream gf(bart + "/golden.json");
  const nlohmann::json g = nlohmann::json::parse(gf);
  auto rows = [&](const char* key, int64_t drop) {
    const auto& t = g.at(key);
    const int64_t B = t.at("shape")[0], T = t.at("shape")[1];
    std::vector<std::vector<int64_t>> out(B);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < T; ++i) {
        const int64_t v = t.at("data")[b * T + i];
        const int64_t m = key == std::string("input_ids")
                              ? g.at("attention_mask").at("data")[b * T + i].get<int64_t>()
                              : 1;
        if (v != drop && m) out[b].push_back(v);
      }
    return out;
  };
  const auto src = rows("input_ids", -1000), tgt = rows("labels", -100);
  const fs::path d = temp_dir("bart");
  {
    std::ofstream f(d / "train.jsonl");
    for (size_t i = 0; i < src.size(); ++i)
      f << nlohmann::json{{"en", src[i]}, {"fr", tgt[i]}}.dump() << "\n";
  }
  TranslationOptions o;
  o.model_dir = bart;
  o.train_data = (d / "train.jsonl").string();
  o.label_smoothing = 0.0;
  auto obj = make_translation_objective(o);
  ASSERT_EQ(obj->num_examples(), 2);
  EXPECT_EQ(obj->model().architecture(), "BartForConditionalGeneration");
  obj->set_training(false);  // the golden is eval mode (no dropout)
  std::vector<int64_t> all = {0, 1};
  Generator rng(0);
  const Objective::BatchLoss l = obj->loss(all, rng);
  const double ref = g.at("loss").get<double>();
  EXPECT_NEAR(l.loss.item(), ref, 1e-5 * std::abs(ref));
  l.loss.backward();
  int checked = 0;
  for (const auto& [name, t] : obj->parameters()) {
    if (!g.at("grads").contains(name)) continue;
    const auto& gj = g.at("grads").at(name);
    const Tensor want =
        Tensor::from_vector(gj.at("data").get<std::vector<float>>(), gj.at("shape").get<Shape>());
    EXPECT_LE(lmf::test::rel_l2(t.grad(), want), 1e-3) << name;
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(g.at("grads").size()));
  fs::remove_all(d);
}

TEST(TranslationTrain, ParallelFilesAndBadInput) {
  const fs::path d = temp_dir("data");
  write(d / "a.en", "a b\n\nc d\ne\n");
  write(d / "a.fr", "x\ny\n \nz\n");
  const TranslationData data =
      read_translation_data((d / "a.en").string() + "," + (d / "a.fr").string(), "en", "fr");
  ASSERT_EQ(data.pairs.size(), 2u);  // lines 2 and 3 have an empty side
  EXPECT_EQ(data.skipped_empty, 2);
  EXPECT_EQ(data.pairs[1].source, "e");
  EXPECT_EQ(data.pairs[1].target, "z");
  EXPECT_EQ(data.pairs[1].where, (d / "a.en").string() + ":4");
  // Mismatched line counts: the error names the first unpaired line.
  write(d / "b.fr", "x\ny\n");
  try {
    read_translation_data((d / "a.en").string() + "," + (d / "b.fr").string(), "en", "fr");
    ADD_FAILURE() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("a.en:3"), std::string::npos) << e.what();
  }
  // JSONL: text pairs, the wmt layout, an unknown language field.
  write(d / "t.jsonl",
        "{\"en\": \"hello\", \"fr\": \"bonjour\"}\n{\"translation\": {\"en\": \"a\", \"fr\": "
        "\"b\"}}\n");
  EXPECT_EQ(read_translation_data((d / "t.jsonl").string(), "en", "fr").pairs.size(), 2u);
  try {
    read_translation_data((d / "t.jsonl").string(), "en", "de");
    ADD_FAILURE() << "no error";
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("t.jsonl:1"), std::string::npos) << m;
    EXPECT_NE(m.find("'de'"), std::string::npos) << m;
  }
  write(d / "bad.jsonl", "{\"en\": \"a\", \"fr\": \"b\"}\n{oops\n");
  EXPECT_THROW(read_translation_data((d / "bad.jsonl").string(), "en", "fr"), IoError);
  // Text without a tokenizer in the model folder: a clear error, not a crash.
  TranslationOptions o = options();
  o.train_data = (d / "t.jsonl").string();
  EXPECT_THROW(make_translation_objective(o), ValueError);
  // Truncation keeps </s>; --no-truncation refuses.
  write(d / "long.jsonl", "{\"en\": [1, 2, 3, 4, 5, 0], \"fr\": [6, 7, 0]}\n");
  o.train_data = (d / "long.jsonl").string();
  o.max_source_length = 4;
  auto obj = make_translation_objective(o);
  EXPECT_EQ(obj->train_features()[0].input_ids, (std::vector<int64_t>{1, 2, 3, 0}));
  EXPECT_EQ(obj->truncated(), 1);
  o.truncate = false;
  EXPECT_THROW(make_translation_objective(o), ValueError);
  o.max_source_length = 1;
  EXPECT_THROW(make_translation_objective(o), ValueError);
  fs::remove_all(d);
}

}  // namespace
