// Direct preference optimisation (train/dpo.h): TRL DPOTrainer's data preparation and sigmoid
// loss, with the reference log-probabilities computed once from the starting weights.
#include "lmforge/train/dpo.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/ops/ops.h"
#include "lmforge/tokenizers/chat_template.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/train/clm.h"
#include "lmforge/train/hf_folder.h"

namespace lmf::train {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

bool continuation_byte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

}  // namespace

PreferenceRecord extract_prompt(PreferenceRecord r) {
  if (r.explicit_prompt) return r;
  if (r.conversational) {
    const ojson &c = r.chosen_messages, &x = r.rejected_messages;
    const size_t n = std::min(c.size(), x.size());
    size_t idx = n == 0 ? 0 : n - 1;  // Python's loop variable when nothing differs
    for (size_t i = 0; i < n; ++i)
      if (c[i] != x[i]) {
        idx = i;
        break;
      }
    ojson p = ojson::array(), cc = ojson::array(), xx = ojson::array();
    for (size_t i = 0; i < c.size(); ++i) (i < idx ? p : cc).push_back(c[i]);
    for (size_t i = idx; i < x.size(); ++i) xx.push_back(x[i]);
    r.prompt_messages = p;
    r.chosen_messages = cc;
    r.rejected_messages = xx;
    r.explicit_prompt = true;
    return r;
  }
  // Strings, by whole characters (Python indexes code points).
  const std::string &c = r.chosen, &x = r.rejected;
  const size_t n = std::min(c.size(), x.size());
  size_t idx = n;
  bool differs = false;
  for (size_t i = 0; i < n; ++i)
    if (c[i] != x[i]) {
      idx = i;
      differs = true;
      break;
    }
  while (idx > 0 && idx < c.size() && continuation_byte(c[idx])) --idx;  // a character's start
  if (differs) {
    if (idx > 0 && c[idx - 1] == ' ') --idx;
  } else if (n > 0) {
    // Nothing differs within the shorter text: Python leaves idx at its last character.
    idx = n - 1;
    while (idx > 0 && continuation_byte(c[idx])) --idx;
  }
  r.prompt = c.substr(0, idx);
  r.chosen = c.substr(idx);
  r.rejected = x.substr(idx);
  r.explicit_prompt = true;
  return r;
}

// ---- objective ----------------------------------------------------------------------------------

DpoObjective::DpoObjective(std::unique_ptr<models::DecoderModel> policy,
                           std::vector<DpoExample> train, std::vector<DpoExample> eval,
                           int64_t pad_id, double beta, int64_t max_length, int64_t eval_batch_size)
    : model_(std::move(policy)),
      train_(std::move(train)),
      eval_(std::move(eval)),
      pad_id_(pad_id),
      beta_(beta),
      max_length_(max_length),
      eval_batch_size_(std::max<int64_t>(1, eval_batch_size)) {
  LMF_CHECK(model_ && model_->is_causal_lm(), ValueError, "DPO needs a causal LM (an LM head)");
  LMF_CHECK(!train_.empty(), ValueError, "DPO: no training pairs");
  LMF_CHECK(beta_ > 0, ValueError, "DPO: beta must be positive, got {}", beta_);
  compute_reference(train_);
  compute_reference(eval_);
}

DpoObjective::~DpoObjective() = default;

int64_t DpoObjective::example_length(int64_t i) const {
  const DpoExample& e = train_.at(i);
  return static_cast<int64_t>(2 * e.prompt.size() + e.chosen.size() + e.rejected.size());
}

NamedTensors DpoObjective::parameters() const {
  NamedTensors out;
  for (auto& [name, t] : model_->named_parameters())
    if (t.requires_grad()) out.emplace_back(name, t);
  return out;
}

void DpoObjective::set_training(bool on) {
  // TRL's disable_dropout (on by default for this trainer): training runs without dropout.
  model_->train(on && !disable_dropout);
}

