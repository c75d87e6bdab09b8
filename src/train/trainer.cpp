// The generic training loop (HF Trainer semantics of transformers 5.x where they exist): sampler,
// AdamW + schedule, accumulation, clipping, logging, evaluation, best model, early stopping,
// atomic checkpoints and bit-exact resume. See include/lmforge/train/trainer.h.
#include "lmforge/train/trainer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <regex>
#include <set>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/json.h"
#include "lmforge/ops/ops.h"
#include "lmforge/optim/adamw.h"
#include "lmforge/optim/grad_clip.h"
#include "lmforge/optim/lr_scheduler.h"
#include "lmforge/train/report.h"

namespace lmf::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFormat = "lmforge-trainer-state-1";
constexpr uint64_t kBatchRngTag = 0x8000000000000000ULL;  // never an epoch number

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
// A seed derived from the run seed and a tag (the epoch for the sampler, kBatchRngTag for the
// per-batch sampling generator), so the streams are independent and reproducible.
uint64_t derive_seed(uint64_t seed, uint64_t tag) {
  return splitmix64(seed ^ splitmix64(tag));
}

uint64_t fingerprint(std::span<const int64_t> lengths) {  // FNV-1a over the example lengths
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int64_t v : lengths)
    for (int b = 0; b < 8; ++b)
      h = (h ^ ((static_cast<uint64_t>(v) >> (8 * b)) & 0xff)) * 0x100000001b3ULL;
  return h;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// HF prefixes "eval_" when the metric name lacks it.
std::string best_metric_key(const TrainerOptions& o) {
  return o.metric_for_best_model.rfind("eval_", 0) == 0 ? o.metric_for_best_model
                                                        : "eval_" + o.metric_for_best_model;
}
bool greater_is_better(const TrainerOptions& o) {
  return o.greater_is_better.value_or(!ends_with(o.metric_for_best_model, "loss"));
}

std::function<double(int64_t)> lr_factor(const std::string& type, int64_t warmup, int64_t total) {
  if (type == "linear")
    return [=](int64_t s) { return optim::linear_warmup_factor(s, warmup, total); };
  if (type == "cosine")
    return [=](int64_t s) { return optim::cosine_warmup_factor(s, warmup, total); };
  if (type == "constant") return optim::constant_factor;
  // constant_with_warmup: transformers' get_constant_schedule_with_warmup.
  return [=](int64_t s) {
    return s < warmup ? static_cast<double>(s) / static_cast<double>(std::max<int64_t>(1, warmup))
                      : 1.0;
  };
}

// ---- files --------------------------------------------------------------------------------------

void fsync_path(const fs::path& p, bool dir) {
  const int fd = ::open(p.c_str(), (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) fail<IoError>("cannot open '{}' to sync it: {}", p.string(), std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail<IoError>("fsync of '{}' failed: {}", p.string(), std::strerror(errno));
}

void fsync_tree(const fs::path& root) {
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file())
      fsync_path(e.path(), false);
    else if (e.is_directory())
      fsync_path(e.path(), true);
  }
  fsync_path(root, true);
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail<IoError>("cannot write '{}': check the folder is writable", path.string());
  f << text;
  f.flush();
  if (!f) fail<IoError>("writing '{}' failed (disk full?)", path.string());
}

