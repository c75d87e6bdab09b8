// Training throughput through the real trainer (lmf::train::train: AdamW, linear schedule,
// clipping 1.0, per-step logging), lmforge side of bench/compare_training.py. Prints one JSON line.
// Workloads: finetune = BertForSequenceClassification from a model folder on real SST-2 sentences
// (padded/truncated to --seq); pretrain = BertForPreTraining (MLM+NSP, random init) on synthetic
// token ids drawn with splitmix64 exactly as compare_training.py draws them; pretrain-sparse = the
// same batches through lmf::train::PretrainObjective::batch_loss, i.e. `lmforge pretrain`'s default
// MLM head that computes logits only at the masked positions (same loss and gradients, tested).
// Usage: bench_finetune --workload finetune|pretrain|pretrain-sparse [--model-dir models/all-MiniLM-L6-v2]
//        [--shape minilm|base] [--data sst2/train.tsv] [--batch 32] [--seq 128] [--warmup 2]
//        [--steps 3]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/core/runtime.h"
#include "lmforge/models/bert.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/train/pretrain.h"
#include "lmforge/train/trainer.h"

namespace {

namespace fs = std::filesystem;
using lmf::Tensor;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string workload = "finetune";
  std::string model_dir = "models/all-MiniLM-L6-v2";
  std::string shape = "minilm";  // pretrain: minilm (the folder's config.json) | base (BERT-base)
  std::string data = "/work/shared/data/sst2/train.tsv";
  int64_t batch = 32, seq = 128, warmup = 2, steps = 3;
};

// The data both sides build identically: ids, mask (0 = padding), token types, labels, and for
// pretraining the NSP labels. Row-major [n, seq].
struct Data {
  int64_t n = 0, seq = 0;
  std::vector<int64_t> ids, mask, types, labels, nsp;
};

// splitmix64, the stream compare_training.py reproduces.
struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
};

// [CLS] A [SEP] B [SEP] with A/B random ids >= 1000; 15 % of the non-special positions chosen for
// MLM (80 % [MASK], 10 % random, 10 % kept), label -100 elsewhere; NSP label random.
Data synthetic_pretraining(int64_t n, int64_t seq, int64_t vocab) {
  Data d{n, seq, {}, {}, {}, {}, {}};
  SplitMix g{1234};
  const int64_t sep = seq / 2, span = vocab - 1000;
  for (int64_t e = 0; e < n; ++e) {
    d.nsp.push_back(static_cast<int64_t>(g.next() % 2));
    for (int64_t t = 0; t < seq; ++t) {
      int64_t id, label = -100;
      if (t == 0) {
        id = 101;
      } else if (t == sep || t == seq - 1) {
        id = 102;
      } else {
        id = 1000 + static_cast<int64_t>(g.next() % static_cast<uint64_t>(span));
        if (g.next() % 100 < 15) {
          label = id;
          const uint64_t r = g.next() % 10;
          if (r < 8)
            id = 103;
          else if (r == 8)
            id = 1000 + static_cast<int64_t>(g.next() % static_cast<uint64_t>(span));
        }
      }
      d.ids.push_back(id);
      d.labels.push_back(label);
      d.mask.push_back(1);
      d.types.push_back(t <= sep ? 0 : 1);
    }
  }
  return d;
}

// The first n sentences of a label<TAB>sentence file (header skipped), tokenized with the model
// folder's tokenizer, truncated and padded to seq.
Data sst2(const std::string& path, const std::string& model_dir, int64_t n, int64_t seq) {
  std::ifstream f(path);
  if (!f) throw lmf::IoError("cannot open " + path + "; pass --data label<TAB>sentence file");
  lmf::tok::Tokenizer tok = lmf::tok::Tokenizer::from_pretrained(model_dir);
  lmf::tok::TruncationParams tr;
  tr.max_length = static_cast<size_t>(seq);
  tok.set_truncation(tr);
  lmf::tok::PaddingParams pad;
  pad.fixed_length = static_cast<size_t>(seq);
  tok.set_padding(pad);
  Data d{n, seq, {}, {}, {}, {}, {}};
  std::string line;
  std::getline(f, line);  // header
  while (static_cast<int64_t>(d.labels.size()) < n && std::getline(f, line)) {
    const auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    const lmf::tok::Encoding enc = tok.encode(line.substr(tab + 1));
    for (int64_t t = 0; t < seq; ++t) {
      d.ids.push_back(enc.ids[t]);
      d.mask.push_back(enc.attention_mask[t]);
      d.types.push_back(enc.type_ids[t]);
    }
    d.labels.push_back(std::atoll(line.substr(0, tab).c_str()));
  }
  if (static_cast<int64_t>(d.labels.size()) < n)
    throw lmf::ValueError(path + " has fewer than " + std::to_string(n) + " sentences");
  return d;
}

