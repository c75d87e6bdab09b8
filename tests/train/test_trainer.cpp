// The generic trainer: HF step arithmetic and lr schedule, accumulation, length-grouped sampling,
// early stopping, best model, checkpoint rotation and layout, and bit-exact resume (also after
// kill -9 of a child process that re-executes this binary).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <thread>

#include "lmforge/core/error.h"
#include "lmforge/core/runtime.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/models/bert.h"
#include "lmforge/nn/layers.h"
#include "lmforge/ops/ops.h"
#include "lmforge/train/trainer.h"

extern char** environ;

using namespace lmf;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / fmt::format("lmf_trainer_{}_{}", ::getpid(), name);
  fs::remove_all(d);
  return d;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void save_module(const nn::Module& m, const std::string& dir) {
  fs::create_directories(dir);
  io::save_safetensors(dir + "/model.safetensors", m.state_dict());
}
void load_module(nn::Module& m, const std::string& dir) {
  m.load_state_dict(io::load_safetensors(dir + "/model.safetensors"), /*strict=*/true);
}

// Softmax regression on synthetic features: fast, no dropout; records every batch it serves.
class LinearObjective : public train::Objective {
 public:
  static constexpr int64_t kDim = 6, kClasses = 3;
  explicit LinearObjective(int64_t n, std::vector<int64_t> lengths = {}) : n_(n) {
    manual_seed(3);
    model_ = std::make_shared<nn::Linear>(kDim, kClasses);
    Generator g(5);
    for (int64_t i = 0; i < n + 32; ++i) {
      for (int64_t d = 0; d < kDim; ++d) x_.push_back(static_cast<float>(g.normal()));
      const float* r = x_.data() + i * kDim;
      y_.push_back(r[0] + r[1] > 0.5 ? 0 : (r[2] > 0 ? 1 : 2));
    }
    lengths_ = std::move(lengths);
    if (lengths_.empty())
      for (int64_t i = 0; i < n; ++i) lengths_.push_back(1 + i % 7);
  }
  train::NamedTensors parameters() const override { return model_->named_parameters(); }
  void set_training(bool on) override { model_->train(on); }
  int64_t num_examples() const override { return n_; }
  int64_t example_length(int64_t i) const override { return lengths_.at(i); }

  Tensor batch_loss(int64_t first, std::span<const int64_t> idx) const {
    std::vector<float> xs;
    std::vector<int64_t> ys;
    for (int64_t i : idx) {
      xs.insert(xs.end(), x_.begin() + (first + i) * kDim, x_.begin() + (first + i + 1) * kDim);
      ys.push_back(y_[first + i]);
    }
    const auto b = static_cast<int64_t>(idx.size());
    return cross_entropy(model_->forward(Tensor::from_vector(xs, {b, kDim})),
                         Tensor::from_vector(ys, {b}));
  }
  BatchLoss loss(std::span<const int64_t> idx, Generator&) override {
    batches.emplace_back(idx.begin(), idx.end());
    int64_t tokens = 0;
    for (int64_t i : idx) tokens += lengths_[i];
    return {batch_loss(0, idx), tokens, {{"examples", static_cast<double>(idx.size())}}};
  }
  train::Metrics evaluate() override {
    ++evaluations;
    if (!scripted_eval.empty()) return {{"eval_loss", scripted_eval.at(evaluations - 1)}};
    std::vector<int64_t> idx(32);
    std::iota(idx.begin(), idx.end(), 0);
    return {{"eval_loss", batch_loss(n_, idx).item()}};
  }
  void save_pretrained(const std::string& dir) const override { save_module(*model_, dir); }
  void load_pretrained(const std::string& dir) override { load_module(*model_, dir); }

  std::shared_ptr<nn::Linear> model_;
  std::vector<std::vector<int64_t>> batches;
  std::vector<double> scripted_eval;
  int64_t evaluations = 0;

 private:
  int64_t n_;
  std::vector<float> x_;
  std::vector<int64_t> y_;
  std::vector<int64_t> lengths_;
};

