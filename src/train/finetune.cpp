// The fine-tuning Objectives: sequence classification (single-label, multi-label, regression;
// the cross-encoder), token classification, extractive QA and the bi-encoder, with their
// evaluation metrics, HF-folder saving and exact reloading.
#include "lmforge/train/finetune.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/json.h"
#include "lmforge/ops/ops.h"
#include "lmforge/tasks/pooling.h"
#include "lmforge/train/hf_folder.h"

namespace lmf::train {
namespace fs = std::filesystem;
using models::BertConfig;
using models::EncoderHead;

FinetuneTask parse_finetune_task(const std::string& name) {
  if (name == "classification" || name == "text-classification" || name == "regression" ||
      name == "sequence-classification")
    return FinetuneTask::sequence_classification;
  if (name == "ner" || name == "token-classification") return FinetuneTask::token_classification;
  if (name == "qa" || name == "question-answering") return FinetuneTask::question_answering;
  if (name == "similarity" || name == "bi-encoder") return FinetuneTask::bi_encoder;
  if (name == "cross-encoder") return FinetuneTask::cross_encoder;
  if (name == "multiple-choice" || name == "swag") return FinetuneTask::multiple_choice;
  fail<ValueError>(
      "unknown fine-tuning task '{}'; use classification, regression, ner, qa, "
      "similarity (bi-encoder), cross-encoder or multiple-choice",
      name);
}

LabelKind parse_label_kind(const std::string& name) {
  if (name.empty() || name == "auto") return LabelKind::automatic;
  if (name == "single" || name == "single_label") return LabelKind::single_label;
  if (name == "multi" || name == "multi_label") return LabelKind::multi_label;
  if (name == "regression") return LabelKind::regression;
  fail<ValueError>("unknown label kind '{}'; use auto, single, multi or regression", name);
}

DataFormat parse_data_format(const std::string& name) {
  if (name.empty() || name == "auto") return DataFormat::automatic;
  if (name == "csv") return DataFormat::csv;
  if (name == "tsv") return DataFormat::tsv;
  if (name == "jsonl" || name == "json") return DataFormat::jsonl;
  fail<ValueError>("unknown data format '{}'; use auto, csv, tsv or jsonl", name);
}

std::string finetune_task_name(FinetuneTask task) {
  switch (task) {
    case FinetuneTask::sequence_classification:
      return "classification";
    case FinetuneTask::token_classification:
      return "ner";
    case FinetuneTask::question_answering:
      return "qa";
    case FinetuneTask::bi_encoder:
      return "bi-encoder";
    case FinetuneTask::cross_encoder:
      return "cross-encoder";
    case FinetuneTask::multiple_choice:
      return "multiple-choice";
  }
  return "?";
}

namespace {
// TextData with these rows and flags and no resolved column names.
TextData rows_only(std::vector<TextRow> rows, bool has_pair, bool has_label) {
  TextData d;
  d.rows = std::move(rows);
  d.has_pair = has_pair;
  d.has_label = has_label;
  return d;
}
}  // namespace

namespace {

std::string architecture_name(models::EncoderFamily family, EncoderHead head) {
  for (const auto& a : models::supported_architectures())
    if (a.family == family && a.head == head) return a.name;
  fail<ValueError>("no {} architecture for this head", models::family_name(family));
}

EncoderHead head_of(const BertConfig& c) {
  if (c.architectures.empty()) return EncoderHead::base;
  for (const auto& a : models::supported_architectures())
    if (a.name == c.architectures.front()) return a.head;
  return EncoderHead::base;
}

// Builds `head` over the weights of `dir`: a head the checkpoint lacks (or whose shape changed,
// e.g. another label count; HF's ignore_mismatched_sizes) is initialised from `seed` as HF does.
std::unique_ptr<models::EncoderModel> build_model(const std::string& dir, BertConfig cfg,
                                                  EncoderHead head, uint64_t seed) {
  // Seeds the default generator for the initialisation only, leaving the caller's stream as it was.
  const Generator::State outer = default_generator().state();
  manual_seed(seed);
  auto model = models::create_model(cfg, architecture_name(cfg.family, head));
  default_generator().set_state(outer);
  io::StateDict state = io::load_checkpoint_dir(dir);
  const nn::StateDict own = model->state_dict();
  for (auto it = state.begin(); it != state.end();) {
    auto o = own.find(it->first);
    if (o != own.end() && o->second.shape() != it->second.shape())
      it = state.erase(it);  // a new head of another size: keep the fresh initialisation
    else
      ++it;
  }
  models::LoadOptions lo;
  lo.zero_copy = false;
  lo.pooler_init_seed = seed;
  model->load(state, lo, dir);
  model->eval();
  return model;
}

// A seeded Fisher-Yates split: (train indices, held-out indices).
std::pair<std::vector<size_t>, std::vector<size_t>> split_indices(size_t n, double fraction,
                                                                  uint64_t seed) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  Generator g(seed);
  for (size_t i = n; i > 1; --i) std::swap(idx[i - 1], idx[g.next_u64() % i]);
  const size_t n_eval = static_cast<size_t>(std::llround(fraction * static_cast<double>(n)));
  std::vector<size_t> ev(idx.begin(), idx.begin() + std::min(n_eval, n));
  std::vector<size_t> tr(idx.begin() + std::min(n_eval, n), idx.end());
  std::sort(ev.begin(), ev.end());
  std::sort(tr.begin(), tr.end());
  return {tr, ev};
}

template <class T>
std::vector<T> take(const std::vector<T>& v, const std::vector<size_t>& idx) {
  std::vector<T> out;
  out.reserve(idx.size());
  for (size_t i : idx) out.push_back(v[i]);
  return out;
}

template <class T>
void limit(std::vector<T>& v, int64_t n) {
  if (n >= 0 && static_cast<int64_t>(v.size()) > n) v.resize(n);
}

// (train, eval) of a list of examples, from the files or a held-out fraction.
template <class T, class Read>
std::pair<std::vector<T>, std::vector<T>> load_splits(const FinetuneOptions& o, Read read) {
  std::vector<T> train, eval;
  if (!o.train_file.empty()) train = read(o.train_file);
  if (!o.eval_file.empty()) {
    eval = read(o.eval_file);
  } else if (o.eval_fraction > 0 && !train.empty()) {
    LMF_CHECK(o.eval_fraction < 1, ValueError, "eval_fraction must be in [0, 1), got {}",
              o.eval_fraction);
    auto [tr, ev] = split_indices(train.size(), o.eval_fraction, o.seed);
    eval = take(train, ev);
    train = take(train, tr);
  }
  limit(train, o.max_train_examples);
  limit(eval, o.max_eval_examples);
  return {std::move(train), std::move(eval)};
}

int64_t capped_max_length(const FinetuneOptions& o, const BertConfig& c) {
  const int64_t positions =
      c.max_position_embeddings - (c.family == models::EncoderFamily::roberta ? 2 : 0);
  return std::max<int64_t>(1, std::min(o.max_length, positions));
}

Tensor ids_tensor(const std::vector<int64_t>& v, const Shape& s) {
  return Tensor::from_vector<int64_t>(v, s);
}

bool default_label_names(const BertConfig& c) {
  for (const auto& [id, name] : c.id2label)
    if (name != fmt::format("LABEL_{}", id)) return false;
  return true;
}

// The model's own label order when it already has this head with the same label set (as
// run_glue / run_ner keep it), else `sorted`.
std::vector<std::string> choose_label_order(const BertConfig& c, EncoderHead head,
                                            EncoderHead wanted, std::vector<std::string> sorted) {
  if (head != wanted || default_label_names(c) ||
      static_cast<int64_t>(c.id2label.size()) != static_cast<int64_t>(sorted.size()))
    return sorted;
  std::vector<std::string> model_order;
  for (const auto& [id, name] : c.id2label) model_order.push_back(name);
  const std::set<std::string> a(model_order.begin(), model_order.end()),
      b(sorted.begin(), sorted.end());
  return a == b ? model_order : sorted;
}

// The label names of an already fine-tuned model (evaluation without training data).
std::vector<std::string> model_label_names(const BertConfig& c) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < c.num_labels; ++i) {
    auto it = c.id2label.find(i);
    names.push_back(it != c.id2label.end() ? it->second : fmt::format("LABEL_{}", i));
  }
  // "LABEL_i" defaults: data labels "0", "1", ... name the ids directly.
  if (default_label_names(c))
    for (int64_t i = 0; i < c.num_labels; ++i) names[i] = std::to_string(i);
  return names;
}

