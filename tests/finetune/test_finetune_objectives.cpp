// Fine-tuning objectives on the tiny pipeline checkpoints: each loss on a fixed batch and
// evaluate()'s metrics equal transformers' / sentence-transformers' (goldens from
// gen_finetune_goldens.py), save_pretrained / load_pretrained round trip.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/train/finetune.h"

namespace {

using namespace lmf::train;
using nlohmann::json;
namespace fs = std::filesystem;

const std::string kFix = LMF_FIXTURES_DIR;
const std::string kDir = kFix + "/finetune";

const json& losses() {
  static const json g = [] {
    std::ifstream in(kDir + "/goldens.json");
    return json::parse(in)["losses"];
  }();
  return g;
}

double batch_loss(FinetuneObjective& obj) {
  obj.set_training(false);
  lmf::Generator rng(1);
  const std::vector<int64_t> idx = {0, 1, 2, 3};
  return obj.loss(idx, rng).loss.item();
}

void expect_metrics(const Metrics& got, const json& want) {
  for (const auto& [k, v] : want.items()) {
    ASSERT_TRUE(got.count(k)) << "missing " << k;
    EXPECT_NEAR(got.at(k), v.get<double>(), 1e-4) << k;
  }
}

FinetuneOptions opts(const std::string& model, const std::string& task, const std::string& train,
                     const std::string& eval = "") {
  FinetuneOptions o;
  o.model_dir = model;
  o.task = task;
  o.train_file = train;
  o.eval_file = eval;
  return o;
}

TEST(FinetuneObjective, SequenceClassificationLossAndEvaluate) {
  auto obj = make_finetune_objective(opts(kFix + "/pipelines/bert_cls", "classification",
                                          kDir + "/cls_train.tsv", kDir + "/cls_eval.tsv"));
  EXPECT_EQ(obj->num_examples(), 16);
  EXPECT_EQ(obj->label_names(), (std::vector<std::string>{"NEGATIVE", "POSITIVE"}));
  EXPECT_NEAR(batch_loss(*obj), losses()["cls_loss"].get<double>(), 1e-4);
  expect_metrics(obj->evaluate(), losses()["cls_eval"]);
  // The same numbers from the evaluate entry point (no training data).
  FinetuneOptions e = opts(kFix + "/pipelines/bert_cls", "", "", kDir + "/cls_eval.tsv");
  expect_metrics(evaluate_model(e), losses()["cls_eval"]);
}

TEST(FinetuneObjective, MultiLabelAndRegressionLosses) {
  auto multi = make_finetune_objective(
      opts(kFix + "/pipelines/bert_cls_multi", "classification", kDir + "/multi.jsonl"));
  EXPECT_EQ(multi->model().config().problem_type, "multi_label_classification");
  EXPECT_NEAR(batch_loss(*multi), losses()["multi_loss"].get<double>(), 1e-4);
  auto reg = make_finetune_objective(opts(kDir + "/bert_reg", "cross-encoder", kDir + "/sts.csv"));
  EXPECT_EQ(reg->model().config().problem_type, "regression");
  EXPECT_NEAR(batch_loss(*reg), losses()["regression_loss"].get<double>(), 1e-4);
  FinetuneOptions o = opts(kDir + "/bert_reg", "regression", kDir + "/sts.csv");
  o.eval_fraction = 0.5;
  auto split = make_finetune_objective(o);
  EXPECT_EQ(split->num_examples(), 6);
  const Metrics m = split->evaluate();
  EXPECT_TRUE(m.count("eval_pearson") && m.count("eval_spearmanr") && m.count("eval_loss"));
}

TEST(FinetuneObjective, TokenClassificationLossAndEvaluate) {
  auto obj = make_finetune_objective(opts(kFix + "/pipelines/bert_ner", "ner",
                                          kDir + "/ner_train.conll", kDir + "/ner_eval.jsonl"));
  // The model's own label order is kept (same label set).
  EXPECT_EQ(obj->label_names(),
            (std::vector<std::string>{"O", "B-PER", "I-PER", "B-LOC", "I-LOC"}));
  EXPECT_NEAR(batch_loss(*obj), losses()["ner_loss"].get<double>(), 1e-4);
  expect_metrics(obj->evaluate(), losses()["ner_eval"]);
}

TEST(FinetuneObjective, QuestionAnsweringLossAndEvaluate) {
  FinetuneOptions o =
      opts(kFix + "/pipelines/bert_qa", "qa", kDir + "/squad.json", kDir + "/squad.json");
  o.max_length = 48;
  o.doc_stride = 16;
  auto obj = make_finetune_objective(o);
  EXPECT_EQ(obj->num_examples(), losses()["qa_num_features"].get<int64_t>());
  EXPECT_NEAR(batch_loss(*obj), losses()["qa_loss"].get<double>(), 1e-4);
  expect_metrics(obj->evaluate(), losses()["qa_eval"]);
}

TEST(FinetuneObjective, BiEncoderLosses) {
  FinetuneOptions o = opts(kFix + "/pipelines/bert_cls", "similarity", kDir + "/sts.csv");
  o.similarity_loss = "mnrl";
  auto mnrl = make_finetune_objective(o);
  EXPECT_NEAR(batch_loss(*mnrl), losses()["mnrl_loss"].get<double>(), 1e-4);
  o.similarity_loss = "";  // scores present: cosine
  auto cosine = make_finetune_objective(o);
  EXPECT_NEAR(batch_loss(*cosine), losses()["cosine_loss"].get<double>(), 1e-4);
  o.eval_file = kDir + "/sts.csv";
  const Metrics m = make_finetune_objective(o)->evaluate();
  EXPECT_TRUE(m.count("eval_spearman") && m.count("eval_pearson"));
}

TEST(FinetuneObjective, SaveAndExactReload) {
  const fs::path dir = fs::temp_directory_path() / "lmf_ft_save";
  fs::remove_all(dir);
  auto obj =
      make_finetune_objective(opts(kFix + "/pipelines/bert_ner", "ner", kDir + "/ner_train.conll"));
  obj->save_pretrained(dir.string());
  EXPECT_TRUE(fs::exists(dir / "tokenizer.json"));
  const json cfg = json::parse(std::ifstream(dir / "config.json"));
  EXPECT_EQ(cfg["architectures"][0], "BertForTokenClassification");
  EXPECT_EQ(cfg["id2label"]["1"], "B-PER");
  EXPECT_EQ(cfg["label2id"]["I-LOC"], 4);
  const auto before = obj->parameters();
  std::vector<std::vector<float>> saved;
  for (const auto& [n, t] : before) saved.push_back(t.to_vector<float>());
  {
    lmf::NoGradGuard g;
    for (auto [n, t] : before) t.fill_(0.25);
  }
  obj->load_pretrained(dir.string());
  const auto after = obj->parameters();
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_TRUE(after[i].second.same(before[i].second)) << "parameter replaced: " << after[i].first;
    EXPECT_EQ(after[i].second.to_vector<float>(), saved[i]) << after[i].first;
  }
  // A saved classifier evaluates like the objective that wrote it (labels round-trip).
  auto cls = make_finetune_objective(opts(kFix + "/pipelines/bert_cls", "classification",
                                          kDir + "/cls_train.tsv", kDir + "/cls_eval.tsv"));
  const fs::path cdir = fs::temp_directory_path() / "lmf_ft_save_cls";
  fs::remove_all(cdir);
  cls->save_pretrained(cdir.string());
  const Metrics direct = cls->evaluate();
  const Metrics loaded = evaluate_model(opts(cdir.string(), "", "", kDir + "/cls_eval.tsv"));
  ASSERT_EQ(direct.size(), loaded.size());
  for (const auto& [k, v] : direct) EXPECT_NEAR(loaded.at(k), v, 1e-6) << k;
  fs::remove_all(cdir);
  // A bi-encoder folder is a sentence-transformers folder.
  FinetuneOptions o = opts(kFix + "/pipelines/bert_cls", "bi-encoder", kDir + "/sts.csv");
  const fs::path bi = fs::temp_directory_path() / "lmf_ft_save_bi";
  fs::remove_all(bi);
  make_finetune_objective(o)->save_pretrained(bi.string());
  EXPECT_TRUE(fs::exists(bi / "modules.json"));
  EXPECT_TRUE(fs::exists(bi / "1_Pooling" / "config.json"));
  const json bcfg = json::parse(std::ifstream(bi / "config.json"));
  EXPECT_EQ(bcfg["architectures"][0], "BertModel");
  fs::remove_all(dir);
  fs::remove_all(bi);
}