// A tiny BERT sequence classifier (hidden 32, 2 layers) with dropout, on token sequences whose
// label is decided by which half of the vocabulary its tokens come from; the batch rng randomly
// replaces later tokens (exercising the sampling generator), dropout exercises the default
// generator.
class BertObjective : public train::Objective {
 public:
  static constexpr int64_t kVocab = 40, kEval = 32;
  BertObjective(int64_t n, double dropout) : n_(n) {
    models::BertConfig c;
    c.vocab_size = kVocab;
    c.hidden_size = 32;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.intermediate_size = 64;
    c.max_position_embeddings = 32;
    c.hidden_dropout_prob = dropout;
    c.attention_probs_dropout_prob = dropout;
    c.num_labels = 2;
    manual_seed(7);
    model_ = models::create_model(c, "BertForSequenceClassification");
    model_->train();
    Generator g(11);
    for (int64_t i = 0; i < n + kEval; ++i) {
      std::vector<int64_t> s = {1};
      const int64_t len = 3 + static_cast<int64_t>(g.next_u64() % 10), label = i % 2;
      const int64_t half = (kVocab - 2) / 2;
      for (int64_t t = 1; t < len; ++t)
        s.push_back(2 + label * half + static_cast<int64_t>(g.next_u64() % half));
      labels_.push_back(label);
      seqs_.push_back(std::move(s));
    }
  }
  train::NamedTensors parameters() const override { return model_->named_parameters(); }
  void set_training(bool on) override { model_->train(on); }
  int64_t num_examples() const override { return n_; }
  int64_t example_length(int64_t i) const override {
    return static_cast<int64_t>(seqs_.at(i).size());
  }

  models::ModelOutput run(int64_t first, std::span<const int64_t> idx, Generator* rng,
                          int64_t* tokens) const {
    int64_t t_max = 0;
    for (int64_t i : idx) t_max = std::max<int64_t>(t_max, seqs_[first + i].size());
    const auto b = static_cast<int64_t>(idx.size());
    std::vector<int64_t> ids(b * t_max, 0), mask(b * t_max, 0), labels;
    for (int64_t r = 0; r < b; ++r) {
      const auto& s = seqs_[first + idx[r]];
      for (size_t t = 0; t < s.size(); ++t) {
        int64_t tok = s[t];
        if (rng && t >= 2 && rng->uniform() < 0.15)
          tok = 2 + static_cast<int64_t>(rng->next_u64() % (kVocab - 2));
        ids[r * t_max + t] = tok;
        mask[r * t_max + t] = 1;
      }
      if (tokens) *tokens += static_cast<int64_t>(s.size());
      labels.push_back(labels_[first + idx[r]]);
    }
    models::EncoderInputs in;
    in.input_ids = Tensor::from_vector(ids, {b, t_max});
    in.attention_mask = Tensor::from_vector(mask, {b, t_max});
    models::EncoderLabels lab;
    lab.labels = Tensor::from_vector(labels, {b});
    return model_->forward(in, lab);
  }
  BatchLoss loss(std::span<const int64_t> idx, Generator& rng) override {
    ++calls;
    if (slow_after >= 0 && calls > slow_after)
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    int64_t tokens = 0;
    auto out = run(0, idx, &rng, &tokens);
    return {out.loss, tokens, {}};
  }
  train::Metrics evaluate() override {
    std::vector<int64_t> idx(kEval);
    std::iota(idx.begin(), idx.end(), 0);
    auto out = run(n_, idx, nullptr, nullptr);
    const auto logits = out.logits.to_vector<float>();
    int64_t right = 0;
    for (int64_t r = 0; r < kEval; ++r)
      right += (logits[2 * r + 1] > logits[2 * r]) == (labels_[n_ + r] == 1);
    return {{"eval_loss", out.loss.item()}, {"eval_accuracy", static_cast<double>(right) / kEval}};
  }
  void save_pretrained(const std::string& dir) const override { save_module(*model_, dir); }
  void load_pretrained(const std::string& dir) override { load_module(*model_, dir); }

  std::unique_ptr<models::EncoderModel> model_;
  int64_t calls = 0;
  int64_t slow_after = -1;  // the kill test's child sleeps in every batch after this many

 private:
  int64_t n_;
  std::vector<std::vector<int64_t>> seqs_;
  std::vector<int64_t> labels_;
};

train::TrainerOptions base_options(const fs::path& dir) {
  train::TrainerOptions o;
  o.output_dir = dir.string();
  o.progress = false;
  o.save_steps = 0;
  o.logging_steps = 1;
  return o;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream f(p);
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

void expect_same_parameters(const train::Objective& a, const train::Objective& b) {
  const auto pa = a.parameters(), pb = b.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    ASSERT_EQ(pa[i].first, pb[i].first);
    const auto va = pa[i].second.to_vector<float>(), vb = pb[i].second.to_vector<float>();
    ASSERT_EQ(va.size(), vb.size());
    EXPECT_EQ(std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)), 0)
        << "parameter " << pa[i].first << " differs";
  }
}