void set_labels(BertConfig& c, const std::vector<std::string>& names) {
  c.id2label.clear();
  c.label2id.clear();
  for (size_t i = 0; i < names.size(); ++i) {
    c.id2label[static_cast<int64_t>(i)] = names[i];
    c.label2id[names[i]] = static_cast<int64_t>(i);
  }
  c.num_labels = static_cast<int64_t>(names.size());
}

void copy_if_exists(const fs::path& from, const fs::path& to) {
  if (fs::is_regular_file(from)) fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

// Weighted mean of per-batch values (HF's eval loss: each batch weighted by its size).
struct RunningMean {
  double sum = 0, n = 0;
  void add(double v, double w) {
    sum += v * w;
    n += w;
  }
  double value() const { return n > 0 ? sum / n : 0.0; }
};

std::vector<std::vector<int64_t>> batches_of(size_t n, int64_t batch) {
  std::vector<std::vector<int64_t>> out;
  const size_t b = static_cast<size_t>(std::max<int64_t>(1, batch));
  for (size_t i = 0; i < n; i += b) {
    std::vector<int64_t> idx;
    for (size_t j = i; j < std::min(n, i + b); ++j) idx.push_back(static_cast<int64_t>(j));
    out.push_back(std::move(idx));
  }
  return out;
}

}  // namespace

// ---- base ---------------------------------------------------------------------------------------

FinetuneObjective::FinetuneObjective(const FinetuneOptions& options, FinetuneTask task)
    : options_(options), task_(task) {
  LMF_CHECK(!options.model_dir.empty(), ValueError, "fine-tuning needs a model folder");
  LMF_CHECK(!options.train_file.empty() || !options.eval_file.empty(), ValueError,
            "give a training file, an evaluation file, or both");
  tokenizer_ = tok::Tokenizer::from_pretrained(options.model_dir);
}