// checkpoint-<step> folders (complete or not) of `dir`, by step.
std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& dir) {
  static const std::regex re("checkpoint-([0-9]{1,18})");
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (e.is_directory() && std::regex_match(name, m, re))
      out.emplace_back(std::stoll(m[1]), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Leftovers of an interrupted checkpoint write or deletion: temporary folders are removed; an
// ".old-checkpoint-N" whose replacement never arrived is put back.
void clean_leftovers(const fs::path& dir) {
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(dir)) entries.push_back(e.path());
  for (const fs::path& p : entries) {
    const std::string name = p.filename().string();
    if (name.rfind(".tmp-checkpoint-", 0) == 0 || name.rfind(".del-checkpoint-", 0) == 0) {
      fs::remove_all(p);
    } else if (name.rfind(".old-checkpoint-", 0) == 0) {
      const fs::path target = dir / name.substr(5);
      if (fs::exists(target / kStateFile))
        fs::remove_all(p);
      else {
        fs::remove_all(target);
        fs::rename(p, target);
      }
    }
  }
}

void remove_checkpoint(const fs::path& p) {
  const fs::path doomed = p.parent_path() / (".del-" + p.filename().string());
  fs::remove_all(doomed);
  fs::rename(p, doomed);  // a half-deleted folder is never taken for a checkpoint
  fs::remove_all(doomed);
}

// ---- state serialisation ------------------------------------------------------------------------

json rng_to_json(const Generator::State& s) {
  uint64_t spare_bits = 0;
  std::memcpy(&spare_bits, &s.spare, sizeof spare_bits);
  return {{"s", {s.s[0], s.s[1], s.s[2], s.s[3]}},
          {"spare_bits", spare_bits},
          {"has_spare", s.has_spare}};
}

Generator::State rng_from_json(const json& j) {
  Generator::State s{};
  for (int i = 0; i < 4; ++i) s.s[i] = j.at("s").at(i).get<uint64_t>();
  const auto bits = j.at("spare_bits").get<uint64_t>();
  std::memcpy(&s.spare, &bits, sizeof bits);
  s.has_spare = j.at("has_spare").get<bool>();
  return s;
}

json entry_to_json(const Metrics& m) {
  json j = json::object();
  for (const auto& [k, v] : m) {
    if ((k == "step") && v == std::floor(v))
      j[k] = static_cast<int64_t>(v);
    else if (std::isfinite(v))
      j[k] = v;
    else
      j[k] = nullptr;  // JSON has no NaN/inf
  }
  return j;
}

Metrics entry_from_json(const json& j) {
  Metrics m;
  for (const auto& [k, v] : j.items())
    m[k] = v.is_number() ? v.get<double>() : std::numeric_limits<double>::quiet_NaN();
  return m;
}

// Everything of a run that is not in the weights or the optimizer.
struct RunState {
  int64_t global_step = 0;
  int64_t epoch_index = 0;    // the epoch in progress (0-based)
  int64_t step_in_epoch = 0;  // optimizer steps done in that epoch
  double epoch = 0;           // HF's fractional epoch
  double total_loss = 0;      // sum of the per-step losses
  double log_loss = 0;        // since the last log
  int64_t last_logged_step = 0;
  int64_t log_tokens = 0;
  std::map<std::string, std::pair<double, int64_t>> log_parts;  // sum, count
  std::optional<double> best_metric;
  int64_t best_step = -1;
  int64_t patience_counter = 0;
  bool stopped_early = false;
  Metrics last_eval;
  std::vector<Metrics> history;
};

struct RunConfig {
  int64_t num_examples = 0, batch = 0, accumulation = 0;
  uint64_t seed = 0, lengths_hash = 0;
  bool group_by_length = false;
};

json config_to_json(const RunConfig& c) {
  return {{"num_examples", c.num_examples},
          {"per_device_train_batch_size", c.batch},
          {"gradient_accumulation_steps", c.accumulation},
          {"seed", c.seed},
          {"group_by_length", c.group_by_length},
          {"example_lengths_hash", c.lengths_hash}};
}

// ValueError naming every field that differs between the checkpoint and this run.
void check_config(const json& saved, const RunConfig& now, const fs::path& ckpt) {
  const json cur = config_to_json(now);
  std::vector<std::string> diffs;
  for (const auto& [k, v] : cur.items()) {
    if (!saved.contains(k))
      diffs.push_back(fmt::format("{} (missing in the checkpoint)", k));
    else if (saved.at(k) != v)
      diffs.push_back(fmt::format("{} {} -> {}", k, saved.at(k).dump(), v.dump()));
  }
  if (!diffs.empty())
    fail<ValueError>(
        "resume: checkpoint '{}' was written by a run with a different configuration ({}); resume "
        "with the same data, batch size, accumulation, seed and group_by_length, or start a fresh "
        "run in another output_dir",
        ckpt.string(), fmt::join(diffs, "; "));
}

}  // namespace

// ---- public helpers -----------------------------------------------------------------------------

void validate_options(const TrainerOptions& o) {
  LMF_CHECK(!o.output_dir.empty(), ValueError, "trainer: output_dir is required");
  LMF_CHECK(o.per_device_train_batch_size > 0, ValueError,
            "trainer: per_device_train_batch_size must be positive, got {}",
            o.per_device_train_batch_size);
  LMF_CHECK(o.gradient_accumulation_steps > 0, ValueError,
            "trainer: gradient_accumulation_steps must be positive, got {}",
            o.gradient_accumulation_steps);
  LMF_CHECK(o.max_steps > 0 || (std::isfinite(o.num_train_epochs) && o.num_train_epochs > 0),
            ValueError, "trainer: num_train_epochs must be positive (got {}) unless max_steps > 0",
            o.num_train_epochs);
  LMF_CHECK(o.max_steps != 0, ValueError,
            "trainer: max_steps 0 trains nothing; use a positive count or -1 (use epochs)");
  LMF_CHECK(std::isfinite(o.learning_rate) && o.learning_rate >= 0, ValueError,
            "trainer: learning_rate must be a finite non-negative number, got {}", o.learning_rate);
  LMF_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0, ValueError,
            "trainer: weight_decay must be >= 0, got {}", o.weight_decay);
  LMF_CHECK(o.adam_beta1 >= 0 && o.adam_beta1 < 1 && o.adam_beta2 >= 0 && o.adam_beta2 < 1,
            ValueError, "trainer: adam betas must lie in [0, 1), got {} and {}", o.adam_beta1,
            o.adam_beta2);
  LMF_CHECK(o.adam_epsilon >= 0, ValueError, "trainer: adam_epsilon must be >= 0, got {}",
            o.adam_epsilon);
  LMF_CHECK(!std::isnan(o.max_grad_norm), ValueError, "trainer: max_grad_norm is NaN");
  static const std::set<std::string> kSchedulers = {"linear", "cosine", "constant",
                                                    "constant_with_warmup"};
  LMF_CHECK(kSchedulers.count(o.lr_scheduler_type), ValueError,
            "trainer: unknown lr_scheduler_type '{}'; use linear, cosine, constant or "
            "constant_with_warmup",
            o.lr_scheduler_type);
  LMF_CHECK(o.warmup_ratio >= 0 && o.warmup_ratio <= 1, ValueError,
            "trainer: warmup_ratio must lie in [0, 1], got {}", o.warmup_ratio);
  LMF_CHECK(o.warmup_steps >= 0, ValueError, "trainer: warmup_steps must be >= 0, got {}",
            o.warmup_steps);
  LMF_CHECK(o.logging_steps >= 0 && o.eval_steps >= 0 && o.save_steps >= 0 &&
                o.save_total_limit >= 0 && o.early_stopping_patience >= 0,
            ValueError,
            "trainer: logging_steps ({}), eval_steps ({}), save_steps ({}), save_total_limit ({}) "
            "and early_stopping_patience ({}) must be >= 0",
            o.logging_steps, o.eval_steps, o.save_steps, o.save_total_limit,
            o.early_stopping_patience);
  LMF_CHECK(!o.metric_for_best_model.empty() ||
                (!o.load_best_model_at_end && o.early_stopping_patience == 0),
            ValueError,
            "trainer: load_best_model_at_end and early stopping need metric_for_best_model");
}