std::set<std::string> checkpoint_names(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) out.insert(e.path().filename().string());
  return out;
}

}  // namespace

TEST(Trainer, StepArithmeticFollowsHuggingFace) {
  const fs::path dir = fresh_dir("steps");
  auto o = base_options(dir);
  o.per_device_train_batch_size = 8;
  o.gradient_accumulation_steps = 2;
  o.num_train_epochs = 3;
  // 50 examples: 7 batches (the last holds 2), ceil(7 / 2) = 4 updates per epoch.
  auto p = train::plan_training(o, 50);
  EXPECT_EQ(p.batches_per_epoch, 7);
  EXPECT_EQ(p.updates_per_epoch, 4);
  EXPECT_EQ(p.max_steps, 12);
  EXPECT_EQ(p.num_epochs, 3);
  o.num_train_epochs = 2.5;
  p = train::plan_training(o, 50);
  EXPECT_EQ(p.max_steps, 10);
  EXPECT_EQ(p.num_epochs, 3);
  o.max_steps = 5;
  o.warmup_ratio = 0.5;
  p = train::plan_training(o, 50);
  EXPECT_EQ(p.max_steps, 5);
  EXPECT_EQ(p.num_epochs, 2);
  EXPECT_EQ(p.warmup_steps, 3);  // ceil(0.5 * 5)
  o.warmup_steps = 1;
  EXPECT_EQ(train::plan_training(o, 50).warmup_steps, 1);
  EXPECT_EQ(train::plan_training(o, 3).updates_per_epoch, 1);  // at least one

  o = base_options(dir);
  o.per_device_train_batch_size = 8;
  o.gradient_accumulation_steps = 2;
  o.num_train_epochs = 2.5;
  LinearObjective obj(50);
  auto r = train::train(obj, o);
  EXPECT_EQ(r.global_step, 10);
  // Steps 9 and 10 are in the third epoch: 4 micro-batches of 7 done -> epoch 2 + 4/7 (HF).
  EXPECT_DOUBLE_EQ(r.epoch, 2.0 + 4.0 / 7.0);
  ASSERT_EQ(obj.batches.size(), 7u + 7u + 4u);
  EXPECT_EQ(obj.batches[6].size(), 2u);  // last partial batch kept
  std::set<int64_t> epoch0;
  for (int b = 0; b < 7; ++b) epoch0.insert(obj.batches[b].begin(), obj.batches[b].end());
  EXPECT_EQ(epoch0.size(), 50u);
  fs::remove_all(dir);
}

TEST(Trainer, LearningRateScheduleMatchesHuggingFaceFormulas) {
  const fs::path dir = fresh_dir("lr");
  auto o = base_options(dir);
  o.per_device_train_batch_size = 4;
  o.max_steps = 12;
  o.learning_rate = 1e-2;
  o.warmup_ratio = 0.25;  // ceil(3.0) = 3 warmup steps
  LinearObjective obj(40);
  std::vector<double> lrs, steps;
  auto r = train::train(obj, o, [&](const train::Metrics& m) {
    if (!m.count("learning_rate")) return;
    lrs.push_back(m.at("learning_rate"));
    steps.push_back(m.at("step"));
    EXPECT_EQ(m.at("examples"), 4.0);  // BatchLoss.parts are averaged into the log
    EXPECT_GT(m.at("grad_norm"), 0.0);
  });
  EXPECT_EQ(r.global_step, 12);
  ASSERT_EQ(lrs.size(), 12u);
  // get_linear_schedule_with_warmup: the lr used by step s (1-based) is lr * f(s - 1).
  for (int s = 1; s <= 12; ++s) {
    const int k = s - 1, w = 3, total = 12;
    const double f = k < w ? static_cast<double>(k) / w
                           : std::max(0.0, static_cast<double>(total - k) / (total - w));
    EXPECT_NEAR(lrs[s - 1], 1e-2 * f, 1e-15) << "step " << s;
    EXPECT_EQ(steps[s - 1], s);
  }
  // cosine with warmup_steps overriding the ratio
  fs::remove_all(dir);
  o.lr_scheduler_type = "cosine";
  o.warmup_steps = 2;
  lrs.clear();
  LinearObjective obj2(40);
  train::train(obj2, o, [&](const train::Metrics& m) {
    if (m.count("learning_rate")) lrs.push_back(m.at("learning_rate"));
  });
  ASSERT_EQ(lrs.size(), 12u);
  for (int s = 1; s <= 12; ++s) {
    const int k = s - 1;
    const double f =
        k < 2 ? k / 2.0 : 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(k - 2) / 10.0));
    EXPECT_NEAR(lrs[s - 1], 1e-2 * f, 1e-15) << "step " << s;
  }
  fs::remove_all(dir);
}