NamedTensors FinetuneObjective::parameters() const {
  NamedTensors out;
  for (auto& [name, t] : model_->named_parameters())
    if (t.requires_grad()) out.emplace_back(name, t);
  return out;
}

double FinetuneObjective::eval_loss(const std::function<Tensor(std::span<const int64_t>)>& batch) {
  NoGradGuard no_grad;
  set_training(false);
  RunningMean loss;
  for (const auto& idx : batches_of(eval_.size(), options_.eval_batch_size))
    loss.add(batch(idx).item(), static_cast<double>(idx.size()));
  return loss.value();
}

void FinetuneObjective::set_training(bool on) {
  model_->train(on);
}

int64_t FinetuneObjective::example_length(int64_t i) const {
  return train_.at(i).length();
}

models::EncoderInputs FinetuneObjective::batch_inputs(const std::vector<Feature>& features,
                                                      std::span<const int64_t> indices) const {
  const int64_t b = static_cast<int64_t>(indices.size());
  LMF_CHECK(b > 0, ValueError, "an empty batch");
  int64_t t = 0;
  for (int64_t i : indices) t = std::max(t, features.at(i).length());
  std::vector<int64_t> ids(b * t, pad_id_), mask(b * t, 0), types(b * t, 0);
  for (int64_t r = 0; r < b; ++r) {
    const Feature& f = features[indices[r]];
    for (int64_t j = 0; j < f.length(); ++j) {
      ids[r * t + j] = f.input_ids[j];
      types[r * t + j] = f.token_type_ids[j];
      mask[r * t + j] = 1;
    }
  }
  models::EncoderInputs in;
  in.input_ids = ids_tensor(ids, {b, t});
  in.attention_mask = ids_tensor(mask, {b, t});
  in.token_type_ids = ids_tensor(types, {b, t});
  return in;
}

void FinetuneObjective::save_pretrained(const std::string& dir) const {
  models::save_pretrained(*model_, dir);
  for (const char* f :
       {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
        "vocab.json", "merges.txt", "added_tokens.json", "spiece.model", "sentencepiece.bpe.model"})
    copy_if_exists(fs::path(options_.model_dir) / f, fs::path(dir) / f);
}

void FinetuneObjective::load_pretrained(const std::string& dir) {
  load_saved_weights(*model_, dir);
}

// ---- sequence classification / cross-encoder ----------------------------------------------------

namespace {

class SequenceClassificationObjective : public FinetuneObjective {
 public:
  SequenceClassificationObjective(const FinetuneOptions& o, FinetuneTask task)
      : FinetuneObjective(o, task) {
    BertConfig cfg = BertConfig::from_file(o.model_dir + "/config.json");
    const EncoderHead src_head = head_of(cfg);
    std::optional<TextData> probe;  // column facts (pair, label) of the first file read
    auto [train, eval] = load_splits<TextRow>(o, [&](const std::string& p) {
      TextData d = read_text_data(p, o.columns);
      if (!probe) probe = rows_only({}, d.has_pair, d.has_label);
      return std::move(d.rows);
    });
    LMF_CHECK(task != FinetuneTask::cross_encoder || probe->has_pair, ValueError,
              "the cross-encoder needs pairs: name the second text column (text_pair)");
    TextData train_data = rows_only(std::move(train), probe->has_pair, probe->has_label);
    TextData eval_data = rows_only(std::move(eval), probe->has_pair, probe->has_label);
    if (!train_data.rows.empty()) {
      labels_ = make_label_space(train_data, o.label_kind);
      if (labels_.kind != LabelKind::regression)
        labels_.names =
            choose_label_order(cfg, src_head, EncoderHead::sequence_classification, labels_.names);
    } else {
      LMF_CHECK(src_head == EncoderHead::sequence_classification, ValueError,
                "{}: evaluation without training needs a fine-tuned *ForSequenceClassification "
                "model",
                o.model_dir);
      labels_.kind = cfg.problem_type == "regression" || cfg.num_labels == 1 ? LabelKind::regression
                     : cfg.problem_type == "multi_label_classification" ? LabelKind::multi_label
                                                                        : LabelKind::single_label;
      if (labels_.kind != LabelKind::regression) labels_.names = model_label_names(cfg);
    }
    if (labels_.kind == LabelKind::regression) {
      if (cfg.num_labels != 1 || src_head != EncoderHead::sequence_classification)
        set_labels(cfg, {"LABEL_0"});
      cfg.problem_type = "regression";
    } else {
      if (src_head == EncoderHead::sequence_classification && train_data.rows.empty()) {
        // keep the model's own id2label
      } else {
        set_labels(cfg, labels_.names);
      }
      cfg.problem_type = labels_.kind == LabelKind::multi_label ? "multi_label_classification"
                                                                : "single_label_classification";
    }
    cfg.architectures = {architecture_name(cfg.family, EncoderHead::sequence_classification)};
    model_ = build_model(o.model_dir, cfg, EncoderHead::sequence_classification, o.seed);
    pad_id_ = cfg.pad_token_id;
    label_names_ = labels_.names;
    const int64_t max_len = capped_max_length(o, cfg);
    train_ = classification_features(tokenizer_, train_data, labels_, max_len);
    eval_ = classification_features(tokenizer_, eval_data, labels_, max_len);
  }