TEST(FinetuneObjective, ClearErrors) {
  EXPECT_THROW(parse_finetune_task("summarize"), lmf::ValueError);
  EXPECT_THROW(parse_label_kind("many"), lmf::ValueError);
  EXPECT_EQ(parse_data_format("tsv"), DataFormat::tsv);
  EXPECT_THROW(make_finetune_objective(
                   opts(kFix + "/pipelines/bert_cls", "cross-encoder", kDir + "/cls_train.tsv")),
               lmf::ValueError);
  EXPECT_THROW(evaluate_model(opts(kFix + "/pipelines/bert_mlm", "", "", kDir + "/cls_eval.tsv")),
               lmf::ValueError);
}

}  // namespace

namespace {

TEST(FinetuneObjective, MultipleChoiceFeaturesLossAndEvaluate) {
  const json g = [] {
    std::ifstream in(kDir + "/goldens.json");
    return json::parse(in)["swag"];
  }();
  const auto rows = read_multiple_choice(kDir + "/swag.csv");
  ASSERT_EQ(rows.size(), g["labels"].size());
  lmf::tok::Tokenizer tok = lmf::tok::Tokenizer::from_pretrained(kDir + "/bert_mc");
  const auto f = multiple_choice_features(tok, rows, g["max_length"].get<int64_t>());
  for (size_t i = 0; i < f.size(); ++i) {
    EXPECT_EQ(f[i].label, g["labels"][i].get<int64_t>());
    ASSERT_EQ(f[i].choices.size(), 4u);
    for (size_t c = 0; c < 4; ++c) {
      EXPECT_EQ(f[i].choices[c].input_ids, g["input_ids"][i][c].get<std::vector<int32_t>>());
      EXPECT_EQ(f[i].choices[c].token_type_ids,
                g["token_type_ids"][i][c].get<std::vector<int32_t>>());
    }
  }
  auto obj = make_finetune_objective(
      opts(kDir + "/bert_mc", "multiple-choice", kDir + "/swag.csv", kDir + "/swag.csv"));
  EXPECT_NEAR(batch_loss(*obj), g["loss"].get<double>(), 1e-4);
  expect_metrics(obj->evaluate(), g["eval"]);
  ChoiceColumns bad;
  bad.endings = {"ending0", "ending9"};
  EXPECT_THROW(read_multiple_choice(kDir + "/swag.csv", bad), lmf::ValueError);
}

}  // namespace