// The minimal objective: slices the prepared rows into a batch and returns the model's loss.
class BenchObjective : public lmf::train::Objective {
 public:
  BenchObjective(std::unique_ptr<lmf::models::EncoderModel> m, Data d, bool pretrain,
                 bool sparse_mlm = false)
      : model_(std::move(m)), d_(std::move(d)), pretrain_(pretrain) {
    if (sparse_mlm) {  // the pretraining objective owns the model; batches come from rows() below
      lmf::train::SpecialTokens sp;
      sp.cls = 101, sp.sep = 102, sp.mask = 103, sp.pad = 0;
      sp.vocab_size = model_->config().vocab_size;
      lmf::train::PretrainObjective::Config cfg;
      cfg.sparse_mlm = true;
      pretrain_obj_ = std::make_unique<lmf::train::PretrainObjective>(std::move(model_), sp,
                                                                      std::vector<lmf::train::PretrainInstance>{},
                                                                      std::vector<lmf::train::PretrainInstance>{},
                                                                      cfg);
    }
  }
  lmf::models::EncoderModel& model() const {
    return pretrain_obj_ ? pretrain_obj_->model() : *model_;
  }
  lmf::train::NamedTensors parameters() const override { return model().named_parameters(); }
  void set_training(bool on) override { model().train(on); }
  int64_t num_examples() const override { return d_.n; }
  int64_t example_length(int64_t) const override { return d_.seq; }
  BatchLoss loss(std::span<const int64_t> idx, lmf::Generator&) override {
    const auto b = static_cast<int64_t>(idx.size()), t = d_.seq;
    auto rows = [&](const std::vector<int64_t>& src) {
      std::vector<int64_t> out;
      out.reserve(static_cast<size_t>(b * t));
      for (int64_t i : idx) out.insert(out.end(), src.begin() + i * t, src.begin() + (i + 1) * t);
      return Tensor::from_vector(out, {b, t});
    };
    lmf::models::EncoderInputs in;
    lmf::models::EncoderLabels y;
    in.input_ids = rows(d_.ids);
    in.token_type_ids = rows(d_.types);
    int64_t tokens = 0;
    for (int64_t i : idx)
      for (int64_t j = 0; j < t; ++j) tokens += d_.mask[i * t + j];
    if (pretrain_) {  // full attention: no mask on either side
      y.labels = rows(d_.labels);
      std::vector<int64_t> nsp;
      for (int64_t i : idx) nsp.push_back(d_.nsp[i]);
      y.next_sentence_label = Tensor::from_vector(nsp, {b});
      if (pretrain_obj_) {
        lmf::train::PretrainBatch pb;
        pb.input_ids = in.input_ids;
        pb.token_type_ids = in.token_type_ids;
        pb.attention_mask = rows(d_.mask);
        pb.labels = y.labels;
        pb.sentence_labels = y.next_sentence_label;
        pb.tokens = tokens;
        BatchLoss bl = pretrain_obj_->batch_loss(pb);
        bl.tokens = tokens;
        return bl;
      }
    } else {
      in.attention_mask = rows(d_.mask);
      std::vector<int64_t> lab;
      for (int64_t i : idx) lab.push_back(d_.labels[i]);
      y.labels = Tensor::from_vector(lab, {b});
    }
    return {model().forward(in, y).loss, tokens, {}};
  }
  // The benchmark keeps nothing: the trainer's final save is a no-op here.
  void save_pretrained(const std::string&) const override {}
  void load_pretrained(const std::string&) override {}
  const Data& data() const { return d_; }

 private:
  std::unique_ptr<lmf::models::EncoderModel> model_;
  std::unique_ptr<lmf::train::PretrainObjective> pretrain_obj_;
  Data d_;
  bool pretrain_;
};

double peak_rss_mb() {  // VmHWM: this process image only (ru_maxrss survives exec)
  double mb = 0;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::strncmp(line, "VmHWM:", 6) == 0) mb = std::atof(line + 6) / 1024.0;
    std::fclose(f);
  }
  return mb;
}