  BatchLoss loss(std::span<const int64_t> indices, Generator&) override {
    return batch_loss(train_, indices, nullptr);
  }

  Metrics evaluate() override {
    if (eval_.empty()) return {};
    std::vector<std::vector<float>> logits;
    Metrics m{{"eval_loss", eval_loss([&](std::span<const int64_t> idx) {
                 return batch_loss(eval_, idx, &logits).loss;
               })}};
    if (labels_.kind == LabelKind::regression) {
      std::vector<double> pred, gold;
      for (size_t i = 0; i < eval_.size(); ++i) {
        pred.push_back(logits[i][0]);
        gold.push_back(eval_[i].targets[0]);
      }
      m["eval_pearson"] = pearson(pred, gold);
      m["eval_spearmanr"] = spearman(pred, gold);
    } else if (labels_.kind == LabelKind::multi_label) {
      std::vector<std::vector<int>> pred, gold;
      int64_t exact = 0;
      for (size_t i = 0; i < eval_.size(); ++i) {
        std::vector<int> p, g;
        for (size_t j = 0; j < logits[i].size(); ++j) {
          p.push_back(logits[i][j] > 0 ? 1 : 0);  // sigmoid > 0.5
          g.push_back(eval_[i].targets[j] > 0.5f ? 1 : 0);
        }
        exact += p == g;
        pred.push_back(std::move(p));
        gold.push_back(std::move(g));
      }
      m["eval_accuracy"] = static_cast<double>(exact) / static_cast<double>(eval_.size());
      m["eval_f1"] = precision_recall_f1_multilabel(gold, pred, Average::macro).f1;
      m["eval_micro_f1"] = precision_recall_f1_multilabel(gold, pred, Average::micro).f1;
    } else {
      std::vector<int64_t> pred, gold;
      for (size_t i = 0; i < eval_.size(); ++i) {
        pred.push_back(std::max_element(logits[i].begin(), logits[i].end()) - logits[i].begin());
        gold.push_back(eval_[i].label);
      }
      m["eval_accuracy"] = accuracy(gold, pred);
      m["eval_f1"] = precision_recall_f1(gold, pred, Average::macro).f1;
      m["eval_micro_f1"] = precision_recall_f1(gold, pred, Average::micro).f1;
    }
    return m;
  }

 private:
  BatchLoss batch_loss(const std::vector<Feature>& feats, std::span<const int64_t> idx,
                       std::vector<std::vector<float>>* logits_out) {
    models::EncoderInputs in = batch_inputs(feats, idx);
    const int64_t b = static_cast<int64_t>(idx.size());
    models::EncoderLabels lab;
    if (labels_.kind == LabelKind::single_label) {
      std::vector<int64_t> y;
      for (int64_t i : idx) {
        LMF_CHECK(feats[i].label >= 0, ValueError, "example {} has no label", i);
        y.push_back(feats[i].label);
      }
      lab.labels = ids_tensor(y, {b});
    } else {
      const int64_t n = labels_.num_labels();
      std::vector<float> y;
      for (int64_t i : idx) {
        LMF_CHECK(static_cast<int64_t>(feats[i].targets.size()) == n, ValueError,
                  "example {} has no label", i);
        y.insert(y.end(), feats[i].targets.begin(), feats[i].targets.end());
      }
      lab.labels = labels_.kind == LabelKind::regression ? Tensor::from_vector<float>(y, {b})
                                                         : Tensor::from_vector<float>(y, {b, n});
    }
    models::ModelOutput out = model_->forward(in, lab);
    if (logits_out) {
      const Tensor l = out.logits.contiguous();
      const int64_t c = l.numel() / b;
      const auto v = l.to_vector<float>();
      for (int64_t r = 0; r < b; ++r)
        logits_out->emplace_back(v.begin() + r * c, v.begin() + (r + 1) * c);
    }
    BatchLoss bl;
    bl.loss = out.loss;
    for (int64_t i : idx) bl.tokens += feats[i].length();
    return bl;
  }

  LabelSpace labels_;
};

// ---- token classification -----------------------------------------------------------------------

class TokenClassificationObjective : public FinetuneObjective {
 public:
  explicit TokenClassificationObjective(const FinetuneOptions& o)
      : FinetuneObjective(o, FinetuneTask::token_classification) {
    BertConfig cfg = BertConfig::from_file(o.model_dir + "/config.json");
    const EncoderHead src_head = head_of(cfg);
    auto [train, eval] = load_splits<Sentence>(o, [](const std::string& p) {
      TokenData d = read_token_data(p);
      std::vector<Sentence> out;
      for (size_t i = 0; i < d.words.size(); ++i)
        out.push_back({std::move(d.words[i]), std::move(d.tags[i]), std::move(d.where[i])});
      return out;
    });
    const TokenData train_data = gather(train), eval_data = gather(eval);
    if (!train_data.words.empty()) {
      label_names_ = choose_label_order(cfg, src_head, EncoderHead::token_classification,
                                        token_label_list(train_data));
      set_labels(cfg, label_names_);
    } else {
      LMF_CHECK(src_head == EncoderHead::token_classification, ValueError,
                "{}: evaluation without training needs a fine-tuned *ForTokenClassification model",
                o.model_dir);
      label_names_ = model_label_names(cfg);
    }
    cfg.architectures = {architecture_name(cfg.family, EncoderHead::token_classification)};
    model_ = build_model(o.model_dir, cfg, EncoderHead::token_classification, o.seed);
    pad_id_ = cfg.pad_token_id;
    std::map<std::string, int64_t> label2id;
    for (size_t i = 0; i < label_names_.size(); ++i)
      label2id[label_names_[i]] = static_cast<int64_t>(i);
    const int64_t max_len = capped_max_length(o, cfg);
    train_ = token_classification_features(tokenizer_, train_data, label2id, max_len);
    eval_ = token_classification_features(tokenizer_, eval_data, label2id, max_len);
  }

