// Fine-tuning smoke test: ~30 hand-written AdamW steps on each objective's tiny data lower the
// training loss (forward, backward and the optimizer through the Objective interface).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <numeric>

#include "lmforge/core/autograd.h"
#include "lmforge/optim/adamw.h"
#include "lmforge/train/finetune.h"

namespace {

using namespace lmf;
using namespace lmf::train;

const std::string kFix = LMF_FIXTURES_DIR;

double full_loss(FinetuneObjective& obj) {
  NoGradGuard g;
  obj.set_training(false);
  std::vector<int64_t> all(obj.num_examples());
  std::iota(all.begin(), all.end(), 0);
  Generator rng(0);
  return obj.loss(all, rng).loss.item();
}

// Returns (loss before, loss after) `steps` AdamW steps on batches of `batch` examples.
std::pair<double, double> run_steps(FinetuneObjective& obj, int steps, int64_t batch, double lr) {
  const double before = full_loss(obj);
  std::vector<Tensor> params;
  for (const auto& [n, t] : obj.parameters()) params.push_back(t);
  optim::AdamWOptions ao;
  ao.lr = lr;
  ao.weight_decay = 0.0;
  optim::AdamW opt(params, ao);
  Generator rng(7);
  obj.set_training(true);
  const int64_t n = obj.num_examples();
  for (int s = 0; s < steps; ++s) {
    std::vector<int64_t> idx;
    for (int64_t k = 0; k < std::min(batch, n); ++k) idx.push_back((s * batch + k) % n);
    opt.zero_grad();
    obj.loss(idx, rng).loss.backward();
    opt.step();
  }
  return {before, full_loss(obj)};
}

FinetuneOptions opts(const std::string& model, const std::string& task, const std::string& data) {
  FinetuneOptions o;
  o.model_dir = kFix + model;
  o.task = task;
  o.train_file = kFix + "/finetune/" + data;
  o.max_length = 48;
  o.doc_stride = 16;
  return o;
}

TEST(FinetuneSmoke, ThirtyAdamWStepsLowerEveryObjectivesLoss) {
  struct Case {
    const char *model, *task, *data;
  };
  const Case cases[] = {{"/pipelines/bert_cls", "classification", "cls_train.tsv"},
                        {"/pipelines/bert_cls_multi", "classification", "multi.jsonl"},
                        {"/finetune/bert_reg", "regression", "sts.csv"},
                        {"/pipelines/bert_ner", "ner", "ner_train.conll"},
                        {"/pipelines/bert_qa", "qa", "squad.json"},
                        {"/pipelines/bert_cls", "bi-encoder", "sts.csv"},
                        {"/finetune/bert_mc", "multiple-choice", "swag.csv"}};
  for (const auto& c : cases) {
    manual_seed(0);  // dropout draws from the default generator
    auto obj = make_finetune_objective(opts(c.model, c.task, c.data));
    const auto t0 = std::chrono::steady_clock::now();
    const auto [before, after] = run_steps(*obj, 30, 8, 2e-3);
    std::printf("%s %s: %.3f -> %.3f in %.2f s\n", c.task, c.data, before, after,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    EXPECT_LT(after, 0.8 * before) << c.task << " " << c.data << ": " << before << " -> " << after;
  }
}

}  // namespace