TEST(Trainer, GradientAccumulationEqualsTheLargerBatch) {
  const fs::path d1 = fresh_dir("acc1"), d2 = fresh_dir("acc2");
  auto o = base_options(d1);
  o.num_train_epochs = 2;
  o.learning_rate = 1e-2;
  o.per_device_train_batch_size = 4;
  o.gradient_accumulation_steps = 2;
  LinearObjective a(32);
  auto ra = train::train(a, o);
  o.output_dir = d2.string();
  o.per_device_train_batch_size = 8;
  o.gradient_accumulation_steps = 1;
  LinearObjective b(32);
  auto rb = train::train(b, o);
  EXPECT_EQ(ra.global_step, 8);
  EXPECT_EQ(rb.global_step, 8);
  EXPECT_NEAR(ra.train_loss, rb.train_loss, 1e-6);
  const auto pa = a.parameters(), pb = b.parameters();
  double max_diff = 0, max_change = 0;
  LinearObjective init(32);
  const auto p0 = init.parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    const auto va = pa[i].second.to_vector<float>(), vb = pb[i].second.to_vector<float>(),
               v0 = p0[i].second.to_vector<float>();
    for (size_t k = 0; k < va.size(); ++k) {
      max_diff = std::max(max_diff, static_cast<double>(std::abs(va[k] - vb[k])));
      max_change = std::max(max_change, static_cast<double>(std::abs(va[k] - v0[k])));
    }
  }
  EXPECT_LT(max_diff, 1e-6);
  EXPECT_GT(max_change, 1e-3);  // the parameters did move
  fs::remove_all(d1);
  fs::remove_all(d2);
}

TEST(Trainer, GroupByLengthBatchesSimilarLengthsAndServesEveryExampleOnce) {
  const int64_t n = 203;
  std::vector<int64_t> lengths(n);
  Generator g(9);
  for (auto& l : lengths) l = 1 + static_cast<int64_t>(g.next_u64() % 100);
  train::TrainerOptions o;
  o.per_device_train_batch_size = 4;
  o.seed = 1;
  auto spread = [&](const std::vector<int64_t>& order) {
    double total = 0;
    int64_t batches = 0;
    for (int64_t s = 0; s < n; s += 4, ++batches) {
      int64_t lo = 1000, hi = 0;
      for (int64_t i = s; i < std::min(n, s + 4); ++i)
        lo = std::min(lo, lengths[order[i]]), hi = std::max(hi, lengths[order[i]]);
      total += static_cast<double>(hi - lo);
    }
    return total / static_cast<double>(batches);
  };
  const auto random_order = train::epoch_order(lengths, o, 0);
  o.group_by_length = true;
  const auto e0 = train::epoch_order(lengths, o, 0), e1 = train::epoch_order(lengths, o, 1);
  EXPECT_EQ(e0, train::epoch_order(lengths, o, 0));  // reproducible
  EXPECT_NE(e0, e1);                                 // reshuffled per epoch
  EXPECT_LT(spread(e0), 0.25 * spread(random_order));
  EXPECT_EQ(lengths[e0[0]], *std::max_element(lengths.begin(), lengths.end()));  // longest first

  // Through the trainer: every example exactly once per epoch, including the partial batch.
  const fs::path dir = fresh_dir("group");
  auto to = base_options(dir);
  to.per_device_train_batch_size = 4;
  to.group_by_length = true;
  to.num_train_epochs = 2;
  to.logging_steps = 0;
  LinearObjective obj(n, lengths);
  train::train(obj, to);
  ASSERT_EQ(obj.batches.size(), 2u * 51u);
  for (int e = 0; e < 2; ++e) {
    std::vector<int64_t> seen;
    for (int b = 0; b < 51; ++b)
      seen.insert(seen.end(), obj.batches[e * 51 + b].begin(), obj.batches[e * 51 + b].end());
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(n);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all) << "epoch " << e;
  }
  fs::remove_all(dir);
}