  BatchLoss loss(std::span<const int64_t> indices, Generator&) override {
    return batch_loss(train_, indices, nullptr);
  }

  Metrics evaluate() override {
    if (eval_.empty()) return {};
    std::vector<std::vector<std::string>> gold, pred;
    const double loss = eval_loss([&](std::span<const int64_t> idx) {
      std::vector<std::vector<int64_t>> argmax;
      Tensor batch_mean = batch_loss(eval_, idx, &argmax).loss;
      for (size_t r = 0; r < idx.size(); ++r) {
        const Feature& f = eval_[idx[r]];
        std::vector<std::string> g, p;
        for (size_t j = 0; j < f.token_labels.size(); ++j) {
          if (f.token_labels[j] == -100) continue;
          g.push_back(label_names_[f.token_labels[j]]);
          p.push_back(label_names_[argmax[r][j]]);
        }
        gold.push_back(std::move(g));
        pred.push_back(std::move(p));
      }
      return batch_mean;
    });
    const SeqevalScores s = seqeval_scores(gold, pred);
    return {{"eval_loss", loss},
            {"eval_precision", s.precision},
            {"eval_recall", s.recall},
            {"eval_f1", s.f1},
            {"eval_accuracy", s.accuracy}};
  }

 private:
  struct Sentence {
    std::vector<std::string> words, tags;
    std::string where;
  };

  static TokenData gather(std::vector<Sentence>& sentences) {
    TokenData d;
    for (auto& s : sentences) {
      d.words.push_back(std::move(s.words));
      d.tags.push_back(std::move(s.tags));
      d.where.push_back(std::move(s.where));
    }
    return d;
  }

  BatchLoss batch_loss(const std::vector<Feature>& feats, std::span<const int64_t> idx,
                       std::vector<std::vector<int64_t>>* argmax_out) {
    models::EncoderInputs in = batch_inputs(feats, idx);
    const int64_t b = in.input_ids.size(0), t = in.input_ids.size(1);
    std::vector<int64_t> y(b * t, -100);
    BatchLoss bl;
    for (int64_t r = 0; r < b; ++r) {
      const Feature& f = feats[idx[r]];
      for (int64_t j = 0; j < f.length(); ++j) y[r * t + j] = f.token_labels[j];
      bl.tokens += f.length();
    }
    models::EncoderLabels lab;
    lab.labels = ids_tensor(y, {b, t});
    models::ModelOutput out = model_->forward(in, lab);
    bl.loss = out.loss;
    if (argmax_out) {
      const auto am = argmax(out.logits, -1).to_vector<int64_t>();
      for (int64_t r = 0; r < b; ++r)
        argmax_out->emplace_back(am.begin() + r * t, am.begin() + (r + 1) * t);
    }
    return bl;
  }
};

// ---- question answering -------------------------------------------------------------------------

class QuestionAnsweringObjective : public FinetuneObjective {
 public:
  explicit QuestionAnsweringObjective(const FinetuneOptions& o)
      : FinetuneObjective(o, FinetuneTask::question_answering) {
    BertConfig cfg = BertConfig::from_file(o.model_dir + "/config.json");
    auto [train, eval] = load_splits<QaExample>(o, read_squad);
    eval_examples_ = std::move(eval);
    if (train.empty())
      LMF_CHECK(head_of(cfg) == EncoderHead::question_answering, ValueError,
                "{}: evaluation without training needs a fine-tuned *ForQuestionAnswering model",
                o.model_dir);
    cfg.architectures = {architecture_name(cfg.family, EncoderHead::question_answering)};
    model_ = build_model(o.model_dir, cfg, EncoderHead::question_answering, o.seed);
    pad_id_ = cfg.pad_token_id;
    post_ = o.qa;
    if (o.version_2_with_negative) {
      post_.version_2_with_negative = *o.version_2_with_negative;
    } else {
      const auto unanswerable = [](const QaExample& e) { return e.answer_texts.empty(); };
      post_.version_2_with_negative =
          std::any_of(train.begin(), train.end(), unanswerable) ||
          std::any_of(eval_examples_.begin(), eval_examples_.end(), unanswerable);
    }
    const int64_t max_len = capped_max_length(o, cfg);
    train_ = qa_features(tokenizer_, train, max_len, o.doc_stride);
    eval_ = qa_features(tokenizer_, eval_examples_, max_len, o.doc_stride);
  }

  BatchLoss loss(std::span<const int64_t> indices, Generator&) override {
    return batch_loss(train_, indices, nullptr, nullptr);
  }

