// The pretraining objectives (MLM+NSP, MLM+SOP, MLM only) over an encoder of the BERT family,
// and the factory behind `lmforge pretrain`.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/models/bert.h"
#include "lmforge/models/registry.h"
#include "lmforge/ops/ops.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/train/hf_folder.h"
#include "lmforge/train/pretrain.h"

namespace fs = std::filesystem;

namespace lmf::train {

// ---- batches ------------------------------------------------------------------------------------

PretrainBatch collate(std::span<const PretrainInstance* const> instances, int32_t pad_id) {
  LMF_CHECK(!instances.empty(), ValueError, "collate: empty batch");
  const auto b = static_cast<int64_t>(instances.size());
  int64_t t = 0;
  bool with_sentence = instances[0]->sentence_label >= 0;
  for (const auto* in : instances) {
    t = std::max(t, in->size());
    LMF_CHECK(static_cast<int64_t>(in->labels.size()) == in->size(), ValueError,
              "collate: an instance is not masked (labels has {} entries for {} tokens)",
              in->labels.size(), in->size());
    LMF_CHECK((in->sentence_label >= 0) == with_sentence, ValueError,
              "collate: instances with and without a sentence label in one batch");
  }
  std::vector<int64_t> ids(b * t, pad_id), mask(b * t, 0), types(b * t, 0), labels(b * t, -100);
  std::vector<int64_t> sent;
  PretrainBatch out;
  for (int64_t r = 0; r < b; ++r) {
    const PretrainInstance& in = *instances[r];
    for (int64_t j = 0; j < in.size(); ++j) {
      ids[r * t + j] = in.input_ids[j];
      mask[r * t + j] = 1;
      types[r * t + j] = in.token_type_ids.empty() ? 0 : in.token_type_ids[j];
      labels[r * t + j] = in.labels[j];
    }
    out.tokens += in.size();
    if (with_sentence) sent.push_back(in.sentence_label);
  }
  out.input_ids = Tensor::from_vector(ids, {b, t});
  out.attention_mask = Tensor::from_vector(mask, {b, t});
  out.token_type_ids = Tensor::from_vector(types, {b, t});
  out.labels = Tensor::from_vector(labels, {b, t});
  if (with_sentence) out.sentence_labels = Tensor::from_vector(sent, {b});
  return out;
}

// ---- objective ----------------------------------------------------------------------------------

namespace {
constexpr uint64_t kEvalMaskSalt = 0x6576616c6d61736bULL;  // "evalmask"

void mask_all(std::vector<PretrainInstance>& v, const SpecialTokens& sp, const MaskingOptions& m,
              Generator& rng) {
  for (auto& in : v)
    if (in.labels.size() != in.input_ids.size())
      mask_tokens(in.input_ids, in.labels, in.word_start, sp, m, rng);
}
}  // namespace

PretrainObjective::PretrainObjective(std::unique_ptr<models::EncoderModel> model,
                                     SpecialTokens special, std::vector<PretrainInstance> train,
                                     std::vector<PretrainInstance> eval, Config config)
    : model_(std::move(model)),
      special_(std::move(special)),
      train_(std::move(train)),
      eval_(std::move(eval)),
      cfg_(std::move(config)) {
  LMF_CHECK(model_ != nullptr, ValueError, "PretrainObjective: no model");
  const models::EncoderHead h = model_->head();
  LMF_CHECK(h == models::EncoderHead::pretraining || h == models::EncoderHead::masked_lm,
            ValueError, "pretraining needs an *ForPreTraining or *ForMaskedLM model, not {}",
            model_->architecture());
  LMF_CHECK(model_->config().family != models::EncoderFamily::electra ||
                h == models::EncoderHead::masked_lm,
            ValueError,
            "ElectraForPreTraining is the RTD discriminator; use the ELECTRA objective");
  LMF_CHECK(cfg_.eval_batch_size >= 1, ValueError, "eval_batch_size must be >= 1");
  const bool wants_sentence = has_sentence_task();
  for (const auto* set : {&train_, &eval_})
    for (const auto& in : *set)
      LMF_CHECK((in.sentence_label >= 0) == wants_sentence, ValueError,
                "{} needs instances {} a sentence label (use the {} recipe)",
                model_->architecture(), wants_sentence ? "with" : "without",
                wants_sentence ? sentence_task() : "roberta");
  const models::BertConfig& mc = model_->config();
  const int64_t max_len = mc.max_position_embeddings -
                          (mc.family == models::EncoderFamily::roberta ? mc.pad_token_id + 1 : 0);
  for (const auto* set : {&train_, &eval_})
    for (const auto& in : *set)
      LMF_CHECK(in.size() <= max_len, ValueError,
                "an instance has {} tokens, more than the model's positions allow ({})", in.size(),
                max_len);
  if (!cfg_.dynamic_masking) {
    Generator g(cfg_.seed);
    mask_all(train_, special_, cfg_.masking, g);
  }
  Generator ge(cfg_.seed ^ kEvalMaskSalt);
  mask_all(eval_, special_, cfg_.masking, ge);
}

PretrainObjective::~PretrainObjective() = default;

bool PretrainObjective::has_sentence_task() const {
  return model_->head() == models::EncoderHead::pretraining;
}

const char* PretrainObjective::sentence_task() const {
  if (!has_sentence_task()) return "";
  return model_->config().family == models::EncoderFamily::albert ? "sop" : "nsp";
}

NamedTensors PretrainObjective::parameters() const {
  return model_->named_parameters();
}

void PretrainObjective::set_training(bool on) {
  model_->train(on);
}

int64_t PretrainObjective::num_examples() const {
  return static_cast<int64_t>(train_.size());
}

int64_t PretrainObjective::example_length(int64_t i) const {
  LMF_CHECK(i >= 0 && i < num_examples(), IndexError, "example {} out of range [0, {})", i,
            num_examples());
  return train_[i].size();
}

PretrainBatch PretrainObjective::make_batch(std::span<const int64_t> indices,
                                            Generator& rng) const {
  std::vector<PretrainInstance> masked;
  std::vector<const PretrainInstance*> ptrs;
  masked.reserve(indices.size());
  for (int64_t i : indices) {
    LMF_CHECK(i >= 0 && i < num_examples(), IndexError, "example {} out of range [0, {})", i,
              num_examples());
    if (cfg_.dynamic_masking) {
      PretrainInstance copy = train_[i];
      mask_tokens(copy.input_ids, copy.labels, copy.word_start, special_, cfg_.masking, rng);
      masked.push_back(std::move(copy));
    }
  }
  for (size_t k = 0; k < indices.size(); ++k)
    ptrs.push_back(cfg_.dynamic_masking ? &masked[k] : &train_[indices[k]]);
  return collate(ptrs, special_.pad);
}

namespace {
int64_t count_labels(const Tensor& labels) {
  const int64_t* p = labels.data<int64_t>();
  return std::count_if(p, p + labels.numel(), [](int64_t v) { return v != -100; });
}

// Parameter names of the MLM transform/decoder and the NSP/SOP classifier, per family.
struct HeadNames {
  std::string dense, norm, decoder, seq;
};
HeadNames head_names(const models::EncoderModel& m) {
  using F = models::EncoderFamily;
  switch (m.config().family) {
    case F::bert:
      return {"cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
              "cls.predictions.decoder", "cls.seq_relationship"};
    case F::roberta:
      return {"lm_head.dense", "lm_head.layer_norm", "lm_head.decoder", ""};
    case F::albert:
      return {"predictions.dense", "predictions.LayerNorm", "predictions.decoder",
              "sop_classifier.classifier"};
    case F::electra:
      return {"generator_predictions.dense", "generator_predictions.LayerNorm", "generator_lm_head",
              ""};
  }
  return {};
}
}  // namespace

Tensor sparse_mlm_logits(models::EncoderModel& m, const Tensor& h,
                         const std::vector<int64_t>& rows) {
  LMF_CHECK(!rows.empty() && h.dim() == 2, ValueError,
            "sparse_mlm_logits: want hidden states [N, hidden] and at least one row, got {} and {} "
            "rows",
            h.describe(), rows.size());
  const models::BertConfig& c = m.config();
  const HeadNames n = head_names(m);
  const auto k = static_cast<int64_t>(rows.size());
  Tensor x = embedding(h, Tensor::from_vector(rows, {k}));  // row gather with scatter-add grad
  const bool plain_gelu =
      c.family == models::EncoderFamily::roberta || c.family == models::EncoderFamily::electra;
  x = linear(x, m.parameter(n.dense + ".weight"), m.parameter(n.dense + ".bias"),
             plain_gelu ? Activation::gelu : c.hidden_act);
  x = layer_norm(x, m.parameter(n.norm + ".weight"), m.parameter(n.norm + ".bias"),
                 c.layer_norm_eps);
  return linear(x, m.parameter(n.decoder + ".weight"), m.parameter(n.decoder + ".bias"));
}

PretrainObjective::Forward PretrainObjective::run(const PretrainBatch& b) const {
  models::EncoderInputs in;
  in.input_ids = b.input_ids;
  in.attention_mask = b.attention_mask;
  in.token_type_ids = b.token_type_ids;
  Forward f;
  if (!cfg_.sparse_mlm) {
    models::ModelOutput o = model_->forward(in);
    f.mlm_logits = o.logits.reshape({-1, o.logits.size(-1)});
    f.mlm_labels = b.labels.reshape({-1});
    f.seq_logits = o.seq_relationship_logits;
    return f;
  }
  // The encoder once, then the MLM head only on the chosen positions (the loss ignores the
  // others), and the sentence head on the pooler: the same loss, without the [B*T, V] logits.
  models::EncoderModel& m = *model_;
  const models::BertConfig& c = m.config();
  models::ModelOutput o = m.encoder().forward(in);
  Tensor h = o.last_hidden_state.reshape({-1, o.last_hidden_state.size(-1)});
  std::vector<int64_t> rows, labels;
  const int64_t* lab = b.labels.data<int64_t>();
  for (int64_t i = 0; i < b.labels.numel(); ++i)
    if (lab[i] != -100) rows.push_back(i), labels.push_back(lab[i]);
  const HeadNames n = head_names(m);
  const auto k = static_cast<int64_t>(rows.size());
  if (k > 0) {
    f.mlm_logits = sparse_mlm_logits(m, h, rows);
  } else {
    f.mlm_logits = mul(sum(h), 0.0).reshape({1, 1});  // keeps the graph; no label
  }
  f.mlm_labels = Tensor::from_vector(labels, {k});
  if (has_sentence_task()) {
    LMF_CHECK(o.pooler.defined(), ValueError, "{} needs the pooler: {}", m.architecture(),
              o.pooler_unavailable);
    Tensor p = o.pooler;
    if (c.family == models::EncoderFamily::albert)
      p = dropout(p, c.classifier_dropout_prob, m.is_training());
    f.seq_logits = linear(p, m.parameter(n.seq + ".weight"), m.parameter(n.seq + ".bias"));
  }
  return f;
}

Objective::BatchLoss PretrainObjective::batch_loss(const PretrainBatch& batch) const {
  Forward f = run(batch);
  // No chosen token at all (possible for short sequences): zero loss, not NaN.
  Tensor mlm = count_labels(f.mlm_labels) > 0 ? cross_entropy(f.mlm_logits, f.mlm_labels)
                                              : mul(sum(f.mlm_logits), 0.0);
  BatchLoss out;
  out.tokens = batch.tokens;
  out.parts["mlm_loss"] = mlm.item();
  out.loss = mlm;
  if (has_sentence_task()) {
    LMF_CHECK(batch.sentence_labels.defined(), ValueError, "{} needs sentence labels in the batch",
              model_->architecture());
    Tensor s = cross_entropy(f.seq_logits.reshape({-1, 2}), batch.sentence_labels.reshape({-1}));
    out.parts[std::string(sentence_task()) + "_loss"] = s.item();
    out.loss = add(mlm, s);
  }
  return out;
}

Objective::BatchLoss PretrainObjective::loss(std::span<const int64_t> indices, Generator& rng) {
  return batch_loss(make_batch(indices, rng));
}

Metrics PretrainObjective::evaluate() {
  if (eval_.empty()) return {};
  const bool was_training = model_->is_training();
  model_->eval();
  NoGradGuard no_grad;
  double mlm_sum = 0, sent_sum = 0;
  int64_t masked = 0, correct = 0, sent_n = 0, sent_correct = 0;
  const auto n = static_cast<int64_t>(eval_.size());
  for (int64_t start = 0; start < n; start += cfg_.eval_batch_size) {
    const int64_t end = std::min(n, start + cfg_.eval_batch_size);
    std::vector<const PretrainInstance*> ptrs;
    for (int64_t i = start; i < end; ++i) ptrs.push_back(&eval_[i]);
    PretrainBatch b = collate(ptrs, special_.pad);
    Forward f = run(b);
    const int64_t k = count_labels(f.mlm_labels);
    if (k > 0) {
      mlm_sum += cross_entropy(f.mlm_logits, f.mlm_labels, -100, 0.0, Reduction::sum).item();
      masked += k;
      const std::vector<int64_t> pred = argmax(f.mlm_logits, -1).to_vector<int64_t>();
      const int64_t* lab = f.mlm_labels.data<int64_t>();
      for (size_t j = 0; j < pred.size(); ++j) correct += lab[j] != -100 && pred[j] == lab[j];
    }
    if (has_sentence_task()) {
      Tensor sl = b.sentence_labels;
      sent_sum += cross_entropy(f.seq_logits, sl, -100, 0.0, Reduction::sum).item();
      const std::vector<int64_t> pred = argmax(f.seq_logits, -1).to_vector<int64_t>();
      const std::vector<int64_t> lab = sl.to_vector<int64_t>();
      for (size_t j = 0; j < pred.size(); ++j) sent_correct += pred[j] == lab[j];
      sent_n += static_cast<int64_t>(lab.size());
    }
  }
  model_->train(was_training);
  Metrics m;
  const double mlm = masked > 0 ? mlm_sum / static_cast<double>(masked) : 0.0;
  m["eval_mlm_loss"] = mlm;
  m["eval_perplexity"] = std::exp(mlm);
  m["eval_masked_accuracy"] = masked > 0 ? static_cast<double>(correct) / masked : 0.0;
  m["eval_masked_tokens"] = static_cast<double>(masked);
  double total = mlm;
  if (has_sentence_task()) {
    const std::string t = sentence_task();
    const double s = sent_sum / static_cast<double>(sent_n);
    m["eval_" + t + "_loss"] = s;
    m["eval_" + t + "_accuracy"] = static_cast<double>(sent_correct) / sent_n;
    total += s;
  }
  m["eval_loss"] = total;
  return m;
}

void PretrainObjective::save_pretrained(const std::string& dir) const {
  models::save_pretrained(*model_, dir);
  copy_existing_files(
      cfg_.tokenizer_dir, dir,
      {"tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
       "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model"});
}

void PretrainObjective::load_pretrained(const std::string& dir) {
  load_saved_weights(*model_, dir);
}

// ---- factory ------------------------------------------------------------------------------------

std::string pretrain_architecture(Recipe r, const std::string& family) {
  switch (r) {
    case Recipe::bert:
      LMF_CHECK(family == "bert", ValueError,
                "the bert recipe (MLM+NSP) needs a BERT model, not {}; use --recipe roberta "
                "(MLM only){}",
                family, family == "albert" ? " or --recipe albert (MLM+SOP)" : "");
      return "BertForPreTraining";
    case Recipe::albert:
      LMF_CHECK(family == "albert", ValueError,
                "the albert recipe (MLM+SOP) needs an ALBERT model, not {}; use --recipe {}",
                family, family == "bert" ? "bert or roberta" : "roberta");
      return "AlbertForPreTraining";
    case Recipe::roberta:
      if (family == "bert") return "BertForMaskedLM";
      if (family == "roberta") return "RobertaForMaskedLM";
      if (family == "albert") return "AlbertForMaskedLM";
      if (family == "electra") return "ElectraForMaskedLM";
      break;
  }
  fail<ValueError>("no pretraining head for model family '{}'", family);
}

std::string pretrain_tokenizer_dir(const PretrainOptions& o) {
  if (!o.tokenizer_dir.empty()) return o.tokenizer_dir;
  const std::string dir =
      o.model_dir.empty() ? fs::path(o.config_path).parent_path().string() : o.model_dir;
  return dir.empty() ? "." : dir;
}

PretrainCorpus read_pretrain_corpus(const PretrainOptions& o) {
  LMF_CHECK(o.eval_split >= 0 && o.eval_split < 1, ValueError,
            "eval_split must be in [0, 1), got {}", o.eval_split);
  LMF_CHECK(!o.train_files.empty(), ValueError, "no training files given");
  LMF_CHECK(o.eval_files.empty() || o.eval_split == 0, ValueError,
            "give eval files or an eval split, not both");
  PretrainCorpus c;
  for (const auto& f : o.train_files) {
    auto d = read_documents(f, o.text_field);
    c.train.insert(c.train.end(), std::make_move_iterator(d.begin()),
                   std::make_move_iterator(d.end()));
  }
  for (const auto& f : o.eval_files) {
    auto d = read_documents(f, o.text_field);
    c.eval.insert(c.eval.end(), std::make_move_iterator(d.begin()),
                  std::make_move_iterator(d.end()));
  }
  if (o.eval_split > 0) {
    LMF_CHECK(c.train.size() >= 2, ValueError,
              "eval_split needs at least 2 documents; the training files hold {}", c.train.size());
    Generator g(o.seed);
    for (int64_t i = static_cast<int64_t>(c.train.size()) - 1; i > 0; --i)
      std::swap(c.train[i], c.train[g.next_u64() % static_cast<uint64_t>(i + 1)]);
    auto k = static_cast<size_t>(std::llround(o.eval_split * c.train.size()));
    k = std::clamp<size_t>(k, 1, c.train.size() - 1);
    c.eval.assign(std::make_move_iterator(c.train.end() - k),
                  std::make_move_iterator(c.train.end()));
    c.train.resize(c.train.size() - k);
  }
  return c;
}

std::unique_ptr<PretrainObjective> make_pretrain_objective(const PretrainOptions& o) {
  LMF_CHECK(o.model_dir.empty() != o.config_path.empty(), ValueError,
            "give exactly one of model_dir (continue from a checkpoint) and config_path (start "
            "from scratch)");
  const Recipe recipe = parse_recipe(o.recipe);
  LMF_CHECK(o.masking == "static" || o.masking == "dynamic", ValueError,
            "masking must be 'static' or 'dynamic', not '{}'", o.masking);
  LMF_CHECK(o.mlm_probability > 0 && o.mlm_probability < 1, ValueError,
            "mlm_probability must be in (0, 1), got {}", o.mlm_probability);

  const std::string config_file =
      o.model_dir.empty() ? o.config_path : (fs::path(o.model_dir) / "config.json").string();
  const std::string tok_dir = pretrain_tokenizer_dir(o);
  tok::Tokenizer tokenizer = tok::Tokenizer::from_pretrained(tok_dir);
  tokenizer.set_truncation(std::nullopt);
  tokenizer.set_padding(std::nullopt);
  SpecialTokens sp = SpecialTokens::from_tokenizer(tokenizer);

  const models::BertConfig cfg = models::BertConfig::from_file(config_file);
  const std::string family = models::family_name(cfg.family);
  const std::string arch = pretrain_architecture(recipe, family);
  LMF_CHECK(sp.vocab_size <= cfg.vocab_size, ValueError,
            "the tokenizer in '{}' has {} tokens but {} has vocab_size {}; use a matching "
            "tokenizer or a config with a larger vocab_size",
            tok_dir, sp.vocab_size, config_file, cfg.vocab_size);
  int64_t max_len = cfg.max_position_embeddings;
  if (cfg.family == models::EncoderFamily::roberta) {
    LMF_CHECK(sp.pad == cfg.pad_token_id, ValueError,
              "RoBERTa positions need the tokenizer's pad id ({}) to equal the config's "
              "pad_token_id ({})",
              sp.pad, cfg.pad_token_id);
    max_len -= cfg.pad_token_id + 1;
  }
  LMF_CHECK(o.max_seq_length <= max_len, ValueError,
            "max_seq_length {} exceeds what the model's positions allow ({})", o.max_seq_length,
            max_len);

  auto [train_docs, eval_docs] = read_pretrain_corpus(o);

  InstanceOptions io;
  io.recipe = recipe;
  io.max_seq_length = o.max_seq_length;
  io.short_seq_prob = o.short_seq_prob;
  io.dup_factor = o.dup_factor;
  Generator g_train(o.seed + 1), g_eval(o.seed + 2);
  std::vector<PretrainInstance> train =
      create_instances(tokenize_documents(tokenizer, train_docs), sp, io, g_train);
  std::vector<PretrainInstance> eval;
  if (!eval_docs.empty()) {
    io.dup_factor = 1;
    eval = create_instances(tokenize_documents(tokenizer, eval_docs), sp, io, g_eval);
  }
  LMF_CHECK(!train.empty(), ValueError, "the training files gave no pretraining instances");

  std::unique_ptr<models::EncoderModel> model;
  if (!o.model_dir.empty()) {
    models::LoadOptions lo;
    lo.architecture = arch;
    lo.pooler_init_seed = o.seed;  // a checkpoint without a pooler gets a seeded, trained one
    model =
        models::load_pretrained_as<models::EncoderModel>(o.model_dir, "an encoder to pretrain", lo);
  } else {
    manual_seed(o.seed);
    model = models::create_model(cfg, arch);
  }

  PretrainObjective::Config c;
  c.masking.mlm_probability = o.mlm_probability;
  if (o.mask_replace_prob >= 0) c.masking.mask_replace_prob = o.mask_replace_prob;
  if (o.random_replace_prob >= 0) c.masking.random_replace_prob = o.random_replace_prob;
  c.masking.whole_word_mask = o.whole_word_mask;
  c.dynamic_masking = o.masking == "dynamic";
  c.seed = o.seed;
  c.eval_batch_size = o.eval_batch_size;
  c.sparse_mlm = o.sparse_mlm;
  c.tokenizer_dir = tok_dir;
  return std::make_unique<PretrainObjective>(std::move(model), std::move(sp), std::move(train),
                                             std::move(eval), std::move(c));
}

}  // namespace lmf::train