int run(const Args& a) {
  const bool sparse = a.workload == "pretrain-sparse";
  const bool pretrain = a.workload == "pretrain" || sparse;
  if (!pretrain && a.workload != "finetune")
    throw lmf::ValueError("--workload must be finetune, pretrain or pretrain-sparse, got " +
                          a.workload);
  if (a.warmup < 1 || a.steps < 1) throw lmf::ValueError("--warmup and --steps must be >= 1");
  const int64_t total = a.warmup + a.steps, n = a.batch * total;
  std::unique_ptr<lmf::models::EncoderModel> model;
  Data data;
  std::string what;
  if (pretrain) {
    lmf::models::BertConfig c;  // BERT-base defaults
    if (a.shape == "minilm")
      c = lmf::models::BertConfig::from_file(a.model_dir + "/config.json");
    else if (a.shape != "base")
      throw lmf::ValueError("--shape must be minilm or base");
    model = lmf::models::create_model(c, "BertForPreTraining");
    lmf::manual_seed(0);
    lmf::models::init_bert_weights(*model, c);
    data = synthetic_pretraining(n, a.seq, c.vocab_size);
    what = "BertForPreTraining (MLM+NSP, random init, " + a.shape + " shape" +
           (sparse ? ", MLM head on masked positions only" : "") + ")";
  } else {
    lmf::models::LoadOptions lo;
    lo.architecture = "BertForSequenceClassification";
    model = lmf::models::create_model(a.model_dir, lo);
    data = sst2(a.data, a.model_dir, n, a.seq);
    what = "BertForSequenceClassification from " + a.model_dir + " on SST-2";
  }
  const int64_t params = model->num_parameters();
  BenchObjective obj(std::move(model), std::move(data), pretrain, sparse);

  lmf::train::TrainerOptions o;
  o.output_dir =
      (fs::temp_directory_path() / ("lmf_bench_finetune_" + std::to_string(::getpid()))).string();
  o.max_steps = total;
  o.per_device_train_batch_size = a.batch;
  o.learning_rate = pretrain ? 1e-4 : 5e-5;
  o.weight_decay = 0.01;
  o.max_grad_norm = 1.0;
  o.lr_scheduler_type = "linear";
  o.logging_steps = 1;  // a log line per step: its callback timestamps the step's end
  o.save_steps = 0;
  o.progress = false;
  std::vector<Clock::time_point> ends;
  std::vector<double> losses;
  const lmf::train::TrainResult r = lmf::train::train(obj, o, [&](const lmf::train::Metrics& m) {
    if (m.count("loss") && m.count("learning_rate")) {
      ends.push_back(Clock::now());
      losses.push_back(m.at("loss"));
    }
  });
  std::error_code ec;
  fs::remove_all(o.output_dir, ec);
  if (static_cast<int64_t>(ends.size()) != total)
    throw lmf::ValueError("expected " + std::to_string(total) + " logged steps, got " +
                          std::to_string(ends.size()));
  std::vector<double> times;
  for (int64_t i = a.warmup; i < total; ++i)
    times.push_back(std::chrono::duration<double>(ends[i] - ends[i - 1]).count());
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  const size_t h = sorted.size() / 2;
  const double median = sorted.size() % 2 ? sorted[h] : 0.5 * (sorted[h - 1] + sorted[h]);
  int64_t ids_sum = 0, mask_sum = 0, label_sum = 0, label_count = 0;
  const Data& d = obj.data();
  for (int64_t v : d.ids) ids_sum += v;
  for (int64_t v : d.mask) mask_sum += v;
  for (int64_t v : d.labels)
    if (v != -100) label_sum += v, ++label_count;
  for (int64_t v : d.nsp) label_sum += v;
  std::printf(
      "{\"impl\": \"lmforge\", \"workload\": \"%s\", \"model\": \"%s\", \"threads\": %d, "
      "\"batch\": %lld, \"seq\": %lld, \"times_s\": [",
      a.workload.c_str(), what.c_str(), lmf::num_threads(), static_cast<long long>(a.batch),
      static_cast<long long>(a.seq));
  for (size_t i = 0; i < times.size(); ++i) std::printf("%s%.4f", i ? ", " : "", times[i]);
  std::printf(
      "], \"median_s\": %.4f, \"samples_per_s\": %.3f, \"tokens_per_s\": %.1f, "
      "\"first_loss\": %.5f, \"last_loss\": %.5f, \"train_steps\": %lld, \"params\": %lld, "
      "\"checksum\": [%lld, %lld, %lld, %lld], \"peak_rss_mb\": %.0f}\n",
      median, static_cast<double>(a.batch) / median, static_cast<double>(a.batch * a.seq) / median,
      losses.front(), losses.back(), static_cast<long long>(r.global_step),
      static_cast<long long>(params), static_cast<long long>(ids_sum),
      static_cast<long long>(mask_sum), static_cast<long long>(label_sum),
      static_cast<long long>(label_count), peak_rss_mb());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "option %s needs a value\n", argv[i]);
      return 2;
    }
    const std::string v = argv[i + 1];
    if (k == "--workload")
      a.workload = v;
    else if (k == "--model-dir")
      a.model_dir = v;
    else if (k == "--shape")
      a.shape = v;
    else if (k == "--data")
      a.data = v;
    else if (k == "--batch")
      a.batch = std::atoll(v.c_str());
    else if (k == "--seq")
      a.seq = std::atoll(v.c_str());
    else if (k == "--warmup")
      a.warmup = std::atoll(v.c_str());
    else if (k == "--steps")
      a.steps = std::atoll(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_finetune: %s\n", e.what());
    return 1;
  }
}