  Metrics evaluate() override {
    if (eval_.empty()) return {};
    std::vector<std::vector<float>> starts, ends;
    const double loss = eval_loss([&](std::span<const int64_t> idx) {
      return batch_loss(eval_, idx, &starts, &ends).loss;
    });
    const auto preds = postprocess_qa_predictions(eval_examples_, eval_, starts, ends, post_);
    std::vector<std::vector<std::string>> golds;
    for (const auto& e : eval_examples_) golds.push_back(e.answer_texts);
    const SquadScores s = squad_scores(preds, golds, post_.version_2_with_negative);
    return {{"eval_loss", loss}, {"eval_exact_match", s.exact_match}, {"eval_f1", s.f1}};
  }

 private:
  BatchLoss batch_loss(const std::vector<Feature>& feats, std::span<const int64_t> idx,
                       std::vector<std::vector<float>>* starts,
                       std::vector<std::vector<float>>* ends) {
    models::EncoderInputs in = batch_inputs(feats, idx);
    const int64_t b = in.input_ids.size(0), t = in.input_ids.size(1);
    std::vector<int64_t> sp, ep;
    BatchLoss bl;
    for (int64_t i : idx) {
      sp.push_back(feats[i].start_position);
      ep.push_back(feats[i].end_position);
      bl.tokens += feats[i].length();
    }
    models::EncoderLabels lab;
    lab.start_positions = ids_tensor(sp, {b});
    lab.end_positions = ids_tensor(ep, {b});
    models::ModelOutput out = model_->forward(in, lab);
    bl.loss = out.loss;
    if (starts) {
      const auto s = out.start_logits.contiguous().to_vector<float>();
      const auto e = out.end_logits.contiguous().to_vector<float>();
      for (int64_t r = 0; r < b; ++r) {
        const int64_t len = feats[idx[r]].length();  // drop the padding columns
        starts->emplace_back(s.begin() + r * t, s.begin() + r * t + len);
        ends->emplace_back(e.begin() + r * t, e.begin() + r * t + len);
      }
    }
    return bl;
  }

  std::vector<QaExample> eval_examples_;
  QaPostprocessOptions post_;
};

// ---- bi-encoder ---------------------------------------------------------------------------------

class BiEncoderObjective : public FinetuneObjective {
 public:
  explicit BiEncoderObjective(const FinetuneOptions& o)
      : FinetuneObjective(o, FinetuneTask::bi_encoder) {
    BertConfig cfg = BertConfig::from_file(o.model_dir + "/config.json");
    TextColumns cols = o.columns;
    std::optional<TextData> first;  // column facts (pair, label) of the first file read
    auto [train, eval] = load_splits<TextRow>(o, [&](const std::string& p) {
      TextData d = read_text_data(p, cols);
      if (!first) first = rows_only({}, d.has_pair, d.has_label);
      return std::move(d.rows);
    });
    const TextData& probe = *first;
    LMF_CHECK(probe.has_pair, ValueError,
              "the bi-encoder trains on pairs: name the second text column (text_pair)");
    loss_ = o.similarity_loss.empty() ? (probe.has_label ? "cosine" : "mnrl") : o.similarity_loss;
    LMF_CHECK(loss_ == "mnrl" || loss_ == "cosine", ValueError,
              "unknown similarity loss '{}'; use mnrl or cosine", loss_);
    LMF_CHECK(loss_ == "mnrl" || probe.has_label, ValueError,
              "the cosine loss needs a similarity score column (label)");
    pooling_ = read_pooling(o.model_dir);
    cfg.architectures = {architecture_name(cfg.family, EncoderHead::base)};
    model_ = build_model(o.model_dir, cfg, EncoderHead::base, o.seed);
    pad_id_ = cfg.pad_token_id;
    const int64_t max_len = capped_max_length(o, cfg);
    make_pairs(rows_only(std::move(train), true, probe.has_label), max_len, train_, train_b_);
    make_pairs(rows_only(std::move(eval), true, probe.has_label), max_len, eval_, eval_b_);
  }

  int64_t example_length(int64_t i) const override {
    return train_.at(i).length() + train_b_.at(i).length();
  }

  BatchLoss loss(std::span<const int64_t> indices, Generator&) override {
    return batch_loss(train_, train_b_, indices, nullptr);
  }

  Metrics evaluate() override {
    if (eval_.empty()) return {};
    std::vector<double> cos, gold;
    Metrics m{{"eval_loss", eval_loss([&](std::span<const int64_t> idx) {
                 return batch_loss(eval_, eval_b_, idx, &cos).loss;
               })}};
    if (!eval_[0].targets.empty() && eval_.size() >= 2) {
      for (const auto& f : eval_) gold.push_back(f.targets[0]);
      m["eval_pearson"] = pearson(cos, gold);
      m["eval_spearman"] = spearman(cos, gold);
    }
    return m;
  }