TEST(Trainer, LossFallsAndLogsAreWritten) {
  const fs::path dir = fresh_dir("falls");
  auto o = base_options(dir);
  o.per_device_train_batch_size = 8;
  o.num_train_epochs = 4;
  o.learning_rate = 3e-3;
  o.warmup_ratio = 0.1;
  o.weight_decay = 0.01;
  o.logging_steps = 4;
  o.progress = true;  // the bar goes to stderr
  BertObjective obj(96, 0.1);
  auto r = train::train(obj, o);
  EXPECT_EQ(r.global_step, 48);
  EXPECT_DOUBLE_EQ(r.epoch, 4.0);
  const auto logs = read_jsonl(dir / "metrics.jsonl");
  std::vector<double> losses, eval_losses;
  for (const auto& j : logs) {
    if (j.contains("loss")) {
      losses.push_back(j["loss"]);
      for (const char* k : {"step", "epoch", "learning_rate", "grad_norm", "tokens_per_second"})
        EXPECT_TRUE(j.contains(k)) << k;
      EXPECT_GT(j["tokens_per_second"].get<double>(), 0);
    }
    if (j.contains("eval_loss")) eval_losses.push_back(j["eval_loss"]);
  }
  ASSERT_EQ(losses.size(), 12u);
  ASSERT_EQ(eval_losses.size(), 4u);  // once per epoch
  EXPECT_LT(losses.back(), 0.6 * losses.front());
  EXPECT_LT(eval_losses.back(), eval_losses.front());
  EXPECT_GT(r.final_eval.at("eval_accuracy"), 0.8);
  EXPECT_TRUE(logs.back().contains("train_runtime"));
  const std::string html = read_file(dir / "training_curves.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("eval_accuracy"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // no external refs
  EXPECT_TRUE(fs::exists(dir / "model.safetensors"));
  fs::remove_all(dir);
}

TEST(Trainer, EarlyStoppingStopsAndTheBestModelIsRestored) {
  const fs::path dir = fresh_dir("early");
  auto o = base_options(dir);
  o.per_device_train_batch_size = 4;
  o.max_steps = 20;
  o.learning_rate = 1e-2;
  o.eval_steps = 1;
  o.early_stopping_patience = 2;
  o.load_best_model_at_end = true;
  LinearObjective obj(40);
  obj.scripted_eval = {1.0, 0.9, 0.95, 0.93, 0.1, 0.1};
  auto r = train::train(obj, o);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(r.global_step, 4);  // evaluations 3 and 4 did not beat 0.9
  EXPECT_EQ(obj.evaluations, 4);
  ASSERT_TRUE(r.best_metric.has_value());
  EXPECT_EQ(*r.best_metric, 0.9);
  EXPECT_EQ(fs::path(r.best_model_checkpoint).filename(), "checkpoint-2");
  // The final model is the best checkpoint's weights.
  EXPECT_EQ(read_file(dir / "model.safetensors"),
            read_file(dir / "checkpoint-2" / "model.safetensors"));
  fs::remove_all(dir);
}

TEST(Trainer, SaveTotalLimitKeepsTheNewestAndTheBest) {
  const fs::path dir = fresh_dir("rotate");
  auto o = base_options(dir);
  o.per_device_train_batch_size = 4;
  o.max_steps = 10;
  o.save_steps = 2;
  o.save_total_limit = 2;
  LinearObjective a(40);
  train::train(a, o);
  std::set<std::string> want = {"checkpoint-8", "checkpoint-10"};
  EXPECT_EQ(checkpoint_names(dir), want);

  fs::remove_all(dir);
  o.eval_steps = 2;
  o.load_best_model_at_end = true;
  LinearObjective b(40);
  b.scripted_eval = {0.9, 0.5, 0.7, 0.8, 0.6};  // best at step 4
  auto r = train::train(b, o);
  want = {"checkpoint-4", "checkpoint-10"};
  EXPECT_EQ(checkpoint_names(dir), want);
  EXPECT_EQ(fs::path(r.best_model_checkpoint).filename(), "checkpoint-4");
  EXPECT_EQ(read_file(dir / "model.safetensors"),
            read_file(dir / "checkpoint-4" / "model.safetensors"));
  fs::remove_all(dir);
}

TEST(Trainer, CheckpointLayoutIsCompleteAndTemporaryFoldersAreIgnored) {
  const fs::path dir = fresh_dir("layout");
  auto o = base_options(dir);
  o.per_device_train_batch_size = 4;
  o.max_steps = 6;
  o.save_steps = 3;
  o.save_total_limit = 0;
  LinearObjective a(40);
  train::train(a, o);
  for (const char* c : {"checkpoint-3", "checkpoint-6"}) {
    for (const char* f : {"model.safetensors", "optimizer.safetensors", "trainer_state.json"})
      EXPECT_TRUE(fs::exists(dir / c / f)) << c << "/" << f;
  }
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_NE(e.path().filename().string()[0], '.') << "leftover " << e.path();
  const auto st = nlohmann::json::parse(read_file(dir / "checkpoint-3" / "trainer_state.json"));
  EXPECT_EQ(st["global_step"], 3);
  EXPECT_EQ(st["step_in_epoch"], 3);
  for (const char* k : {"rng", "scheduler", "optimizer_scalars", "log_history", "config",
                        "early_stopping_patience_counter", "best_metric", "epoch"})
    EXPECT_TRUE(st.contains(k)) << k;
  const auto opt = io::load_safetensors((dir / "checkpoint-3" / "optimizer.safetensors").string());
  EXPECT_TRUE(opt.count("state.0.exp_avg"));
  EXPECT_TRUE(opt.count("state.0.exp_avg_sq"));

  // A crash mid-write leaves only a temporary folder: resume ignores (and removes) it.
  fs::create_directories(dir / ".tmp-checkpoint-9");
  std::ofstream(dir / ".tmp-checkpoint-9" / "model.safetensors") << "half";
  o.resume = true;
  o.max_steps = 8;
  LinearObjective b(40);
  auto r = train::train(b, o);
  EXPECT_EQ(r.global_step, 8);
  EXPECT_EQ(b.batches.size(), 2u);  // continued from checkpoint-6
  EXPECT_FALSE(fs::exists(dir / ".tmp-checkpoint-9"));
  fs::remove_all(dir);
}

TEST(Trainer, ClearErrorsForBadRunsAndOptions) {
  const fs::path dir = fresh_dir("errors");
  auto o = base_options(dir);
  o.per_device_train_batch_size = 4;
  o.max_steps = 4;
  LinearObjective obj(20);
  o.resume = true;
  EXPECT_THROW(train::train(obj, o), ValueError);  // nothing to resume from
  o.resume = false;
  LinearObjective empty(0);
  EXPECT_THROW(train::train(empty, o), ValueError);
  for (auto bad : {std::function<void(train::TrainerOptions&)>(
                       [](auto& x) { x.per_device_train_batch_size = 0; }),
                   std::function<void(train::TrainerOptions&)>(
                       [](auto& x) { x.lr_scheduler_type = "triangle"; }),
                   std::function<void(train::TrainerOptions&)>([](auto& x) { x.warmup_ratio = 2; }),
                   std::function<void(train::TrainerOptions&)>([](auto& x) { x.output_dir = ""; }),
                   std::function<void(train::TrainerOptions&)>(
                       [](auto& x) { x.max_steps = -1, x.num_train_epochs = 0; })}) {
    auto b = o;
    bad(b);
    EXPECT_THROW(train::train(obj, b), ValueError);
  }
  // output_dir is a file
  fs::create_directories(dir);
  std::ofstream(dir / "file") << "x";
  auto f = o;
  f.output_dir = (dir / "file").string();
  EXPECT_THROW(train::train(obj, f), IoError);
  fs::remove_all(dir);

  // A finished run with checkpoints: a fresh run refuses to mix with it; a resume with another
  // batch size says what differs.
  o.save_steps = 2;
  train::train(obj, o);
  LinearObjective again(20);
  EXPECT_THROW(train::train(again, o), ValueError);
  o.resume = true;
  o.per_device_train_batch_size = 5;
  try {
    train::train(again, o);
    ADD_FAILURE() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("per_device_train_batch_size 4 -> 5"), std::string::npos)
        << e.what();
  }
  LinearObjective more(24);
  o.per_device_train_batch_size = 4;
  EXPECT_THROW(train::train(more, o), ValueError);  // number of examples changed
  fs::remove_all(dir);
}