Tensor DpoObjective::sequence_logps(const std::vector<DpoExample>& examples,
                                    std::span<const int64_t> indices, int64_t* tokens) const {
  const int64_t B = static_cast<int64_t>(indices.size());
  LMF_CHECK(B > 0, ValueError, "an empty batch");
  // DataCollatorForPreference: prompt + answer per row (keep_start truncation to max_length),
  // chosen rows then rejected rows, right-padded; labels only on the answer tokens.
  std::vector<std::vector<int32_t>> rows(2 * B), masks(2 * B);
  int64_t T = 0, n_tokens = 0;
  for (int64_t r = 0; r < B; ++r) {
    const DpoExample& e = examples.at(indices[r]);
    for (int side = 0; side < 2; ++side) {
      auto& row = rows[side * B + r];
      auto& m = masks[side * B + r];
      const auto& ans = side == 0 ? e.chosen : e.rejected;
      row = e.prompt;
      row.insert(row.end(), ans.begin(), ans.end());
      m.assign(e.prompt.size(), 0);
      m.resize(row.size(), 1);
      if (static_cast<int64_t>(row.size()) > max_length_) {
        row.resize(max_length_);
        m.resize(max_length_);
      }
      T = std::max<int64_t>(T, static_cast<int64_t>(row.size()));
      n_tokens += static_cast<int64_t>(row.size());
    }
  }
  std::vector<int64_t> ids(2 * B * T, pad_id_), attn(2 * B * T, 0), labels(2 * B * (T - 1), -100);
  for (int64_t i = 0; i < 2 * B; ++i) {
    for (size_t j = 0; j < rows[i].size(); ++j) {
      ids[i * T + j] = rows[i][j];
      attn[i * T + j] = 1;
      if (j > 0 && masks[i][j]) labels[i * (T - 1) + j - 1] = rows[i][j];  // shifted
    }
  }
  if (tokens) *tokens = n_tokens;
  models::DecoderInputs in;
  in.input_ids = Tensor::from_vector(ids, {2 * B, T});
  in.attention_mask = Tensor::from_vector(attn, {2 * B, T});
  const Tensor logits = model_->forward(in).logits;  // [2B, T, V]
  const int64_t V = logits.size(2);
  const Tensor pred = logits.narrow(1, 0, T - 1).reshape({2 * B * (T - 1), V});
  // -cross_entropy per token is log p(label); ignored positions give 0.
  const Tensor nll = cross_entropy(pred, Tensor::from_vector(labels, {2 * B * (T - 1)}), -100, 0.0,
                                   Reduction::none);
  return neg(sum(nll.reshape({2 * B, T - 1}), {1}));
}

void DpoObjective::compute_reference(std::vector<DpoExample>& examples) {
  if (examples.empty()) return;
  NoGradGuard ng;
  const bool was_training = model_->is_training();
  model_->train(false);
  const int64_t n = static_cast<int64_t>(examples.size());
  std::vector<int64_t> idx;
  for (int64_t start = 0; start < n; start += eval_batch_size_) {
    idx.clear();
    for (int64_t i = start; i < std::min(n, start + eval_batch_size_); ++i) idx.push_back(i);
    const auto lp = sequence_logps(examples, idx).to_vector<float>();
    const size_t B = idx.size();
    for (size_t i = 0; i < B; ++i) {
      examples[idx[i]].ref_chosen = lp[i];
      examples[idx[i]].ref_rejected = lp[B + i];
    }
  }
  model_->train(was_training);
}