  void save_pretrained(const std::string& dir) const override {
    FinetuneObjective::save_pretrained(dir);
    const fs::path src(options_.model_dir), dst(dir);
    bool has_modules = fs::is_regular_file(src / "modules.json");
    for (const char* f :
         {"modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"})
      copy_if_exists(src / f, dst / f);
    for (const auto& e : fs::directory_iterator(src)) {
      const std::string name = e.path().filename().string();
      if (e.is_directory() && !name.empty() && std::isdigit(static_cast<unsigned char>(name[0])) &&
          name.find('_') != std::string::npos)
        fs::copy(e.path(), dst / name,
                 fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    }
    if (!has_modules) write_default_modules(dst);
  }

 private:
  static tasks::Pooling read_pooling(const std::string& dir) {
    const fs::path p = fs::path(dir) / "1_Pooling" / "config.json";
    if (!fs::is_regular_file(p)) return tasks::Pooling::mean;
    const auto j = io::read_json_file(p.string());
    if (j.value("pooling_mode_cls_token", false)) return tasks::Pooling::cls;
    if (j.value("pooling_mode_max_tokens", false)) return tasks::Pooling::max;
    if (j.value("pooling_mode_mean_sqrt_len_tokens", false)) return tasks::Pooling::mean_sqrt_len;
    return tasks::Pooling::mean;
  }

  void write_default_modules(const fs::path& dst) const {
    const int64_t h = model_->config().hidden_size;
    nlohmann::json modules =
        nlohmann::json::array({{{"idx", 0},
                                {"name", "0"},
                                {"path", ""},
                                {"type", "sentence_transformers.models.Transformer"}},
                               {{"idx", 1},
                                {"name", "1"},
                                {"path", "1_Pooling"},
                                {"type", "sentence_transformers.models.Pooling"}}});
    std::ofstream(dst / "modules.json") << modules.dump(2) << "\n";
    fs::create_directories(dst / "1_Pooling");
    nlohmann::json pool = {
        {"word_embedding_dimension", h},
        {"pooling_mode_cls_token", pooling_ == tasks::Pooling::cls},
        {"pooling_mode_mean_tokens", pooling_ == tasks::Pooling::mean},
        {"pooling_mode_max_tokens", pooling_ == tasks::Pooling::max},
        {"pooling_mode_mean_sqrt_len_tokens", pooling_ == tasks::Pooling::mean_sqrt_len}};
    std::ofstream(dst / "1_Pooling" / "config.json") << pool.dump(2) << "\n";
    nlohmann::json sb = {{"max_seq_length", options_.max_length}, {"do_lower_case", false}};
    std::ofstream(dst / "sentence_bert_config.json") << sb.dump(2) << "\n";
  }

  void make_pairs(const TextData& data, int64_t max_len, std::vector<Feature>& a,
                  std::vector<Feature>& b) {
    TextData first, second;
    first.has_label = second.has_label = data.has_label;
    for (const auto& r : data.rows) {
      TextRow x = r, y = r;
      y.text = r.text_pair;
      x.text_pair.clear();
      y.text_pair.clear();
      first.rows.push_back(std::move(x));
      second.rows.push_back(std::move(y));
    }
    LabelSpace scores;
    scores.kind = LabelKind::regression;
    if (data.has_label) make_label_space(data, LabelKind::regression);  // checks the numbers
    a = classification_features(tokenizer_, first, scores, max_len);
    b = classification_features(tokenizer_, second, scores, max_len);
  }

  Tensor embed(const std::vector<Feature>& feats, std::span<const int64_t> idx) {
    models::EncoderInputs in = batch_inputs(feats, idx);
    models::ModelOutput out = model_->forward(in);
    return tasks::pool(out.last_hidden_state, in.attention_mask, pooling_);
  }

  BatchLoss batch_loss(const std::vector<Feature>& fa, const std::vector<Feature>& fb,
                       std::span<const int64_t> idx, std::vector<double>* cos_out) {
    const int64_t n = static_cast<int64_t>(idx.size());
    Tensor ea = embed(fa, idx), eb = embed(fb, idx);
    BatchLoss bl;
    for (int64_t i : idx) bl.tokens += fa[i].length() + fb[i].length();
    const Tensor na = tasks::l2_normalize(ea, 1e-8), nb = tasks::l2_normalize(eb, 1e-8);
    const Tensor cos = sum(mul(na, nb), {-1});  // [n]
    if (cos_out)
      for (float c : cos.to_vector<float>()) cos_out->push_back(c);
    if (loss_ == "mnrl") {
      // MultipleNegativesRankingLoss: the i-th positive against every other pair's in the batch.
      const Tensor scores = mul(matmul(na, nb, false, true), options_.mnrl_scale);
      bl.loss = cross_entropy(scores, Tensor::arange(n));
    } else {
      std::vector<float> y;
      for (int64_t i : idx) y.push_back(fa[i].targets.at(0));
      bl.loss = mse_loss(cos, Tensor::from_vector<float>(y, {n}));
    }
    return bl;
  }

  std::vector<Feature> train_b_, eval_b_;
  std::string loss_;
  tasks::Pooling pooling_ = tasks::Pooling::mean;
};

// ---- multiple choice ----------------------------------------------------------------------------

class MultipleChoiceObjective : public FinetuneObjective {
 public:
  explicit MultipleChoiceObjective(const FinetuneOptions& o)
      : FinetuneObjective(o, FinetuneTask::multiple_choice) {
    BertConfig cfg = BertConfig::from_file(o.model_dir + "/config.json");
    auto [train, eval] = load_splits<ChoiceRow>(
        o, [&](const std::string& p) { return read_multiple_choice(p, o.choice_columns); });
    if (train.empty())
      LMF_CHECK(head_of(cfg) == EncoderHead::multiple_choice, ValueError,
                "{}: evaluation without training needs a fine-tuned *ForMultipleChoice model",
                o.model_dir);
    cfg.architectures = {architecture_name(cfg.family, EncoderHead::multiple_choice)};
    model_ = build_model(o.model_dir, cfg, EncoderHead::multiple_choice, o.seed);
    pad_id_ = cfg.pad_token_id;
    const int64_t max_len = capped_max_length(o, cfg);
    train_ = multiple_choice_features(tokenizer_, train, max_len);
    eval_ = multiple_choice_features(tokenizer_, eval, max_len);
  }

