#include "lmforge/train/electra.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <unordered_set>

#include "lmforge/io/checkpoint.h"
#include "lmforge/models/registry.h"
#include "lmforge/ops/ops.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/train/pretrain.h"

namespace lmf::train {

namespace fs = std::filesystem;

namespace {

// The embedding tensors the generator takes from the discriminator (the ELECTRA paper's shared
// token and position embeddings, with the embedding LayerNorm as in its code).
constexpr const char* kSharedKeys[] = {
    "electra.embeddings.word_embeddings.weight", "electra.embeddings.position_embeddings.weight",
    "electra.embeddings.token_type_embeddings.weight", "electra.embeddings.LayerNorm.weight",
    "electra.embeddings.LayerNorm.bias"};

// Files a tokenizer folder may hold (transformers' names).
constexpr const char* kTokenizerFiles[] = {"tokenizer.json",
                                           "tokenizer_config.json",
                                           "special_tokens_map.json",
                                           "vocab.txt",
                                           "vocab.json",
                                           "merges.txt",
                                           "spiece.model",
                                           "sentencepiece.bpe.model",
                                           "added_tokens.json"};

std::optional<int64_t> first_id(const tok::Tokenizer& t, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (auto id = t.token_to_id(n)) return static_cast<int64_t>(*id);
  return std::nullopt;
}

// Area under the ROC curve by ranks (ties share their mean rank); nullopt with one class only.
std::optional<double> roc_auc(std::vector<std::pair<float, uint8_t>>& scored) {
  std::sort(scored.begin(), scored.end());
  double pos = 0, rank_sum = 0;
  for (size_t i = 0; i < scored.size();) {
    size_t j = i;
    while (j < scored.size() && scored[j].first == scored[i].first) ++j;
    const double mean_rank = (static_cast<double>(i + j) + 1.0) / 2.0;  // 1-based ranks i+1..j
    for (size_t k = i; k < j; ++k)
      if (scored[k].second) {
        pos += 1;
        rank_sum += mean_rank;
      }
    i = j;
  }
  const double neg = static_cast<double>(scored.size()) - pos;
  if (pos == 0 || neg == 0) return std::nullopt;
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

// `prefix`replaced_fraction and the RTD loss over the replaced / original tokens alone (left out
// when there are none of that kind), from token counts and summed per-token losses.
void add_rtd_split(Metrics& m, const std::string& prefix, int64_t tokens, int64_t replaced,
                   double bce_replaced, double bce_original) {
  m[prefix + "replaced_fraction"] = static_cast<double>(replaced) / static_cast<double>(tokens);
  if (replaced > 0) m[prefix + "rtd_loss_replaced"] = bce_replaced / static_cast<double>(replaced);
  if (tokens > replaced)
    m[prefix + "rtd_loss_original"] = bce_original / static_cast<double>(tokens - replaced);
}

Tensor uniform_noise(int64_t rows, int64_t vocab, Generator& rng) {
  Tensor u = Tensor::empty({rows, vocab});
  float* p = u.data<float>();
  for (int64_t i = 0; i < rows * vocab; ++i) p[i] = static_cast<float>(rng.uniform());
  return u;
}

void check_pair(const models::EncoderModel& gen, const models::EncoderModel& disc) {
  using models::EncoderFamily;
  using models::EncoderHead;
  LMF_CHECK(gen.config().family == EncoderFamily::electra && gen.head() == EncoderHead::masked_lm,
            ValueError, "ELECTRA: the generator must be an ElectraForMaskedLM, got {}",
            gen.architecture());
  LMF_CHECK(
      disc.config().family == EncoderFamily::electra && disc.head() == EncoderHead::pretraining,
      ValueError, "ELECTRA: the discriminator must be an ElectraForPreTraining, got {}",
      disc.architecture());
  const auto& g = gen.config();
  const auto& d = disc.config();
  auto same = [&](int64_t a, int64_t b, const char* field) {
    LMF_CHECK(a == b, ValueError,
              "ELECTRA: generator and discriminator share the embeddings, so their {} must be "
              "equal (generator {}, discriminator {})",
              field, a, b);
  };
  same(g.vocab_size, d.vocab_size, "vocab_size");
  same(g.embed_dim(), d.embed_dim(), "embedding_size");
  same(g.max_position_embeddings, d.max_position_embeddings, "max_position_embeddings");
  same(g.type_vocab_size, d.type_vocab_size, "type_vocab_size");
  same(g.pad_token_id, d.pad_token_id, "pad_token_id");
}

void copy_tokenizer_files(const std::string& from, const std::string& to) {
  for (const char* name : kTokenizerFiles) {
    const fs::path src = fs::path(from) / name;
    if (!fs::exists(src)) continue;
    std::error_code ec;
    fs::copy_file(src, fs::path(to) / name, fs::copy_options::overwrite_existing, ec);
    LMF_CHECK(!ec, IoError, "ELECTRA save: cannot copy {} to {}: {}", src.string(), to,
              ec.message());
  }
}

}  // namespace

ElectraTokens ElectraTokens::from_tokenizer(const tok::Tokenizer& t) {
  ElectraTokens k;
  auto pad = first_id(t, {"[PAD]", "<pad>"});
  auto mask = first_id(t, {"[MASK]", "<mask>"});
  LMF_CHECK(pad.has_value(), ValueError,
            "ELECTRA: the tokenizer has no padding token ([PAD] or <pad>)");
  LMF_CHECK(mask.has_value(), ValueError,
            "ELECTRA: the tokenizer has no mask token ([MASK] or <mask>)");
  k.pad = *pad;
  k.mask = *mask;
  k.vocab_size = static_cast<int64_t>(t.vocab_size());
  for (int64_t id = 0; id < k.vocab_size; ++id)
    if (t.is_special_id(static_cast<uint32_t>(id))) k.special_ids.push_back(id);
  return k;
}

struct ElectraObjective::Pieces {
  Tensor loss, mlm_loss, rtd_loss;
  Tensor corrupted, disc_labels;  // [B, T] i64
  std::vector<float> disc_logits;
  std::vector<int64_t> labels, active;
  int64_t masked = 0, tokens = 0, correct = 0;
  // The RTD loss summed over the replaced and the original (not replaced) tokens apart, and how
  // many of each: the mean over all tokens hides a discriminator that only learns the base rate.
  double bce_replaced = 0, bce_original = 0;
  int64_t replaced = 0;
};

ElectraObjective::ElectraObjective(std::unique_ptr<models::EncoderModel> generator,
                                   std::unique_ptr<models::EncoderModel> discriminator,
                                   std::vector<std::vector<int32_t>> train_instances,
                                   std::vector<std::vector<int32_t>> eval_instances,
                                   ElectraTokens tokens, ElectraOptions options)
    : gen_(std::move(generator)),
      disc_(std::move(discriminator)),
      train_(std::move(train_instances)),
      eval_(std::move(eval_instances)),
      tokens_(std::move(tokens)),
      opt_(std::move(options)) {
  LMF_CHECK(gen_ && disc_, ValueError, "ELECTRA: generator and discriminator are required");
  check_pair(*gen_, *disc_);
  const auto& cfg = disc_->config();
  const int64_t v = cfg.vocab_size;
  if (tokens_.vocab_size <= 0 || tokens_.vocab_size > v) tokens_.vocab_size = v;
  LMF_CHECK(tokens_.mask >= 0 && tokens_.mask < v, ValueError,
            "ELECTRA: mask id {} is outside the vocabulary [0, {})", tokens_.mask, v);
  LMF_CHECK(tokens_.pad >= 0 && tokens_.pad < v, ValueError,
            "ELECTRA: padding id {} is outside the vocabulary [0, {})", tokens_.pad, v);
  LMF_CHECK(opt_.mlm_probability > 0 && opt_.mlm_probability <= 1 && opt_.mask_replace_prob >= 0 &&
                opt_.random_replace_prob >= 0 &&
                opt_.mask_replace_prob + opt_.random_replace_prob <= 1 && opt_.eval_batch_size > 0 &&
                std::isfinite(opt_.temperature) && opt_.temperature > 0,
            ValueError,
            "ELECTRA: mlm_probability must lie in (0, 1], mask_replace_prob + "
            "random_replace_prob in [0, 1], eval_batch_size > 0, temperature > 0 (got {})",
            opt_.temperature);
  never_mask_.assign(static_cast<size_t>(v), 0);
  never_mask_[static_cast<size_t>(tokens_.pad)] = 1;
  for (int64_t id : tokens_.special_ids)
    if (id >= 0 && id < v) never_mask_[static_cast<size_t>(id)] = 1;
  auto check = [&](const std::vector<std::vector<int32_t>>& set, const char* what) {
    for (size_t i = 0; i < set.size(); ++i) {
      const auto& s = set[i];
      LMF_CHECK(!s.empty() && static_cast<int64_t>(s.size()) <= cfg.max_position_embeddings,
                ValueError,
                "ELECTRA: {} instance {} has {} tokens; it must have 1 to "
                "max_position_embeddings ({})",
                what, i, s.size(), cfg.max_position_embeddings);
      bool maskable = false;
      for (int32_t id : s) {
        LMF_CHECK(id >= 0 && id < v, ValueError,
                  "ELECTRA: {} instance {} holds id {} outside the vocabulary [0, {})", what, i, id,
                  v);
        maskable = maskable || !never_mask_[static_cast<size_t>(id)];
      }
      LMF_CHECK(maskable, ValueError,
                "ELECTRA: {} instance {} holds only special tokens; nothing can be masked", what,
                i);
    }
  };
  check(train_, "training");
  check(eval_, "evaluation");
  share_embeddings();
  set_training(true);
}

std::unique_ptr<ElectraObjective> ElectraObjective::from_configs(
    const models::BertConfig& generator, const models::BertConfig& discriminator,
    std::vector<std::vector<int32_t>> train_instances,
    std::vector<std::vector<int32_t>> eval_instances, ElectraTokens tokens, ElectraOptions options,
    uint64_t init_seed) {
  Generator& g = default_generator();
  const Generator::State saved = g.state();
  g.manual_seed(init_seed);
  std::unique_ptr<models::EncoderModel> gen, disc;
  try {
    models::BertConfig gc = generator, dc = discriminator;
    gc.architectures = {"ElectraForMaskedLM"};
    dc.architectures = {"ElectraForPreTraining"};
    disc = models::create_model(dc);
    gen = models::create_model(gc);
  } catch (...) {
    g.set_state(saved);
    throw;
  }
  g.set_state(saved);
  return std::make_unique<ElectraObjective>(std::move(gen), std::move(disc),
                                            std::move(train_instances), std::move(eval_instances),
                                            std::move(tokens), std::move(options));
}

std::unique_ptr<ElectraObjective> ElectraObjective::from_pretrained(
    const std::string& dir, std::vector<std::vector<int32_t>> train_instances,
    std::vector<std::vector<int32_t>> eval_instances, ElectraTokens tokens,
    ElectraOptions options) {
  auto disc = models::load_pretrained_as<models::EncoderModel>(dir, "an ELECTRA discriminator");
  auto gen =
      models::load_pretrained_as<models::EncoderModel>(dir + "/generator", "an ELECTRA generator");
  return std::make_unique<ElectraObjective>(std::move(gen), std::move(disc),
                                            std::move(train_instances), std::move(eval_instances),
                                            std::move(tokens), std::move(options));
}

void ElectraObjective::share_embeddings() {
  for (const char* key : kSharedKeys) gen_->parameter(key) = disc_->parameter(key);
  for (const auto& [target, source] : gen_->tied_keys())
    gen_->parameter(target) = gen_->parameter(source);
}

NamedTensors ElectraObjective::parameters() const {
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  for (const auto& [name, p] : disc_->named_parameters())
    if (seen.insert(p.impl()).second) out.emplace_back("discriminator." + name, p);
  for (const auto& [name, p] : gen_->named_parameters())
    if (seen.insert(p.impl()).second) out.emplace_back("generator." + name, p);
  return out;
}

void ElectraObjective::set_training(bool on) {
  gen_->train(on);
  disc_->train(on);
}

int64_t ElectraObjective::example_length(int64_t i) const {
  LMF_CHECK(i >= 0 && i < num_examples(), IndexError, "ELECTRA: example {} outside [0, {})", i,
            num_examples());
  return static_cast<int64_t>(train_[static_cast<size_t>(i)].size());
}

ElectraBatch ElectraObjective::make_batch(std::span<const int64_t> indices, Generator& rng,
                                          bool eval) const {
  const auto& set = eval ? eval_ : train_;
  LMF_CHECK(!indices.empty(), ValueError, "ELECTRA: a batch needs at least one example");
  int64_t t = 0;
  for (int64_t i : indices) {
    LMF_CHECK(i >= 0 && i < static_cast<int64_t>(set.size()), IndexError,
              "ELECTRA: {} example {} outside [0, {})", eval ? "evaluation" : "training", i,
              set.size());
    t = std::max<int64_t>(t, static_cast<int64_t>(set[static_cast<size_t>(i)].size()));
  }
  const auto b = static_cast<int64_t>(indices.size());
  std::vector<int64_t> ids(static_cast<size_t>(b * t), tokens_.pad), mask(ids.size(), 0);
  for (int64_t r = 0; r < b; ++r) {
    const auto& s = set[static_cast<size_t>(indices[static_cast<size_t>(r)])];
    for (size_t j = 0; j < s.size(); ++j) {
      ids[static_cast<size_t>(r * t) + j] = s[j];
      mask[static_cast<size_t>(r * t) + j] = 1;
    }
  }
  // HF DataCollatorForLanguageModeling: choose, then [MASK] / random id / unchanged.
  std::vector<int64_t> masked = ids, labels(ids.size(), -100);
  auto eligible = [&](size_t k) { return mask[k] && !never_mask_[static_cast<size_t>(ids[k])]; };
  auto corrupt = [&](size_t k) {
    labels[k] = ids[k];
    const double u = rng.uniform();
    if (u < opt_.mask_replace_prob)
      masked[k] = tokens_.mask;
    else if (u < opt_.mask_replace_prob + opt_.random_replace_prob)
      masked[k] = static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(tokens_.vocab_size));
  };
  int64_t chosen = 0;
  for (size_t k = 0; k < ids.size(); ++k) {
    if (!eligible(k) || rng.uniform() >= opt_.mlm_probability) continue;
    corrupt(k);
    ++chosen;
  }
  if (chosen == 0) {  // a batch without an MLM target would give the generator no loss
    std::vector<size_t> candidates;
    for (size_t k = 0; k < ids.size(); ++k)
      if (eligible(k)) candidates.push_back(k);
    corrupt(candidates[rng.next_u64() % candidates.size()]);
  }
  ElectraBatch batch;
  batch.original_ids = Tensor::from_vector(ids, {b, t});
  batch.masked_ids = Tensor::from_vector(masked, {b, t});
  batch.mlm_labels = Tensor::from_vector(labels, {b, t});
  batch.attention_mask = Tensor::from_vector(mask, {b, t});
  batch.token_type_ids = Tensor::zeros({b, t}, DType::i64);
  return batch;
}

ElectraObjective::Pieces ElectraObjective::run(const ElectraBatch& batch, const Tensor& noise,
                                               bool with_grad) {
  const int64_t v = disc_->config().vocab_size;
  const Shape& shape = batch.original_ids.shape();
  LMF_CHECK(shape.size() == 2 && batch.masked_ids.shape() == shape &&
                batch.mlm_labels.shape() == shape && batch.attention_mask.shape() == shape,
            ShapeError, "ELECTRA: batch tensors must all be [batch, seq] like original_ids {}",
            batch.original_ids.describe());
  std::optional<NoGradGuard> no_grad;
  if (!with_grad) no_grad.emplace();
  Pieces p;
  models::EncoderInputs gin;
  gin.input_ids = batch.masked_ids;
  gin.attention_mask = batch.attention_mask;
  gin.token_type_ids = batch.token_type_ids;
  // The generator's encoder once, then its MLM head only at the masked positions (the loss
  // ignores the others and the samples are drawn only there): the same loss, gradients and
  // samples as ElectraForMaskedLM's full [B*T, vocab] logits, at a fraction of the cost.
  const auto labels = batch.mlm_labels.to_vector<int64_t>();
  const auto original = batch.original_ids.to_vector<int64_t>();
  auto corrupted = batch.masked_ids.to_vector<int64_t>();
  std::vector<int64_t> positions, targets;
  for (size_t k = 0; k < labels.size(); ++k)
    if (labels[k] != -100)
      positions.push_back(static_cast<int64_t>(k)), targets.push_back(labels[k]);
  p.masked = static_cast<int64_t>(positions.size());
  const models::ModelOutput g = gen_->encoder().forward(gin);
  const Tensor h = g.last_hidden_state.reshape({-1, g.last_hidden_state.size(-1)});
  Tensor gen_logits;  // [masked, vocab]
  if (p.masked > 0) {
    gen_logits = sparse_mlm_logits(*gen_, h, positions);
    p.mlm_loss = cross_entropy(gen_logits, Tensor::from_vector(targets, {p.masked}));
  } else {
    p.mlm_loss = mul(sum(h), 0.0);  // nothing masked: zero loss, graph kept
  }

  // Gumbel-max samples from the generator's softmax at the masked positions (no gradient).
  LMF_CHECK(noise.defined() && noise.dim() == 2 && noise.size(0) == p.masked &&
                noise.size(1) == v && noise.dtype() == DType::f32,
            ShapeError, "ELECTRA: noise must be f32 [masked positions {}, vocab {}], got {}",
            p.masked, v, noise.defined() ? noise.describe() : "undefined");
  {
    Tensor logits = p.masked > 0 ? gen_logits.detach().contiguous() : Tensor::zeros({1, v});
    Tensor u = noise.contiguous();
    const float* lp = logits.data<float>();
    const float* up = u.data<float>();
    const auto n_pos = static_cast<int64_t>(positions.size());
    const double inv_t = 1.0 / opt_.temperature;
#pragma omp parallel for schedule(static) if (n_pos * v > (1 << 16))
    for (int64_t m = 0; m < n_pos; ++m) {
      const float* row = lp + static_cast<size_t>(m * v);
      const float* un = up + static_cast<size_t>(m * v);
      double best = -INFINITY;
      int64_t arg = 0;
      for (int64_t j = 0; j < v; ++j) {
        const double gumbel = -std::log(-std::log(static_cast<double>(un[j]) + 1e-9) + 1e-9);
        const double score = static_cast<double>(row[j]) * inv_t + gumbel;
        if (score > best) {
          best = score;
          arg = j;
        }
      }
      corrupted[static_cast<size_t>(positions[static_cast<size_t>(m)])] = arg;
    }
  }
  p.active = batch.attention_mask.to_vector<int64_t>();
  p.labels.resize(corrupted.size());
  for (size_t k = 0; k < corrupted.size(); ++k)
    p.labels[k] = p.active[k] != 0 && corrupted[k] != original[k] ? 1 : 0;
  p.corrupted = Tensor::from_vector(corrupted, shape);
  p.disc_labels = Tensor::from_vector(p.labels, shape);

  models::EncoderInputs din = gin;
  din.input_ids = p.corrupted;
  models::EncoderLabels dlab;
  dlab.labels = p.disc_labels;
  models::ModelOutput d = disc_->forward(din, dlab);
  p.rtd_loss = d.loss;
  p.loss = p.mlm_loss + p.rtd_loss * opt_.rtd_weight;
  p.disc_logits = d.logits.detach().contiguous().to_vector<float>();
  // The per-token RTD loss (the op ElectraForPreTraining's loss averages), split by label.
  const auto bce = binary_cross_entropy_with_logits(d.logits.detach(),
                                                    p.disc_labels.to(DType::f32), Reduction::none)
                       .contiguous()
                       .to_vector<float>();
  for (size_t k = 0; k < p.active.size(); ++k) {
    if (!p.active[k]) continue;
    ++p.tokens;
    p.correct += (p.disc_logits[k] > 0) == (p.labels[k] == 1);
    if (p.labels[k]) {
      ++p.replaced;
      p.bce_replaced += bce[k];
    } else {
      p.bce_original += bce[k];
    }
  }
  return p;
}

Objective::BatchLoss ElectraObjective::loss_on(const ElectraBatch& batch, const Tensor& noise,
                                               Tensor* corrupted, Tensor* disc_labels) {
  Pieces p = run(batch, noise, true);
  if (corrupted) *corrupted = p.corrupted;
  if (disc_labels) *disc_labels = p.disc_labels;
  BatchLoss out;
  out.loss = p.loss;
  out.tokens = p.tokens;
  out.parts = {{"mlm_loss", p.mlm_loss.item()},
               {"rtd_loss", p.rtd_loss.item()},
               {"rtd_accuracy", static_cast<double>(p.correct) / static_cast<double>(p.tokens)}};
  // A batch without replaced (or original) tokens has no such mean; the trainer averages the
  // parts it gets over the logging window.
  add_rtd_split(out.parts, "", p.tokens, p.replaced, p.bce_replaced, p.bce_original);
  return out;
}

Objective::BatchLoss ElectraObjective::loss(std::span<const int64_t> indices, Generator& rng) {
  ElectraBatch batch = make_batch(indices, rng);
  int64_t masked = 0;
  for (int64_t l : batch.mlm_labels.to_vector<int64_t>()) masked += l != -100;
  return loss_on(batch, uniform_noise(masked, disc_->config().vocab_size, rng));
}

Metrics ElectraObjective::evaluate() {
  if (eval_.empty()) return {};
  const bool was_training = disc_->is_training();
  set_training(false);
  Generator rng(opt_.eval_seed);
  double mlm_sum = 0, rtd_sum = 0, bce_replaced = 0, bce_original = 0;
  int64_t masked = 0, tokens = 0, correct = 0, replaced = 0;
  std::vector<std::pair<float, uint8_t>> scored;
  const auto n = static_cast<int64_t>(eval_.size());
  try {
    for (int64_t start = 0; start < n; start += opt_.eval_batch_size) {
      std::vector<int64_t> idx;
      for (int64_t i = start; i < std::min(n, start + opt_.eval_batch_size); ++i) idx.push_back(i);
      ElectraBatch batch = make_batch(idx, rng, true);
      int64_t m = 0;
      for (int64_t l : batch.mlm_labels.to_vector<int64_t>()) m += l != -100;
      Pieces p = run(batch, uniform_noise(m, disc_->config().vocab_size, rng), false);
      mlm_sum += p.mlm_loss.item() * static_cast<double>(p.masked);
      rtd_sum += p.rtd_loss.item() * static_cast<double>(p.tokens);
      masked += p.masked;
      tokens += p.tokens;
      correct += p.correct;
      replaced += p.replaced;
      bce_replaced += p.bce_replaced;
      bce_original += p.bce_original;
      for (size_t k = 0; k < p.active.size(); ++k)
        if (p.active[k]) scored.emplace_back(p.disc_logits[k], static_cast<uint8_t>(p.labels[k]));
    }
  } catch (...) {
    set_training(was_training);
    throw;
  }
  set_training(was_training);
  Metrics m;
  m["eval_mlm_loss"] = mlm_sum / static_cast<double>(masked);
  m["eval_rtd_loss"] = rtd_sum / static_cast<double>(tokens);
  m["eval_loss"] = m["eval_mlm_loss"] + opt_.rtd_weight * m["eval_rtd_loss"];
  m["eval_rtd_accuracy"] = static_cast<double>(correct) / static_cast<double>(tokens);
  add_rtd_split(m, "eval_", tokens, replaced, bce_replaced, bce_original);
  if (auto auc = roc_auc(scored)) m["eval_rtd_auc"] = *auc;
  return m;
}

void ElectraObjective::save_pretrained(const std::string& dir) const {
  models::save_pretrained(*disc_, dir);
  const std::string gen_dir = (fs::path(dir) / "generator").string();
  models::save_pretrained(*gen_, gen_dir);
  if (!opt_.tokenizer_dir.empty()) {
    copy_tokenizer_files(opt_.tokenizer_dir, dir);
    copy_tokenizer_files(opt_.tokenizer_dir, gen_dir);
  }
}

void ElectraObjective::load_pretrained(const std::string& dir) {
  models::LoadOptions lo;
  lo.zero_copy = false;  // copy into the existing (shared, optimizer-held) tensors
  lo.strict = true;
  const std::string gen_dir = (fs::path(dir) / "generator").string();
  gen_->load(io::load_checkpoint_dir(gen_dir), lo, gen_dir);
  disc_->load(io::load_checkpoint_dir(dir), lo, dir);  // last: its shared embeddings win
}

std::unique_ptr<Objective> make_electra_objective(const PretrainOptions& d,
                                                  int64_t generator_divisor, double rtd_weight,
                                                  double temperature) {
  const std::string tok_dir = pretrain_tokenizer_dir(d);
  tok::Tokenizer tokenizer = tok::Tokenizer::from_pretrained(tok_dir);
  const SpecialTokens sp = SpecialTokens::from_tokenizer(tokenizer);
  auto [docs, eval_docs] = read_pretrain_corpus(d);
  Generator rng(d.seed);
  InstanceOptions io;
  io.recipe = Recipe::roberta;
  io.max_seq_length = d.max_seq_length;
  io.dup_factor = d.dup_factor;
  auto to_ids = [&](const std::vector<TextDocument>& ds) {
    std::vector<std::vector<int32_t>> out;
    if (ds.empty()) return out;
    for (auto& inst : create_instances(tokenize_documents(tokenizer, ds), sp, io, rng))
      out.push_back(std::move(inst.input_ids));
    return out;
  };
  auto train_ids = to_ids(docs);
  auto eval_ids = to_ids(eval_docs);
  ElectraTokens tokens = ElectraTokens::from_tokenizer(tokenizer);
  ElectraOptions eo;
  eo.mlm_probability = d.mlm_probability;
  if (d.mask_replace_prob >= 0) eo.mask_replace_prob = d.mask_replace_prob;  // else ElectraOptions'
  if (d.random_replace_prob >= 0) eo.random_replace_prob = d.random_replace_prob;
  eo.rtd_weight = rtd_weight;
  eo.temperature = temperature;
  eo.tokenizer_dir = tok_dir;
  eo.eval_batch_size = d.eval_batch_size;
  if (!d.model_dir.empty())
    return ElectraObjective::from_pretrained(d.model_dir, std::move(train_ids), std::move(eval_ids),
                                             tokens, eo);
  models::BertConfig disc = models::BertConfig::from_file(d.config_path);
  if (disc.family != models::EncoderFamily::electra)
    throw ValueError("--recipe electra needs an ELECTRA config (model_type \"electra\"); '" +
                     d.config_path + "' is another family");
  models::BertConfig gen = disc;
  const int64_t div = std::max<int64_t>(generator_divisor, 1);
  gen.hidden_size = std::max<int64_t>(disc.hidden_size / div, 1);
  gen.num_attention_heads = std::max<int64_t>(disc.num_attention_heads / div, 1);
  gen.intermediate_size = std::max<int64_t>(disc.intermediate_size / div, 1);
  if (gen.hidden_size % gen.num_attention_heads != 0)
    throw ValueError("--generator-divisor " + std::to_string(div) +
                     " gives a generator hidden size " + std::to_string(gen.hidden_size) +
                     " not divisible by its " + std::to_string(gen.num_attention_heads) +
                     " heads; pick another divisor");
  if (gen.embedding_size <= 0) gen.embedding_size = disc.embed_dim();
  disc.embedding_size = disc.embed_dim();
  return ElectraObjective::from_configs(gen, disc, std::move(train_ids), std::move(eval_ids),
                                        tokens, eo, d.seed);
}

}  // namespace lmf::train