TrainingPlan plan_training(const TrainerOptions& o, int64_t num_examples) {
  validate_options(o);
  LMF_CHECK(
      num_examples > 0, ValueError,
      "trainer: the training data is empty (0 examples); check the data file and its columns");
  TrainingPlan p;
  p.num_examples = num_examples;
  const int64_t b = o.per_device_train_batch_size, acc = o.gradient_accumulation_steps;
  p.batches_per_epoch = (num_examples + b - 1) / b;
  p.updates_per_epoch = std::max<int64_t>((p.batches_per_epoch + acc - 1) / acc, 1);
  if (o.max_steps > 0) {
    p.max_steps = o.max_steps;
    p.num_epochs = (o.max_steps + p.updates_per_epoch - 1) / p.updates_per_epoch;
  } else {
    p.max_steps = static_cast<int64_t>(
        std::ceil(o.num_train_epochs * static_cast<double>(p.updates_per_epoch)));
    p.num_epochs = static_cast<int64_t>(std::ceil(o.num_train_epochs));
  }
  p.warmup_steps =
      o.warmup_steps > 0
          ? o.warmup_steps
          : static_cast<int64_t>(std::ceil(o.warmup_ratio * static_cast<double>(p.max_steps)));
  return p;
}

std::vector<int64_t> epoch_order(std::span<const int64_t> lengths, const TrainerOptions& o,
                                 int64_t epoch) {
  const auto n = static_cast<int64_t>(lengths.size());
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  Generator g(derive_seed(o.seed, static_cast<uint64_t>(epoch)));
  for (int64_t i = n - 1; i > 0; --i)  // Fisher-Yates
    std::swap(idx[i], idx[g.next_u64() % static_cast<uint64_t>(i + 1)]);
  if (!o.group_by_length || n == 0) return idx;
  // HF get_length_grouped_indices with LengthGroupedSampler's batch size (batch x accumulation):
  // mega-batches of min(n / (4 batch), 50) batches, each sorted by length descending (stable, as
  // Python's sorted), then the longest example swapped to the very front.
  const int64_t bs = o.per_device_train_batch_size * o.gradient_accumulation_steps;
  const int64_t mult = std::max<int64_t>(std::min<int64_t>(n / (bs * 4), 50), 1);
  const int64_t mega = mult * bs;
  int64_t best_start = 0, best_len = -1;
  for (int64_t s = 0; s < n; s += mega) {
    const auto first = idx.begin() + s, last = idx.begin() + std::min(n, s + mega);
    std::stable_sort(first, last, [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
    if (lengths[*first] > best_len) best_len = lengths[*first], best_start = s;
  }
  std::swap(idx[0], idx[best_start]);
  return idx;
}

// ---- the loop -----------------------------------------------------------------------------------

namespace {

class Trainer {
 public:
  Trainer(Objective& obj, const TrainerOptions& o, const std::function<void(const Metrics&)>& cb)
      : obj_(obj), o_(o), on_log_(cb), out_(o.output_dir) {}

  TrainResult run();

 private:
  void prepare_output_dir();
  fs::path find_resume_checkpoint() const;
  json read_state(const fs::path& ckpt) const;
  void restore(const json& j, const fs::path& ckpt);
  void train_step(const std::vector<int64_t>& order, int64_t update);
  void log_training();
  // Evaluates, logs, tracks the best metric and early stopping; true when the metric improved.
  bool evaluate();
  void save_checkpoint();
  void rotate_checkpoints();
  void record(Metrics entry);
  void write_plot() const;
  json state_json() const;
  fs::path checkpoint_path(int64_t step) const { return out_ / fmt::format("checkpoint-{}", step); }

  Objective& obj_;
  const TrainerOptions& o_;
  const std::function<void(const Metrics&)>& on_log_;
  fs::path out_;
  TrainingPlan plan_;
  RunConfig config_;
  std::vector<int64_t> lengths_;
  std::vector<Tensor> params_;
  std::unique_ptr<optim::AdamW> opt_;
  std::unique_ptr<optim::LambdaLR> sched_;
  std::function<double(int64_t)> factor_;
  Generator batch_rng_;
  RunState st_;
  std::chrono::steady_clock::time_point log_time_;
  double last_grad_norm_ = NAN, last_lr_ = 0, last_step_loss_ = NAN;
  int64_t examples_seen_ = 0, tokens_seen_ = 0;  // in this call
};

void Trainer::prepare_output_dir() {
  std::error_code ec;
  if (fs::exists(out_, ec) && !fs::is_directory(out_, ec))
    fail<IoError>("trainer: output_dir '{}' exists and is not a folder; choose a folder path",
                  out_.string());
  fs::create_directories(out_, ec);
  if (ec)
    fail<IoError>("trainer: cannot create output_dir '{}': {}; choose a writable location",
                  out_.string(), ec.message());
  const fs::path probe = out_ / fmt::format(".write-test-{}", ::getpid());
  {
    std::ofstream f(probe);
    if (!f)
      fail<IoError>(
          "trainer: output_dir '{}' is not writable; fix its permissions or choose "
          "another folder",
          out_.string());
  }
  fs::remove(probe, ec);
  clean_leftovers(out_);
}

fs::path Trainer::find_resume_checkpoint() const {
  auto all = list_checkpoints(out_);
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (fs::exists(it->second / kStateFile)) return it->second;
  fail<ValueError>(
      "resume: no checkpoint to resume from in '{}' (no checkpoint-<step> folder with {}); run "
      "without --resume to start training, or point output_dir at the run to continue",
      out_.string(), kStateFile);
}

json Trainer::state_json() const {
  json hist = json::array();
  for (const Metrics& m : st_.history) hist.push_back(entry_to_json(m));
  json parts = json::object();
  for (const auto& [k, v] : st_.log_parts) parts[k] = {v.first, v.second};
  json sched = json::object();
  for (const auto& [k, v] : sched_->state_dict()) sched[k] = v;
  json optim_scalars = json::object();
  for (const auto& [k, v] : opt_->state_dict().scalars) optim_scalars[k] = v;
  return {
      {"format", kStateFormat},
      {"global_step", st_.global_step},
      {"epoch", st_.epoch},
      {"epoch_index", st_.epoch_index},
      {"step_in_epoch", st_.step_in_epoch},
      {"max_steps", plan_.max_steps},
      {"config", config_to_json(config_)},
      {"rng",
       {{"default", rng_to_json(default_generator().state())},
        {"batch", rng_to_json(batch_rng_.state())}}},
      {"scheduler", sched},
      {"optimizer_scalars", optim_scalars},
      {"best_metric", st_.best_metric ? json(*st_.best_metric) : json(nullptr)},
      {"best_global_step", st_.best_step},
      {"best_model_checkpoint", st_.best_step >= 0 && fs::exists(checkpoint_path(st_.best_step))
                                    ? json(checkpoint_path(st_.best_step).string())
                                    : json(nullptr)},
      {"early_stopping_patience_counter", st_.patience_counter},
      {"stopped_early", st_.stopped_early},
      {"total_loss", st_.total_loss},
      {"log_loss", st_.log_loss},
      {"last_logged_step", st_.last_logged_step},
      {"log_tokens", st_.log_tokens},
      {"log_parts", parts},
      {"last_eval", entry_to_json(st_.last_eval)},
      {"log_history", hist},
  };
}

json Trainer::read_state(const fs::path& ckpt) const {
  json j = io::read_json_file((ckpt / kStateFile).string());
  LMF_CHECK(j.is_object() && j.value("format", "") == kStateFormat && j.contains("config"),
            ValueError, "resume: '{}' is not an lmforge trainer state (expected format '{}')",
            (ckpt / kStateFile).string(), kStateFormat);
  check_config(j.at("config"), config_, ckpt);
  return j;
}

void Trainer::restore(const json& j, const fs::path& ckpt) {
  try {
    optim::OptimizerState os;
    for (auto& [k, t] : io::load_safetensors((ckpt / kOptimizerFile).string())) os.tensors[k] = t;
    for (const auto& [k, v] : j.at("optimizer_scalars").items()) os.scalars[k] = v.get<double>();
    opt_->load_state_dict(os);
    std::map<std::string, double> sched;
    for (const auto& [k, v] : j.at("scheduler").items()) sched[k] = v.get<double>();
    sched_->load_state_dict(sched);
    // The lr of the next step: the factor of this run's schedule (equal to the saved lr when the
    // schedule is unchanged; follows the new total when max_steps/epochs changed, as HF).
    auto& groups = opt_->param_groups();
    for (size_t g = 0; g < groups.size(); ++g)
      groups[g].lr = *groups[g].initial_lr * factor_(sched_->last_step());
    default_generator().set_state(rng_from_json(j.at("rng").at("default")));
    batch_rng_.set_state(rng_from_json(j.at("rng").at("batch")));
    st_.global_step = j.at("global_step").get<int64_t>();
    st_.epoch = j.at("epoch").get<double>();
    st_.epoch_index = j.at("epoch_index").get<int64_t>();
    st_.step_in_epoch = j.at("step_in_epoch").get<int64_t>();
    if (!j.at("best_metric").is_null()) st_.best_metric = j.at("best_metric").get<double>();
    st_.best_step = j.at("best_global_step").get<int64_t>();
    st_.patience_counter = j.at("early_stopping_patience_counter").get<int64_t>();
    st_.stopped_early = j.at("stopped_early").get<bool>();
    st_.total_loss = j.at("total_loss").get<double>();
    st_.log_loss = j.at("log_loss").get<double>();
    st_.last_logged_step = j.at("last_logged_step").get<int64_t>();
    st_.log_tokens = j.at("log_tokens").get<int64_t>();
    for (const auto& [k, v] : j.at("log_parts").items())
      st_.log_parts[k] = {v.at(0).get<double>(), v.at(1).get<int64_t>()};
    st_.last_eval = entry_from_json(j.at("last_eval"));
    for (const auto& e : j.at("log_history")) st_.history.push_back(entry_from_json(e));
  } catch (const nlohmann::json::exception& e) {
    fail<IoError>(
        "resume: '{}' is damaged or from another version ({}); resume from an earlier "
        "checkpoint by deleting this one, or start a fresh run",
        (ckpt / kStateFile).string(), e.what());
  }
  LMF_CHECK(st_.epoch_index >= 0 && st_.step_in_epoch >= 0 &&
                st_.step_in_epoch <= plan_.updates_per_epoch,
            ValueError, "resume: '{}' holds an impossible position (epoch {}, step {} of {})",
            (ckpt / kStateFile).string(), st_.epoch_index, st_.step_in_epoch,
            plan_.updates_per_epoch);
}

void Trainer::record(Metrics entry) {
  st_.history.push_back(entry);
  std::ofstream f(out_ / "metrics.jsonl", std::ios::app);
  if (!f) fail<IoError>("cannot append to '{}'", (out_ / "metrics.jsonl").string());
  f << entry_to_json(entry).dump() << '\n';
  if (on_log_) on_log_(entry);
}

void Trainer::log_training() {
  const auto now = std::chrono::steady_clock::now();
  const double dt = std::chrono::duration<double>(now - log_time_).count();
  const auto steps = static_cast<double>(st_.global_step - st_.last_logged_step);
  Metrics m{{"step", static_cast<double>(st_.global_step)},
            {"epoch", st_.epoch},
            {"loss", st_.log_loss / steps},
            {"learning_rate", last_lr_},
            {"grad_norm", last_grad_norm_},
            {"tokens_per_second", dt > 0 ? static_cast<double>(st_.log_tokens) / dt : 0.0}};
  for (const auto& [k, v] : st_.log_parts) m[k] = v.first / static_cast<double>(v.second);
  st_.log_loss = 0;
  st_.log_tokens = 0;
  st_.log_parts.clear();
  st_.last_logged_step = st_.global_step;
  log_time_ = now;
  record(std::move(m));
}

bool Trainer::evaluate() {
  obj_.set_training(false);
  Metrics m;
  {
    NoGradGuard no_grad;
    m = obj_.evaluate();
  }
  obj_.set_training(true);
  const bool need_metric = o_.load_best_model_at_end || o_.early_stopping_patience > 0;
  if (m.empty()) {
    LMF_CHECK(
        !need_metric, ValueError,
        "trainer: load_best_model_at_end / early_stopping_patience need held-out data, but "
        "the objective's evaluate() returned no metrics; add evaluation data or turn them off");
    return false;
  }
  st_.last_eval = m;
  Metrics entry = m;
  entry["step"] = static_cast<double>(st_.global_step);
  entry["epoch"] = st_.epoch;
  record(std::move(entry));
  const std::string key = best_metric_key(o_);
  auto it = m.find(key);
  if (it == m.end()) {
    std::vector<std::string> keys;
    for (const auto& kv : m) keys.push_back(kv.first);
    LMF_CHECK(
        !need_metric, ValueError,
        "trainer: metric_for_best_model '{}' is not among the evaluation metrics ({}); choose "
        "one of them",
        key, fmt::join(keys, ", "));
    return false;
  }
  const double v = it->second;
  // EarlyStoppingCallback (threshold 0) compares with the best before this evaluation.
  const bool improved =
      !st_.best_metric || (greater_is_better(o_) ? v > *st_.best_metric : v < *st_.best_metric);
  if (o_.early_stopping_patience > 0) {
    st_.patience_counter = improved ? 0 : st_.patience_counter + 1;
    if (st_.patience_counter >= o_.early_stopping_patience) st_.stopped_early = true;
  }
  if (improved) {
    st_.best_metric = v;
    st_.best_step = st_.global_step;
  }
  return improved;
}

void Trainer::save_checkpoint() {
  const std::string name = fmt::format("checkpoint-{}", st_.global_step);
  const fs::path final_dir = out_ / name, tmp = out_ / (".tmp-" + name),
                 old = out_ / (".old-" + name);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  obj_.save_pretrained(tmp.string());
  io::save_safetensors((tmp / kOptimizerFile).string(), opt_->state_dict().tensors);
  json state = state_json();
  if (st_.best_step == st_.global_step) state["best_model_checkpoint"] = final_dir.string();
  write_file(tmp / kStateFile, state.dump(1) + "\n");
  fsync_tree(tmp);
  if (fs::exists(final_dir)) {  // re-saved at the same step (e.g. after the epoch-end evaluation)
    fs::remove_all(old);
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, final_dir);
  }
  fsync_path(out_, true);
  rotate_checkpoints();
  write_plot();
}

// HF rotate_checkpoints: by step, the newest and the best are protected, the oldest others go
// until save_total_limit remain.
void Trainer::rotate_checkpoints() {
  if (o_.save_total_limit <= 0) return;
  auto all = list_checkpoints(out_);
  if (static_cast<int64_t>(all.size()) <= o_.save_total_limit) return;
  std::set<int64_t> protect = {all.back().first};
  if (st_.best_step >= 0) protect.insert(st_.best_step);
  const int64_t keep = std::max<int64_t>(o_.save_total_limit, static_cast<int64_t>(protect.size()));
  auto remaining = static_cast<int64_t>(all.size());
  for (const auto& [step, path] : all) {
    if (remaining <= keep) break;
    if (protect.count(step)) continue;
    remove_checkpoint(path);
    --remaining;
  }
}

void Trainer::write_plot() const {
  Series loss{"training loss", {}, {}}, lr{"learning rate", {}, {}};
  std::map<std::string, Series> evals, parts;
  static const std::set<std::string> kPlain = {"step",      "epoch",         "loss",
                                               "grad_norm", "learning_rate", "tokens_per_second"};
  for (const Metrics& m : st_.history) {
    auto step = m.find("step");
    if (step == m.end()) continue;
    // The objective's logged parts (mlm_loss, rewards_margin, PPO's objective/scores ...).
    if (m.count("loss"))
      for (const auto& [k, v] : m)
        if (!kPlain.count(k) && k.rfind("eval_", 0) != 0 && k.rfind("train_", 0) != 0) {
          Series& s = parts[k];
          s.name = k;
          s.x.push_back(step->second);
          s.y.push_back(v);
        }
    if (auto l = m.find("loss"); l != m.end())
      loss.x.push_back(step->second), loss.y.push_back(l->second);
    if (auto r = m.find("learning_rate"); r != m.end())
      lr.x.push_back(step->second), lr.y.push_back(r->second);
    for (const auto& [k, v] : m)
      if (k.rfind("eval_", 0) == 0) {
        Series& s = evals[k];
        s.name = k;
        s.x.push_back(step->second);
        s.y.push_back(v);
      }
  }
  std::vector<Chart> charts;
  charts.push_back({"Training loss", "step", "loss", {loss}, false});
  charts.push_back({"Learning rate", "step", "learning rate", {lr}, false});
  for (auto& [k, s] : parts) charts.push_back({k, "step", k, {s}, false});
  for (auto& [k, s] : evals) charts.push_back({k, "step", k, {s}, false});
  std::vector<std::pair<std::string, std::string>> summary = {
      {"global step", std::to_string(st_.global_step)},
      {"epoch", fmt::format("{:.3f}", st_.epoch)},
      {"mean training loss",
       st_.global_step > 0 ? fmt::format("{:.5g}", st_.total_loss / st_.global_step) : "-"}};
  if (st_.best_metric)
    summary.push_back({"best " + best_metric_key(o_),
                       fmt::format("{:.5g} (step {})", *st_.best_metric, st_.best_step)});
  write_html_report((out_ / "training_curves.html").string(), "lmforge training curves", charts,
                    summary);
}

void Trainer::train_step(const std::vector<int64_t>& order, int64_t u) {
  const int64_t b = o_.per_device_train_batch_size, acc = o_.gradient_accumulation_steps;
  const int64_t n = plan_.num_examples;
  const int64_t first_batch = u * acc;
  const int64_t last_batch = std::min(first_batch + acc, plan_.batches_per_epoch);
  const auto examples = [&](int64_t lo, int64_t hi) {  // order[lo, min(n, hi))
    hi = std::min(n, hi);
    return std::span<const int64_t>(order.data() + lo, static_cast<size_t>(hi - lo));
  };
  const auto optimizer_step = [&] {
    obj_.before_optimizer_step();
    last_grad_norm_ = optim::clip_grad_norm_(
        params_, o_.max_grad_norm > 0 ? o_.max_grad_norm : std::numeric_limits<double>::infinity());
    last_lr_ = *opt_->param_groups().front().lr;  // the lr this step uses (what HF 5.x logs)
    opt_->step();
    opt_->zero_grad();
  };
  const auto count = [&](int64_t tokens, size_t batch_examples, const Metrics& parts) {
    st_.log_tokens += tokens;
    tokens_seen_ += tokens;
    examples_seen_ += static_cast<int64_t>(batch_examples);
    for (const auto& [k, v] : parts) {
      auto& acc_part = st_.log_parts[k];
      acc_part.first += v;
      acc_part.second += 1;
    }
  };
  double step_loss = 0;
  // An objective that runs its own update (PPO) gets all the update's examples at once and calls
  // optimizer_step itself.
  const std::span<const int64_t> all = examples(first_batch * b, last_batch * b);
  if (std::optional<Objective::UpdateResult> own = obj_.update(all, batch_rng_, optimizer_step)) {
    count(own->tokens, all.size(), own->parts);
    step_loss = own->loss;
  } else {
    // HF 5.x divides by the number of micro-batches of this update (fewer at the end of an epoch),
    // or, for an objective that counts its loss items (num_items_in_batch), weights each
    // micro-batch by its share of the update's items.
    const int64_t micro = last_batch - first_batch;
    const auto micro_idx = [&](int64_t mb) { return examples(mb * b, mb * b + b); };
    std::vector<double> weight;  // empty: 1 / micro
    if (micro > 1) {
      std::vector<int64_t> items(micro);
      int64_t total = 0;
      for (int64_t m = 0; m < micro; ++m)
        total += items[m] = obj_.loss_items(micro_idx(first_batch + m));
      if (total > 0 && std::all_of(items.begin(), items.end(), [](int64_t i) { return i > 0; }))
        for (int64_t m = 0; m < micro; ++m)
          weight.push_back(static_cast<double>(items[m]) / static_cast<double>(total));
    }
    for (int64_t mb = first_batch; mb < last_batch; ++mb) {
      std::span<const int64_t> idx = micro_idx(mb);
      Objective::BatchLoss bl = obj_.loss(idx, batch_rng_);
      LMF_CHECK(bl.loss.defined() && bl.loss.numel() == 1, ValueError,
                "trainer: Objective::loss must return a scalar loss, got {}",
                bl.loss.defined() ? bl.loss.describe() : "an undefined tensor");
      const double value = bl.loss.item();
      Tensor scaled = bl.loss;
      if (!weight.empty()) {
        scaled = mul(bl.loss, weight[mb - first_batch]);
        step_loss += value * weight[mb - first_batch];
      } else {
        if (micro > 1)
          scaled = div(bl.loss, Tensor::scalar(static_cast<double>(micro), bl.loss.dtype()));
        step_loss += value / static_cast<double>(micro);
      }
      scaled.backward();
      count(bl.tokens, idx.size(), bl.parts);
    }
    optimizer_step();
  }
  sched_->step();
  st_.global_step += 1;
  st_.step_in_epoch = u + 1;
  st_.epoch = static_cast<double>(st_.epoch_index) +
              static_cast<double>(last_batch) / static_cast<double>(plan_.batches_per_epoch);
  st_.total_loss += step_loss;
  st_.log_loss += step_loss;
  last_step_loss_ = step_loss;
}

TrainResult Trainer::run() {
  const auto t0 = std::chrono::steady_clock::now();
  validate_options(o_);
  const int64_t n = obj_.num_examples();
  LMF_CHECK(
      n > 0, ValueError,
      "trainer: the training data is empty (0 examples); check the data file and its columns");
  plan_ = plan_training(o_, n);
  prepare_output_dir();
  lengths_.resize(n);
  for (int64_t i = 0; i < n; ++i) lengths_[i] = obj_.example_length(i);

  config_ = {n,       o_.per_device_train_batch_size, o_.gradient_accumulation_steps,
             o_.seed, fingerprint(lengths_),          o_.group_by_length};
  fs::path resume_from;
  json saved;
  if (o_.resume) {
    resume_from = find_resume_checkpoint();
    saved = read_state(resume_from);  // checks the configuration before touching the model
    obj_.load_pretrained(resume_from.string());
  } else {
    auto existing = list_checkpoints(out_);
    LMF_CHECK(existing.empty(), ValueError,
              "trainer: output_dir '{}' already holds checkpoints of an earlier run ({}); pass "
              "resume (--resume) to continue it, or use an empty output_dir",
              out_.string(), existing.back().second.filename().string());
  }

  const NamedTensors named = obj_.parameters();
  LMF_CHECK(!named.empty(), ValueError, "trainer: the objective has no parameters to train");
  std::set<std::string> names;
  for (const auto& [name, p] : named) {
    LMF_CHECK(names.insert(name).second, ValueError,
              "trainer: parameter name '{}' appears twice in Objective::parameters()", name);
    if (p.requires_grad()) params_.push_back(p);
  }
  LMF_CHECK(!params_.empty(), ValueError, "trainer: every parameter is frozen; nothing to train");

  optim::AdamWOptions ao;
  ao.lr = o_.learning_rate;
  ao.beta1 = o_.adam_beta1;
  ao.beta2 = o_.adam_beta2;
  ao.eps = o_.adam_epsilon;
  ao.weight_decay = o_.weight_decay;
  opt_ = std::make_unique<optim::AdamW>(optim::decay_param_groups(named, o_.weight_decay), ao);
  factor_ = lr_factor(o_.lr_scheduler_type, plan_.warmup_steps, plan_.max_steps);
  sched_ = std::make_unique<optim::LambdaLR>(*opt_, factor_);

  manual_seed(o_.seed);  // dropout and everything else drawn from the default generator
  batch_rng_.manual_seed(derive_seed(o_.seed, kBatchRngTag));
  if (o_.resume) restore(saved, resume_from);
  const int64_t start_step = st_.global_step;

  {  // metrics.jsonl restarts from the checkpoint's history (drops lines of a killed run)
    std::ofstream f(out_ / "metrics.jsonl", std::ios::trunc);
    if (!f) fail<IoError>("cannot write '{}'", (out_ / "metrics.jsonl").string());
    for (const Metrics& m : st_.history) f << entry_to_json(m).dump() << '\n';
  }

  std::optional<ProgressBar> bar;
  if (o_.progress) bar.emplace(plan_.max_steps, o_.resume ? "train (resumed)" : "train");
  obj_.set_training(true);
  log_time_ = std::chrono::steady_clock::now();
  auto step_time = log_time_;
  int64_t step_tokens_mark = tokens_seen_;

  bool stop = st_.stopped_early || st_.global_step >= plan_.max_steps;
  for (int64_t e = st_.epoch_index; e < plan_.num_epochs && !stop; ++e) {
    st_.epoch_index = e;
    const std::vector<int64_t> order = epoch_order(lengths_, o_, e);
    for (int64_t u = st_.step_in_epoch; u < plan_.updates_per_epoch; ++u) {
      train_step(order, u);
      const bool last = st_.global_step >= plan_.max_steps;
      if (bar) {
        const auto now = std::chrono::steady_clock::now();
        const double dt = std::chrono::duration<double>(now - step_time).count();
        bar->update(st_.global_step, last_step_loss_, last_lr_,
                    dt > 0 ? static_cast<double>(tokens_seen_ - step_tokens_mark) / dt : 0);
        step_time = now;
        step_tokens_mark = tokens_seen_;
      }
      // HF DefaultFlowCallback order: log, evaluate, save; evaluate and save also at the end.
      if (o_.logging_steps > 0 && st_.global_step % o_.logging_steps == 0) log_training();
      bool improved = false;
      if (o_.eval_steps > 0 && (st_.global_step % o_.eval_steps == 0 || last))
        improved = evaluate();
      if ((o_.save_steps > 0 && (st_.global_step % o_.save_steps == 0 || last)) ||
          (improved && o_.load_best_model_at_end))
        save_checkpoint();
      if (last || st_.stopped_early) {
        stop = true;
        break;
      }
    }
    // End of the epoch (also reached when training stops, as HF's on_epoch_end).
    const bool finished_epoch = st_.step_in_epoch >= plan_.updates_per_epoch;
    if (finished_epoch) {  // a checkpoint written from here on resumes at the next epoch
      st_.epoch_index = e + 1;
      st_.step_in_epoch = 0;
    }
    if (o_.eval_steps == 0 && !st_.stopped_early) {
      if (evaluate() && o_.load_best_model_at_end) save_checkpoint();
    }
    if (st_.stopped_early || st_.global_step >= plan_.max_steps) stop = true;
  }
  if (bar) bar->finish();
  if (st_.global_step > st_.last_logged_step && o_.logging_steps > 0) log_training();

  TrainResult r;
  r.train_runtime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.global_step = st_.global_step;
  r.epoch = st_.epoch;
  r.train_loss = st_.global_step > 0 ? st_.total_loss / static_cast<double>(st_.global_step) : 0;
  r.final_eval = st_.last_eval;
  r.best_metric = st_.best_metric;
  if (st_.best_step >= 0 && fs::exists(checkpoint_path(st_.best_step) / kStateFile))
    r.best_model_checkpoint = checkpoint_path(st_.best_step).string();
  r.stopped_early = st_.stopped_early;
  r.train_samples_per_second = static_cast<double>(examples_seen_) / r.train_runtime_s;
  r.train_tokens_per_second = static_cast<double>(tokens_seen_) / r.train_runtime_s;

  if (o_.load_best_model_at_end && !r.best_model_checkpoint.empty())
    obj_.load_pretrained(r.best_model_checkpoint);
  obj_.save_pretrained(out_.string());
  record({{"step", static_cast<double>(st_.global_step)},
          {"epoch", st_.epoch},
          {"train_runtime", r.train_runtime_s},
          {"train_samples_per_second", r.train_samples_per_second},
          {"train_tokens_per_second", r.train_tokens_per_second},
          {"train_steps", static_cast<double>(st_.global_step - start_step)},
          {"train_loss", r.train_loss}});
  write_plot();
  return r;
}

}  // namespace

TrainResult train(Objective& objective, const TrainerOptions& options,
                  const std::function<void(const Metrics&)>& on_log) {
  Trainer t(objective, options, on_log);
  try {
    return t.run();
  } catch (const fs::filesystem_error& e) {
    fail<IoError>(
        "trainer: file system error in output_dir '{}': {}; check that it is writable "
        "and has free space",
        options.output_dir, e.what());
  }
}

}  // namespace lmf::train