namespace {
train::TrainerOptions resume_options(const fs::path& dir) {
  auto o = base_options(dir);
  o.per_device_train_batch_size = 8;
  o.learning_rate = 3e-3;
  o.weight_decay = 0.01;
  o.lr_scheduler_type = "constant_with_warmup";
  o.warmup_steps = 3;
  o.logging_steps = 2;
  o.eval_steps = 5;
  o.save_steps = 4;
  o.group_by_length = true;
  return o;
}
}  // namespace

TEST(Trainer, ResumeToMoreStepsEqualsAStraightRun) {
  const fs::path d1 = fresh_dir("resume1"), d2 = fresh_dir("resume2");
  auto o = resume_options(d1);
  o.max_steps = 10;  // stops mid-epoch (6 updates per epoch)
  BertObjective a(44, 0.1);
  train::train(a, o);
  o.max_steps = 20;
  o.resume = true;
  BertObjective a2(44, 0.1);
  auto ra = train::train(a2, o);
  EXPECT_EQ(a2.calls, 10);

  auto s = resume_options(d2);
  s.max_steps = 20;
  BertObjective b(44, 0.1);
  auto rb = train::train(b, s);
  EXPECT_EQ(ra.global_step, 20);
  EXPECT_EQ(ra.train_loss, rb.train_loss);
  expect_same_parameters(a2, b);
  fs::remove_all(d1);
  fs::remove_all(d2);
}