DpoObjective::Result DpoObjective::score(const std::vector<DpoExample>& examples,
                                         std::span<const int64_t> indices) const {
  const int64_t B = static_cast<int64_t>(indices.size());
  const Tensor lp = sequence_logps(examples, indices);
  std::vector<float> ref_c(B), ref_r(B);
  for (int64_t i = 0; i < B; ++i) {
    ref_c[i] = static_cast<float>(examples[indices[i]].ref_chosen);
    ref_r[i] = static_cast<float>(examples[indices[i]].ref_rejected);
  }
  const Tensor cr = sub(lp.narrow(0, 0, B), Tensor::from_vector(ref_c, {B}));
  const Tensor rr = sub(lp.narrow(0, B, B), Tensor::from_vector(ref_r, {B}));
  Result out;
  // -log sigmoid(beta (cr - rr)) = BCE with logits and target 1, averaged over the pairs.
  out.loss = binary_cross_entropy_with_logits(mul(sub(cr, rr), beta_), Tensor::ones({B}));
  const auto c = cr.detach().to_vector<float>(), r = rr.detach().to_vector<float>();
  double mc = 0, mr = 0, acc = 0;
  for (int64_t i = 0; i < B; ++i) {
    mc += c[i];
    mr += r[i];
    acc += c[i] > r[i];
  }
  out.parts["rewards_chosen"] = beta_ * mc / B;
  out.parts["rewards_rejected"] = beta_ * mr / B;
  out.parts["rewards_margin"] = beta_ * (mc - mr) / B;
  out.parts["rewards_accuracy"] = acc / B;
  return out;
}

Objective::BatchLoss DpoObjective::loss(std::span<const int64_t> indices, Generator& rng) {
  (void)rng;
  Result r = score(train_, indices);
  BatchLoss out;
  out.loss = r.loss;
  out.parts = std::move(r.parts);
  for (int64_t i : indices) out.tokens += example_length(i);
  return out;
}

Metrics DpoObjective::evaluate() {
  if (eval_.empty()) return {};
  NoGradGuard ng;
  set_training(false);
  Metrics sum;
  double loss = 0;
  const int64_t n = static_cast<int64_t>(eval_.size());
  std::vector<int64_t> idx;
  for (int64_t start = 0; start < n; start += eval_batch_size_) {
    idx.clear();
    for (int64_t i = start; i < std::min(n, start + eval_batch_size_); ++i) idx.push_back(i);
    const Result r = score(eval_, idx);
    const double w = static_cast<double>(idx.size());
    loss += r.loss.item() * w;
    for (const auto& [k, v] : r.parts) sum[k] += v * w;
  }
  Metrics out{{"eval_loss", loss / n}};
  for (const auto& [k, v] : sum) out["eval_" + k] = v / n;
  return out;
}

void DpoObjective::save_pretrained(const std::string& dir) const {
  save_decoder_folder(*model_, lora, lora_base, model_dir, tokenizer_dir, extra_files, dir);
}

void DpoObjective::load_pretrained(const std::string& dir) {
  load_decoder_folder(*model_, lora, dir);
}

// ---- factory ------------------------------------------------------------------------------------