  BatchLoss loss(std::span<const int64_t> indices, Generator&) override {
    return batch_loss(train_, indices, nullptr);
  }

  Metrics evaluate() override {
    if (eval_.empty()) return {};
    std::vector<int64_t> pred, gold;
    const double loss = eval_loss([&](std::span<const int64_t> idx) {
      for (int64_t i : idx) gold.push_back(eval_[i].label);
      return batch_loss(eval_, idx, &pred).loss;
    });
    return {{"eval_loss", loss}, {"eval_accuracy", accuracy(gold, pred)}};
  }

 private:
  BatchLoss batch_loss(const std::vector<Feature>& feats, std::span<const int64_t> idx,
                       std::vector<int64_t>* pred) {
    const int64_t b = static_cast<int64_t>(idx.size());
    const int64_t c = static_cast<int64_t>(feats.at(idx[0]).choices.size());
    // Every choice of the batch as one row, padded together, then viewed as [B, C, T].
    std::vector<Feature> flat;
    std::vector<int64_t> y;
    BatchLoss bl;
    for (int64_t i : idx) {
      LMF_CHECK(static_cast<int64_t>(feats[i].choices.size()) == c, ValueError,
                "example {} has {} choices, the batch {}", i, feats[i].choices.size(), c);
      LMF_CHECK(feats[i].label >= 0, ValueError, "example {} has no label", i);
      flat.insert(flat.end(), feats[i].choices.begin(), feats[i].choices.end());
      y.push_back(feats[i].label);
      bl.tokens += feats[i].length();
    }
    std::vector<int64_t> all(flat.size());
    std::iota(all.begin(), all.end(), 0);
    models::EncoderInputs in = batch_inputs(flat, all);
    const int64_t t = in.input_ids.size(1);
    in.input_ids = in.input_ids.view({b, c, t});
    in.attention_mask = in.attention_mask.view({b, c, t});
    in.token_type_ids = in.token_type_ids.view({b, c, t});
    models::EncoderLabels lab;
    lab.labels = ids_tensor(y, {b});
    models::ModelOutput out = model_->forward(in, lab);
    bl.loss = out.loss;
    if (pred) {
      const auto am = argmax(out.logits, -1).to_vector<int64_t>();
      pred->insert(pred->end(), am.begin(), am.end());
    }
    return bl;
  }
};

FinetuneTask infer_task(const FinetuneOptions& o) {
  if (!o.task.empty()) return parse_finetune_task(o.task);
  const BertConfig cfg = BertConfig::from_file(o.model_dir + "/config.json");
  switch (head_of(cfg)) {
    case EncoderHead::sequence_classification:
      return FinetuneTask::sequence_classification;
    case EncoderHead::token_classification:
      return FinetuneTask::token_classification;
    case EncoderHead::question_answering:
      return FinetuneTask::question_answering;
    case EncoderHead::multiple_choice:
      return FinetuneTask::multiple_choice;
    case EncoderHead::base:
      if (fs::is_regular_file(fs::path(o.model_dir) / "modules.json"))
        return FinetuneTask::bi_encoder;
      break;
    default:
      break;
  }
  fail<ValueError>(
      "{}: cannot tell the task from the model ({}); name it (classification, ner, "
      "qa, similarity, cross-encoder)",
      o.model_dir, cfg.architectures.empty() ? "no architectures" : cfg.architectures[0]);
}

}  // namespace

std::unique_ptr<FinetuneObjective> make_finetune_objective(const FinetuneOptions& options) {
  const FinetuneTask task = infer_task(options);
  switch (task) {
    case FinetuneTask::sequence_classification:
    case FinetuneTask::cross_encoder:
      return std::make_unique<SequenceClassificationObjective>(options, task);
    case FinetuneTask::token_classification:
      return std::make_unique<TokenClassificationObjective>(options);
    case FinetuneTask::question_answering:
      return std::make_unique<QuestionAnsweringObjective>(options);
    case FinetuneTask::bi_encoder:
      return std::make_unique<BiEncoderObjective>(options);
    case FinetuneTask::multiple_choice:
      return std::make_unique<MultipleChoiceObjective>(options);
  }
  fail<ValueError>("unknown task");
}

Metrics evaluate_model(const FinetuneOptions& options) {
  LMF_CHECK(!options.eval_file.empty(), ValueError, "evaluation needs a data file (eval_file)");
  FinetuneOptions o = options;
  o.train_file.clear();
  return make_finetune_objective(o)->evaluate();
}

}  // namespace lmf::train