namespace {
train::TrainerOptions kill_options(const fs::path& dir) {
  auto o = resume_options(dir);
  o.lr_scheduler_type = "linear";
  o.warmup_ratio = 0.1;
  o.warmup_steps = 0;
  o.max_steps = 24;
  o.gradient_accumulation_steps = 2;
  o.save_total_limit = 2;
  return o;
}
constexpr const char* kChildEnv = "LMF_TRAINER_KILL_TEST_DIR";
}  // namespace

// Not a test on its own: the child process of Trainer.KillNineThenResumeIsBitIdentical.
TEST(TrainerKillChild, TrainsUntilKilled) {
  const char* dir = std::getenv(kChildEnv);
  if (dir == nullptr) GTEST_SKIP() << "runs only as the child of the kill -9 test";
  BertObjective obj(44, 0.1);
  obj.slow_after = 16;  // fast to checkpoint-8 (16 micro-batches), then 0.2 s per batch
  train::train(obj, kill_options(dir));
}

TEST(Trainer, KillNineThenResumeIsBitIdentical) {
  const fs::path killed = fresh_dir("killed"), straight = fresh_dir("straight");
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  env.push_back(std::string(kChildEnv) + "=" + killed.string());
  std::vector<char*> envp;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe", filter = "--gtest_filter=TrainerKillChild.TrainsUntilKilled";
  char* argv[] = {exe.data(), filter.data(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, envp.data()), 0);
  posix_spawn_file_actions_destroy(&fa);

  const auto t0 = std::chrono::steady_clock::now();
  bool exited = false;
  while (!fs::exists(killed / "checkpoint-8" / "trainer_state.json")) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(60)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  ASSERT_FALSE(exited) << "the child exited before it could be killed";
  ASSERT_TRUE(fs::exists(killed / "checkpoint-8" / "trainer_state.json")) << "child too slow";
  ASSERT_FALSE(fs::exists(killed / "model.safetensors")) << "the child finished before the kill";

  auto o = kill_options(killed);
  o.resume = true;
  BertObjective resumed(44, 0.1);
  auto rr = train::train(resumed, o);
  EXPECT_LT(resumed.calls, 48);  // it did resume rather than start over

  BertObjective whole(44, 0.1);
  auto rw = train::train(whole, kill_options(straight));
  EXPECT_EQ(rr.global_step, 24);
  EXPECT_EQ(rr.train_loss, rw.train_loss);
  expect_same_parameters(resumed, whole);
  EXPECT_EQ(read_file(killed / "model.safetensors"), read_file(straight / "model.safetensors"));
  // The logged training losses agree too (metrics.jsonl was rebuilt from the checkpoint).
  auto losses = [](const fs::path& d) {
    std::vector<double> v;
    for (const auto& j : read_jsonl(d / "metrics.jsonl"))
      if (j.contains("loss")) v.push_back(j["loss"]);
    return v;
  };
  EXPECT_EQ(losses(killed), losses(straight));
  fs::remove_all(killed);
  fs::remove_all(straight);
}