std::unique_ptr<DpoObjective> make_dpo_objective(const DpoOptions& o, DpoReport* report) {
  LMF_CHECK(!o.model_dir.empty(), ValueError, "dpo needs --model DIR (a decoder folder)");
  LMF_CHECK(!o.train_file.empty(), ValueError, "dpo needs --train FILE");
  LMF_CHECK(o.eval_file.empty() || o.eval_split == 0, ValueError,
            "give --eval FILE or --eval-split, not both");
  LMF_CHECK(o.max_length >= 2, ValueError, "--max-length must be at least 2");
  DpoReport rep;
  std::unique_ptr<models::DecoderModel> model = load_or_create_causal_lm(o.model_dir, "", o.seed);
  const std::string tok_dir = o.tokenizer_dir.empty() ? o.model_dir : o.tokenizer_dir;
  const tok::Tokenizer tokenizer = load_training_tokenizer(tok_dir);
  const TokenizerSpecials specials = read_tokenizer_specials(tok_dir);
  const ojson& special = specials.tokens;
  const std::string& eos = specials.eos;
  const std::optional<std::string> chat_template =
      task_chat_template(tok_dir, o.chat_template_file);
  rep.chat = chat_template.has_value();

  auto split = read_train_eval<PreferenceData>(
      [&](const std::string& f) { return read_preference_records(f, o.strict_data); }, o.train_file,
      o.eval_file, o.eval_split, o.seed, o.max_train_examples, o.max_eval_examples);
  rep.skipped = std::move(split.skipped);
  std::vector<PreferenceRecord>& train_records = split.train;
  std::vector<PreferenceRecord>& eval_records = split.eval;

  const int64_t vocab = model->spec().vocab_size;
  auto examples_of = [&](const std::vector<PreferenceRecord>& records) {
    std::vector<DpoExample> out;
    for (const PreferenceRecord& raw : records) {
      const PreferenceRecord r = extract_prompt(raw);
      std::vector<int32_t> p, pc, pr;
      if (r.conversational) {
        LMF_CHECK(chat_template.has_value(), ValueError,
                  "{}: conversational pairs need a chat template; give --chat-template FILE",
                  r.where);
        auto render = [&](const ojson& tail, bool gen) {
          ojson m = r.prompt_messages;
          for (const auto& x : tail) m.push_back(x);
          return encode_ids(tokenizer, tok::apply_chat_template(*chat_template, m, gen, special),
                            false);
        };
        p = render(ojson::array(), true);
        pc = render(r.chosen_messages, false);
        pr = render(r.rejected_messages, false);
      } else {
        p = encode_ids(tokenizer, r.prompt, true);
        pc = encode_ids(tokenizer, r.prompt + with_eos(r.chosen, eos), true);
        pr = encode_ids(tokenizer, r.prompt + with_eos(r.rejected, eos), true);
      }
      const size_t n = std::min(common_prefix_length(p, pc), common_prefix_length(p, pr));
      DpoExample e;
      e.prompt.assign(p.begin(), p.begin() + n);
      e.chosen.assign(pc.begin() + n, pc.end());
      e.rejected.assign(pr.begin() + n, pr.end());
      if (static_cast<int64_t>(e.prompt.size()) >= o.max_length) {
        ++rep.dropped;  // nothing of the answers would be left (TRL drops the pair)
        continue;
      }
      if (static_cast<int64_t>(e.prompt.size() + std::max(e.chosen.size(), e.rejected.size())) >
          o.max_length)
        ++rep.truncated;
      for (const auto* v : {&e.prompt, &e.chosen, &e.rejected})
        check_ids_in_vocab(*v, vocab, r.where);
      out.push_back(std::move(e));
    }
    return out;
  };
  std::vector<DpoExample> train_ex = examples_of(train_records);
  std::vector<DpoExample> eval_ex = examples_of(eval_records);
  LMF_CHECK(!train_ex.empty(), ValueError,
            "{}: no training pair left (malformed, or prompts longer than --max-length {})",
            o.train_file, o.max_length);
  rep.train_examples = static_cast<int64_t>(train_ex.size());
  rep.eval_examples = static_cast<int64_t>(eval_ex.size());
  const int64_t pad = decoder_pad_id(*model);
  std::optional<models::LoraConfig> lora = o.lora;
  if (lora) models::add_lora(*model, *lora);  // B = 0: the adapted model is still the reference
  auto obj =
      std::make_unique<DpoObjective>(std::move(model), std::move(train_ex), std::move(eval_ex), pad,
                                     o.beta, o.max_length, o.eval_batch_size);
  obj->lora = lora;
  obj->lora_base = o.model_dir;
  obj->model_dir = o.model_dir;
  obj->tokenizer_dir = tok_dir;
  if (!o.chat_template_file.empty())
    obj->extra_files.emplace_back("chat_template.jinja", *chat_template);
  if (report) *report = std::move(rep);
  return obj;
}

}  // namespace lmf::train
