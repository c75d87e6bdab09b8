// PPO with a learned reward as TRL's PPOTrainer (trl 0.23): rollout, KL-penalised rewards, GAE,
// clipped policy and value losses over several epochs of mini-batches.
#include "lmforge/train/ppo.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/ops/ops.h"
#include "lmforge/tasks/generate.h"
#include "lmforge/tokenizers/chat_template.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/train/clm.h"
#include "lmforge/train/dpo.h"
#include "lmforge/train/hf_folder.h"
#include "lmforge/train/reward.h"

namespace lmf::train {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

constexpr float kInvalidLogprob = 1.0f;  // TRL's INVALID_LOGPROB

// TRL's masked_mean / masked_var (unbiased) / masked_whiten over flat arrays.
double masked_mean(const std::vector<double>& v, const std::vector<char>& keep) {
  double s = 0, n = 0;
  for (size_t i = 0; i < v.size(); ++i)
    if (keep[i]) s += v[i], n += 1;
  return s / n;
}

std::vector<double> masked_whiten(const std::vector<double>& v, const std::vector<char>& keep,
                                  bool shift_mean) {
  const double mean = masked_mean(v, keep);
  double ss = 0, n = 0;
  for (size_t i = 0; i < v.size(); ++i)
    if (keep[i]) ss += (v[i] - mean) * (v[i] - mean), n += 1;
  LMF_CHECK(n > 0, ValueError,
            "ppo: nothing to whiten (every response position is padding); use longer responses or "
            "a larger batch");
  const double var = ss / n * (n / (n - 1));  // Bessel's correction, as TRL's masked_var
  const double inv = 1.0 / std::sqrt(var + 1e-8);
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    out[i] = (v[i] - mean) * inv;
    if (!shift_mean) out[i] += mean;
  }
  return out;
}

// log softmax(x / t)[token] of one row of V logits, in double.
double row_logprob(const float* x, int64_t V, int64_t token, double t) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(x[i]) / t);
  double s = 0;
  for (int64_t i = 0; i < V; ++i) s += std::exp(static_cast<double>(x[i]) / t - mx);
  return static_cast<double>(x[token]) / t - mx - std::log(s);
}

// Entropy of softmax(x) (x already scaled), as TRL: logsumexp(x) - sum(softmax(x) x).
double row_entropy(const float* x, int64_t V) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < V; ++i) mx = std::max(mx, static_cast<double>(x[i]));
  double s = 0, sx = 0;
  for (int64_t i = 0; i < V; ++i) {
    const double e = std::exp(static_cast<double>(x[i]) - mx);
    s += e;
    sx += e * x[i];
  }
  return mx + std::log(s) - sx / s;
}

double var_unbiased(const std::vector<double>& v) {
  if (v.size() < 2) return NAN;
  const double m = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return ss / static_cast<double>(v.size() - 1);
}

}  // namespace

// ---- objective ----------------------------------------------------------------------------------

// Rows of prompt + response as TRL's forward() feeds them: padding as id 0 with mask 0, positions
// the exclusive cumsum of the mask. `lm`: the policy's inputs, logits kept for positions
// context - 1 ... end (the response's predictions); `score`: the score heads' inputs, every
// position's output.
struct PpoObjective::Batch {
  models::DecoderInputs lm, score;
  int64_t n = 0, T = 0;
};

PpoObjective::PpoObjective(std::unique_ptr<models::DecoderModel> policy,
                           std::unique_ptr<models::DecoderModel> ref_policy,
                           std::unique_ptr<models::DecoderModel> reward_model,
                           std::unique_ptr<models::DecoderModel> value_model,
                           std::vector<PpoExample> train, std::vector<PpoExample> eval,
                           int64_t pad_id, int64_t eos_id, PpoConfig config)
    : policy_(std::move(policy)),
      ref_(std::move(ref_policy)),
      reward_(std::move(reward_model)),
      value_(std::move(value_model)),
      train_(std::move(train)),
      eval_(std::move(eval)),
      pad_id_(pad_id),
      eos_id_(eos_id),
      cfg_(std::move(config)) {
  LMF_CHECK(policy_ && ref_ && reward_ && value_, ValueError, "ppo: a model is missing");
  LMF_CHECK(policy_->is_causal_lm() && ref_->is_causal_lm(), ValueError,
            "ppo: the policy must be a causal LM (*ForCausalLM / GPT2LMHeadModel), got {}",
            policy_->architecture());
  for (const auto* m : {reward_.get(), value_.get()})
    LMF_CHECK(!m->is_causal_lm(), ValueError,
              "ppo: the reward and value models must be one-output *ForSequenceClassification "
              "models (finetune --task reward), got {}",
              m->architecture());
  LMF_CHECK(!train_.empty(), ValueError, "ppo: no training prompts");
  LMF_CHECK(cfg_.num_ppo_epochs >= 1 && cfg_.num_mini_batches >= 1 && cfg_.response_length >= 1,
            ValueError,
            "ppo: --num-ppo-epochs, --num-mini-batches and --response-length must be "
            ">= 1");
  LMF_CHECK(cfg_.temperature > 0, ValueError, "ppo: --temperature must be > 0");
  LMF_CHECK(cfg_.kl_estimator == "k1" || cfg_.kl_estimator == "k3", ValueError,
            "ppo: --kl-estimator must be k1 or k3, got '{}'", cfg_.kl_estimator);
  const int64_t local_batch = cfg_.per_device_train_batch_size * cfg_.gradient_accumulation_steps;
  LMF_CHECK(local_batch % cfg_.num_mini_batches == 0, ValueError,
            "ppo: the rollout batch ({} = --batch-size x --grad-accum) must be a multiple of "
            "--num-mini-batches {}",
            local_batch, cfg_.num_mini_batches);
  // TRL disables dropout in all four models; the frozen ones also take the inference fast paths.
  policy_->train(false);
  value_->train(false);
  ref_->requires_grad_(false);
  reward_->requires_grad_(false);
  ref_->prepare_inference();
  reward_->prepare_inference();
}

PpoObjective::~PpoObjective() = default;

int64_t PpoObjective::example_length(int64_t i) const {
  return static_cast<int64_t>(train_.at(i).query.size()) + cfg_.response_length;
}

NamedTensors PpoObjective::parameters() const {
  NamedTensors out;
  for (auto& [name, t] : policy_->named_parameters())
    if (t.requires_grad()) out.emplace_back("policy." + name, t);
  for (auto& [name, t] : value_->named_parameters())
    if (t.requires_grad()) out.emplace_back("value." + name, t);
  return out;
}

void PpoObjective::set_training(bool on) {
  (void)on;  // TRL's disable_dropout: the models always run without dropout
  policy_->train(false);
  value_->train(false);
}

Objective::BatchLoss PpoObjective::loss(std::span<const int64_t> indices, Generator& rng) {
  (void)indices;
  (void)rng;
  fail<ValueError>("ppo: the objective trains through update(), not loss()");
}

std::vector<std::vector<int64_t>> PpoObjective::sample_responses(
    const std::vector<std::vector<int64_t>>& queries, uint64_t seed) const {
  tasks::GenerationConfig g;
  g.max_new_tokens = cfg_.response_length;
  g.do_sample = true;
  g.temperature = cfg_.temperature + 1e-7;  // TRL's GenerationConfig(temperature=t + 1e-7)
  g.top_k = 0;
  g.top_p = 1.0;
  if (cfg_.stop_token_id) g.eos_token_id = {*cfg_.stop_token_id};
  g.pad_token_id = pad_id_;
  g.seed = seed;
  std::vector<std::vector<int64_t>> out;
  out.reserve(queries.size());
  const int64_t chunk = std::max<int64_t>(1, cfg_.local_rollout_forward_batch_size);
  for (size_t start = 0; start < queries.size(); start += static_cast<size_t>(chunk)) {
    const size_t end = std::min(queries.size(), start + static_cast<size_t>(chunk));
    std::vector<std::vector<int64_t>> part(queries.begin() + static_cast<std::ptrdiff_t>(start),
                                           queries.begin() + static_cast<std::ptrdiff_t>(end));
    g.seed = seed + start;  // one stream per generation batch
    tasks::GenerationResult res = tasks::generate(*policy_, part, g);
    for (auto& s : res.sequences) out.push_back(std::move(s.output_ids));
  }
  return out;
}

PpoObjective::Batch PpoObjective::make_batch(const PpoRollout& r,
                                             std::span<const int64_t> rows) const {
  Batch b;
  b.n = static_cast<int64_t>(rows.size());
  b.T = r.context + r.length;
  std::vector<int64_t> ids(b.n * b.T, 0), mask(b.n * b.T, 0), pos(b.n * b.T, 0);
  for (int64_t i = 0; i < b.n; ++i) {
    const int64_t row = rows[i];
    const auto& q = r.queries[row];
    const int64_t pad = r.context - static_cast<int64_t>(q.size());
    int64_t* id = ids.data() + i * b.T;
    int64_t* m = mask.data() + i * b.T;
    for (int64_t t = 0; t < static_cast<int64_t>(q.size()); ++t) id[pad + t] = q[t], m[pad + t] = 1;
    for (int64_t t = 0; t <= r.sequence_lengths[row]; ++t) {
      id[r.context + t] = r.responses[row * r.length + t];
      m[r.context + t] = 1;
    }
    int64_t c = 0;  // attention_mask.cumsum(1) - attention_mask
    for (int64_t t = 0; t < b.T; ++t) {
      pos[i * b.T + t] = c;
      c += m[t];
    }
  }
  b.score.input_ids = Tensor::from_vector(ids, {b.n, b.T});
  b.score.attention_mask = Tensor::from_vector(mask, {b.n, b.T});
  b.score.position_ids = Tensor::from_vector(pos, {b.n, b.T});
  b.score.score_every_position = true;
  b.lm = b.score;
  b.lm.score_every_position = false;
  b.lm.logits_to_keep = r.length + 1;
  return b;
}

PpoRollout PpoObjective::rollout(const std::vector<std::vector<int64_t>>& queries,
                                 const std::vector<std::vector<int64_t>>& responses) const {
  LMF_CHECK(!queries.empty() && queries.size() == responses.size(), ValueError,
            "ppo rollout: {} prompts and {} responses", queries.size(), responses.size());
  PpoRollout r;
  const int64_t B = static_cast<int64_t>(queries.size());
  r.rows = B;
  r.queries = queries;
  for (const auto& q : queries) {
    LMF_CHECK(!q.empty(), ValueError, "ppo rollout: an empty prompt");
    r.context = std::max<int64_t>(r.context, static_cast<int64_t>(q.size()));
  }
  for (const auto& s : responses) r.length = std::max<int64_t>(r.length, s.size());
  const int64_t vocab = policy_->spec().vocab_size;
  for (size_t b = 0; b < queries.size(); ++b)
    for (const auto* row : {&queries[b], &responses[b]})
      for (int64_t id : *row)
        LMF_CHECK(id >= 0 && id < vocab, ValueError,
                  "ppo rollout: token id {} of row {} is outside the policy's vocabulary ({})", id,
                  b, vocab);
  LMF_CHECK(r.length > 0, ValueError, "ppo rollout: every response is empty");
  const int64_t R = r.length, ctx = r.context, BR = B * R;
  r.responses.assign(BR, pad_id_);
  r.sequence_lengths.assign(B, 0);
  r.contain_eos.assign(B, 0);
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = responses[b];
    int64_t end = static_cast<int64_t>(s.size());  // as generated; shorter rows are padding after
    for (int64_t t = 0; t < end; ++t) r.responses[b * R + t] = s[t];
    // truncate_response: everything after the first stop token is padding.
    if (cfg_.stop_token_id)
      for (int64_t t = 0; t < end; ++t)
        if (s[t] == *cfg_.stop_token_id) {
          end = t + 1;
          break;
        }
    LMF_CHECK(end > 0, ValueError, "ppo rollout: response {} is empty", b);
    r.sequence_lengths[b] = end - 1;
    for (int64_t t = 0; t < R; ++t) {
      if (r.responses[b * R + t] == eos_id_) {
        if (t < end) r.contain_eos[b] = 1;
        ++r.num_eos_tokens;
      }
    }
  }
  r.padding_mask.assign(BR, 0);
  r.padding_mask_p1.assign(BR, 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < R; ++t) {
      r.padding_mask[b * R + t] = t > r.sequence_lengths[b];
      r.padding_mask_p1[b * R + t] = t > r.sequence_lengths[b] + 1;
    }

  // Log-probabilities, values and scores, no gradients, in chunks of rows.
  NoGradGuard ng;
  r.logprobs.assign(BR, 0);
  r.ref_logprobs.assign(BR, 0);
  r.values.assign(BR, 0);
  r.scores.assign(B, 0);
  const double temp = cfg_.temperature + 1e-7;
  const int64_t chunk = std::max<int64_t>(1, cfg_.local_rollout_forward_batch_size);
  for (int64_t start = 0; start < B; start += chunk) {
    std::vector<int64_t> rows;
    for (int64_t b = start; b < std::min(B, start + chunk); ++b) rows.push_back(b);
    const Batch batch = make_batch(r, rows);
    for (int which = 0; which < 2; ++which) {
      const Tensor logits =
          (which == 0 ? policy_ : ref_)->forward(batch.lm).logits.contiguous();  // [n, R + 1, V]
      const int64_t V = logits.size(2);
      const float* x = logits.data<float>();
      std::vector<float>& dst = which == 0 ? r.logprobs : r.ref_logprobs;
      for (int64_t i = 0; i < batch.n; ++i) {
        const int64_t b = rows[i];
        for (int64_t t = 0; t < R; ++t) {
          if (r.padding_mask[b * R + t]) {
            dst[b * R + t] = kInvalidLogprob;
            continue;
          }
          const int64_t tok = r.responses[b * R + t];
          dst[b * R + t] = static_cast<float>(row_logprob(x + (i * (R + 1) + t) * V, V, tok, temp));
        }
      }
    }
    {
      const auto v =
          value_->forward(batch.score).logits.contiguous().to_vector<float>();  // [n, T, 1]
      for (int64_t i = 0; i < batch.n; ++i) {
        const int64_t b = rows[i];
        for (int64_t t = 0; t < R; ++t)
          r.values[b * R + t] = r.padding_mask_p1[b * R + t] ? 0.0f : v[i * batch.T + ctx - 1 + t];
      }
    }
    {
      const auto s = reward_->forward(batch.score).logits.contiguous().to_vector<float>();
      for (int64_t i = 0; i < batch.n; ++i) {
        const int64_t b = rows[i];
        r.scores[b] = s[i * batch.T + ctx + r.sequence_lengths[b]];
      }
    }
  }
  if (cfg_.missing_eos_penalty)
    for (int64_t b = 0; b < B; ++b)
      if (!r.contain_eos[b]) r.scores[b] -= *cfg_.missing_eos_penalty;

  // KL-penalised rewards, the score added after the last token.
  r.kl.assign(BR, 0);
  r.non_score_reward.assign(BR, 0);
  std::vector<double> rewards(BR);
  for (int64_t i = 0; i < BR; ++i) {
    const double logr = static_cast<double>(r.ref_logprobs[i]) - r.logprobs[i];
    const double kl = cfg_.kl_estimator == "k1" ? -logr : std::expm1(logr) - logr;
    r.kl[i] = static_cast<float>(kl);
    r.non_score_reward[i] = static_cast<float>(-cfg_.kl_coef * kl);
    rewards[i] = r.non_score_reward[i];
  }
  for (int64_t b = 0; b < B; ++b) {
    const int64_t p1 = r.sequence_lengths[b] + 1;
    const int64_t end = p1 < R ? p1 : r.sequence_lengths[b];
    rewards[b * R + end] += r.scores[b];
  }
  if (cfg_.whiten_rewards) {
    std::vector<char> keep(BR);
    for (int64_t i = 0; i < BR; ++i) keep[i] = !r.padding_mask_p1[i];
    rewards = masked_whiten(rewards, keep, false);
    for (int64_t i = 0; i < BR; ++i)
      if (r.padding_mask_p1[i]) rewards[i] = 0;
  }
  // GAE over every position (TRL runs it over the padding too), then whitened advantages.
  std::vector<double> adv(BR), ret(BR);
  for (int64_t b = 0; b < B; ++b) {
    double last = 0;
    for (int64_t t = R - 1; t >= 0; --t) {
      const double next = t < R - 1 ? r.values[b * R + t + 1] : 0.0;
      const double delta = rewards[b * R + t] + cfg_.gamma * next - r.values[b * R + t];
      last = delta + cfg_.gamma * cfg_.lam * last;
      adv[b * R + t] = last;
      ret[b * R + t] = last + r.values[b * R + t];
    }
  }
  std::vector<char> keep(BR);
  for (int64_t i = 0; i < BR; ++i) keep[i] = !r.padding_mask[i];
  adv = masked_whiten(adv, keep, true);
  r.rewards.resize(BR);
  r.advantages.resize(BR);
  r.returns.resize(BR);
  for (int64_t i = 0; i < BR; ++i) {
    r.rewards[i] = static_cast<float>(rewards[i]);
    r.advantages[i] = r.padding_mask[i] ? 0.0f : static_cast<float>(adv[i]);
    r.returns[i] = static_cast<float>(ret[i]);
  }
  return r;
}

Metrics PpoObjective::ppo_epochs(const PpoRollout& r, Generator& rng,
                                 const std::function<void()>& optimizer_step,
                                 const std::vector<std::vector<int64_t>>* permutations) {
  const int64_t B = r.rows, R = r.length, ctx = r.context;
  const int64_t acc = cfg_.gradient_accumulation_steps;
  const int64_t local_batch = cfg_.per_device_train_batch_size * acc;
  const int64_t mini = std::max<int64_t>(1, local_batch / cfg_.num_mini_batches);
  const int64_t micro = cfg_.per_device_train_batch_size;
  const double temp = cfg_.temperature + 1e-7;
  // TRL's stats arrays: (epochs, mini-batches, accumulation steps), zeros where no micro-batch ran.
  const size_t slots = static_cast<size_t>(cfg_.num_ppo_epochs * cfg_.num_mini_batches * acc);
  std::vector<double> approxkl(slots, 0), pg_clipfrac(slots, 0), pg_loss_s(slots, 0),
      vf_loss_s(slots, 0), vf_clipfrac(slots, 0), entropy_s(slots, 0), ratio_s(slots, 0);

  for (int64_t epoch = 0; epoch < cfg_.num_ppo_epochs; ++epoch) {
    std::vector<int64_t> perm(B);
    if (permutations) {
      perm = permutations->at(epoch);
      LMF_CHECK(static_cast<int64_t>(perm.size()) == B, ValueError,
                "ppo: permutation {} has {} rows, the rollout {}", epoch, perm.size(), B);
    } else {
      std::iota(perm.begin(), perm.end(), 0);
      for (int64_t i = B - 1; i > 0; --i)  // Fisher-Yates from the trainer's generator
        std::swap(perm[i],
                  perm[static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(i + 1))]);
    }
    int64_t mb_idx = 0;
    for (int64_t ms = 0; ms < B; ms += mini, ++mb_idx) {
      const int64_t me = std::min(B, ms + mini);
      int64_t micro_idx = 0;
      for (int64_t us = ms; us < me; us += micro, ++micro_idx) {
        const int64_t ue = std::min(me, us + micro);
        const std::span<const int64_t> rows(perm.data() + us, static_cast<size_t>(ue - us));
        const int64_t n = ue - us;
        const Batch batch = make_batch(r, rows);
        // New log-probabilities with their graph: -CE of the scaled logits at the response tokens.
        const Tensor logits = policy_->forward(batch.lm).logits;  // [n, R + 1, V]
        const int64_t V = logits.size(2);
        const Tensor scaled = div(logits.narrow(1, 0, R), Tensor::scalar(temp, logits.dtype()));
        std::vector<int64_t> targets(n * R);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t t = 0; t < R; ++t)
            targets[i * R + t] =
                r.padding_mask[rows[i] * R + t] ? -100 : r.responses[rows[i] * R + t];
        const Tensor nll =
            cross_entropy(scaled.reshape({n * R, V}), Tensor::from_vector(targets, {n * R}), -100,
                          0.0, Reduction::none);
        const Tensor vfull = value_->forward(batch.score).logits;  // [n, T, 1]
        const Tensor vpred_t = vfull.narrow(1, ctx - 1, R).reshape({n * R});
        const auto nll_v = nll.detach().to_vector<float>();
        const auto vp_v = vpred_t.detach().to_vector<float>();

        // The losses and their gradients with respect to the new log-probabilities and values.
        double n_pg = 0, n_vf = 0;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t t = 0; t < R; ++t) {
            n_pg += !r.padding_mask[rows[i] * R + t];
            n_vf += !r.padding_mask_p1[rows[i] * R + t];
          }
        std::vector<float> g_lp(n * R, 0.0f), g_v(n * R, 0.0f);
        double pg_sum = 0, pg_clip = 0, vf_sum = 0, vf_clip = 0, ratio_sum = 0, kl_sum = 0;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t t = 0; t < R; ++t) {
            const int64_t k = i * R + t, src = rows[i] * R + t;
            const bool pad = r.padding_mask[src], pad1 = r.padding_mask_p1[src];
            const double new_lp = pad ? kInvalidLogprob : -static_cast<double>(nll_v[k]);
            const double diff = new_lp - r.logprobs[src];
            const double ratio = std::exp(diff);
            ratio_sum += ratio;
            kl_sum += diff * diff;
            const double a = r.advantages[src];
            const double lo = 1.0 - cfg_.cliprange, hi = 1.0 + cfg_.cliprange;
            const double clipped = std::clamp(ratio, lo, hi);
            const double l1 = -a * ratio, l2 = -a * clipped;
            if (!pad) {
              pg_sum += std::max(l1, l2);
              pg_clip += l2 > l1;
              // d max(l1, l2) / d new_lp; clamp passes the gradient inside [lo, hi] (torch).
              const double d =
                  l2 > l1 ? (ratio >= lo && ratio <= hi ? -a * ratio : 0.0) : -a * ratio;
              g_lp[k] = static_cast<float>(d / n_pg);
            }
            const double v = pad1 ? 0.0 : static_cast<double>(vp_v[k]);
            const double old = r.values[src], ret = r.returns[src];
            const double vc = std::clamp(v, old - cfg_.cliprange_value, old + cfg_.cliprange_value);
            const double v1 = (v - ret) * (v - ret), v2 = (vc - ret) * (vc - ret);
            if (!pad1) {
              vf_sum += std::max(v1, v2);
              vf_clip += v2 > v1;
              const bool inside =
                  v >= old - cfg_.cliprange_value && v <= old + cfg_.cliprange_value;
              const double d = v2 > v1 ? (inside ? 2 * (vc - ret) : 0.0) : 2 * (v - ret);
              g_v[k] = static_cast<float>(0.5 * cfg_.vf_coef * d / n_vf);
            }
          }
        const double pg_loss = pg_sum / n_pg, vf_loss = 0.5 * vf_sum / n_vf;
        // Backward through loss / accumulation (accelerate's scaling): new_lp = -nll.
        const double scale = 1.0 / static_cast<double>(acc);
        for (float& g : g_lp) g = static_cast<float>(-g * scale);
        for (float& g : g_v) g = static_cast<float>(g * scale);
        const Tensor surrogate = add(sum(mul(nll, Tensor::from_vector(g_lp, {n * R}))),
                                     sum(mul(vpred_t, Tensor::from_vector(g_v, {n * R}))));
        surrogate.backward();

        // Statistics as TRL records them (entropy and ratio over every position of the batch).
        double ent = 0;
        {
          NoGradGuard ng;
          const Tensor sc = scaled.detach().contiguous();
          const float* x = sc.data<float>();
          for (int64_t k = 0; k < n * R; ++k) ent += row_entropy(x + k * V, V);
        }
        const size_t slot = static_cast<size_t>((epoch * cfg_.num_mini_batches + mb_idx) * acc +
                                                std::min(micro_idx, acc - 1));
        const double cells = static_cast<double>(n * R);
        approxkl[slot] = 0.5 * kl_sum / cells;
        pg_clipfrac[slot] = pg_clip / n_pg;
        pg_loss_s[slot] = pg_loss;
        vf_loss_s[slot] = vf_loss;
        vf_clipfrac[slot] = vf_clip / n_vf;
        entropy_s[slot] = ent / cells;
        ratio_s[slot] = ratio_sum / cells;
      }
      optimizer_step();  // one step per mini-batch
    }
  }
  auto mean = [](const std::vector<double>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  const int64_t BR = B * R;
  double kl_rows = 0, ent_rows = 0, nsr_rows = 0, score_mean = 0;
  for (int64_t i = 0; i < BR; ++i) {
    kl_rows += r.kl[i];
    ent_rows += -static_cast<double>(r.logprobs[i]);
    nsr_rows += r.non_score_reward[i];
  }
  for (double s : r.scores) score_mean += s;
  score_mean /= static_cast<double>(B);
  Metrics m;
  m["objective/kl"] = kl_rows / static_cast<double>(B);
  m["objective/entropy"] = ent_rows / static_cast<double>(B);
  m["objective/non_score_reward"] = nsr_rows / static_cast<double>(B);
  m["objective/rlhf_reward"] = nsr_rows / static_cast<double>(B) + score_mean;
  m["objective/scores"] = score_mean;
  m["policy/approxkl_avg"] = mean(approxkl);
  m["policy/clipfrac_avg"] = mean(pg_clipfrac);
  m["loss/policy_avg"] = mean(pg_loss_s);
  m["loss/value_avg"] = mean(vf_loss_s);
  m["val/clipfrac_avg"] = mean(vf_clipfrac);
  m["policy/entropy_avg"] = mean(entropy_s);
  m["val/ratio"] = mean(ratio_s);
  m["val/ratio_var"] = var_unbiased(ratio_s);
  m["val/num_eos_tokens"] = static_cast<double>(r.num_eos_tokens);
  return m;
}

std::optional<Objective::UpdateResult> PpoObjective::update(
    std::span<const int64_t> indices, Generator& rng, const std::function<void()>& optimizer_step) {
  std::vector<std::vector<int64_t>> queries;
  for (int64_t i : indices) {
    const auto& q = train_.at(i).query;
    queries.emplace_back(q.begin(), q.end());
  }
  const uint64_t seed = rng.next_u64();
  const std::vector<std::vector<int64_t>> responses = sample_responses(queries, seed);
  const PpoRollout r = rollout(queries, responses);
  UpdateResult out;
  out.parts = ppo_epochs(r, rng, optimizer_step);
  out.loss = out.parts["loss/policy_avg"] + cfg_.vf_coef * out.parts["loss/value_avg"];
  for (int64_t b = 0; b < r.rows; ++b)
    out.tokens += static_cast<int64_t>(r.queries[b].size()) + r.sequence_lengths[b] + 1;
  return out;
}

Metrics PpoObjective::evaluate() {
  if (eval_.empty()) return {};
  NoGradGuard ng;
  const int64_t n = static_cast<int64_t>(eval_.size());
  double scores = 0, kl = 0, nsr = 0, len = 0;
  for (int64_t start = 0; start < n; start += eval_batch_size) {
    std::vector<std::vector<int64_t>> queries;
    for (int64_t i = start; i < std::min(n, start + eval_batch_size); ++i)
      queries.emplace_back(eval_[i].query.begin(), eval_[i].query.end());
    const PpoRollout r =
        rollout(queries, sample_responses(queries, eval_seed + static_cast<uint64_t>(start)));
    for (int64_t b = 0; b < r.rows; ++b) {
      scores += r.scores[b];
      len += static_cast<double>(r.sequence_lengths[b] + 1);
      for (int64_t t = 0; t < r.length; ++t) {
        kl += r.kl[b * r.length + t];
        nsr += r.non_score_reward[b * r.length + t];
      }
    }
  }
  const double dn = static_cast<double>(n);
  return {{"eval_objective/scores", scores / dn},
          {"eval_objective/kl", kl / dn},
          {"eval_objective/rlhf_reward", (scores + nsr) / dn},
          {"eval_response_length", len / dn}};
}

void PpoObjective::save_pretrained(const std::string& dir) const {
  save_decoder_folder(*policy_, std::nullopt, "", policy_dir, tokenizer_dir, extra_files, dir);
  const std::string vdir = (fs::path(dir) / "value_model").string();
  models::save_pretrained(*value_, vdir);
  copy_existing_files(
      tokenizer_dir, vdir,
      {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
       "merges.txt", "tokenizer.model", "chat_template.jinja", "added_tokens.json"});
}

void PpoObjective::load_pretrained(const std::string& dir) {
  load_saved_weights(*policy_, dir);
  load_saved_weights(*value_, (fs::path(dir) / "value_model").string());
}

// ---- data and factory ---------------------------------------------------------------------------

namespace {

struct PromptRecord {
  std::string where;
  bool chat = false;
  std::string text;
  ojson messages;
};

struct PromptData {
  std::vector<PromptRecord> records;
  std::vector<std::string> skipped;
};

// Why record j gives no prompt ("" when `r` holds one): a preference pair's extracted prompt, a
// "prompt" (text or messages), or the "messages" before the first assistant turn.
std::string parse_prompt_record(const ojson& j, PromptRecord& r) {
  if (!j.is_object()) return "not a JSON object";
  if (j.contains("chosen") || j.contains("rejected")) {
    PreferenceRecord pair;
    pair.where = r.where;
    if (std::string why = parse_preference_record(j, pair); !why.empty()) return why;
    const PreferenceRecord e = extract_prompt(pair);
    r.chat = e.conversational;
    r.text = e.prompt;
    r.messages = e.prompt_messages;
    return (r.chat ? r.messages.empty() : r.text.empty()) ? "the pair has no common prompt" : "";
  }
  if (j.contains("prompt")) {
    const ojson& p = j["prompt"];
    if (p.is_string()) {
      r.text = p.get<std::string>();
      return r.text.empty() ? "an empty \"prompt\"" : "";
    }
    r.chat = true;
    r.messages = p;
    return is_chat_messages(p) ? "" : "\"prompt\" is neither text nor a list of {role, content}";
  }
  if (j.contains("messages")) {
    if (!is_chat_messages(j["messages"])) return "\"messages\" is not a list of {role, content}";
    r.chat = true;
    r.messages = ojson::array();
    for (const auto& m : j["messages"]) {
      if (m["role"].get<std::string>() == "assistant") break;
      r.messages.push_back(m);
    }
    return r.messages.empty() ? "the conversation starts with the assistant" : "";
  }
  return "no \"prompt\", \"messages\" or \"chosen\"/\"rejected\" field";
}

}  // namespace

std::unique_ptr<PpoObjective> make_ppo_objective(const PpoOptions& o, PpoReport* report) {
  LMF_CHECK(!o.model_dir.empty(), ValueError, "ppo needs --model DIR (the policy, a causal LM)");
  LMF_CHECK(!o.reward_model_dir.empty(), ValueError,
            "ppo needs --reward-model DIR (a one-output *ForSequenceClassification folder, e.g. "
            "from `lmforge finetune --task reward`)");
  LMF_CHECK(!o.train_file.empty(), ValueError, "ppo needs --train FILE (prompts)");
  LMF_CHECK(o.eval_file.empty() || o.eval_split == 0, ValueError,
            "give --eval FILE or --eval-split, not both");
  LMF_CHECK(o.max_prompt_length >= 1, ValueError, "--max-prompt-length must be at least 1");
  PpoReport rep;
  const std::string tok_dir = o.tokenizer_dir.empty() ? o.model_dir : o.tokenizer_dir;
  const tok::Tokenizer tokenizer = load_training_tokenizer(tok_dir);
  const TokenizerSpecials specials = read_tokenizer_specials(tok_dir);
  const std::optional<std::string> chat_template =
      task_chat_template(tok_dir, o.chat_template_file);

  auto split = read_train_eval<PromptData>(
      [&](const std::string& f) {
        return read_usable_records<PromptData>(f, o.strict_data, "prompt", parse_prompt_record);
      },
      o.train_file, o.eval_file, o.eval_split, o.seed, o.max_train_examples, o.max_eval_examples);
  rep.skipped = std::move(split.skipped);

  std::unique_ptr<models::DecoderModel> policy = load_or_create_causal_lm(o.model_dir, "", o.seed);
  std::unique_ptr<models::DecoderModel> ref = load_or_create_causal_lm(o.model_dir, "", o.seed);
  bool fresh_reward_head = false;
  std::unique_ptr<models::DecoderModel> reward =
      load_score_model(o.reward_model_dir, tok_dir, o.seed, &fresh_reward_head);
  LMF_CHECK(!fresh_reward_head, ValueError,
            "{}: not a reward model (it has no score head); train one with `lmforge finetune "
            "--task reward` first",
            o.reward_model_dir);
  const std::string value_dir = o.value_model_dir.empty() ? o.reward_model_dir : o.value_model_dir;
  std::unique_ptr<models::DecoderModel> value =
      load_score_model(value_dir, tok_dir, o.seed + 1, &rep.new_value_head);
  const int64_t vocab = policy->spec().vocab_size;
  LMF_CHECK(reward->spec().vocab_size >= vocab && value->spec().vocab_size >= vocab, ValueError,
            "ppo: the reward/value models' vocabulary ({}/{}) is smaller than the policy's ({}); "
            "they must share the policy's tokenizer",
            reward->spec().vocab_size, value->spec().vocab_size, vocab);
  const int64_t max_positions = policy->spec().max_positions;

  auto examples_of = [&](const std::vector<PromptRecord>& records) {
    std::vector<PpoExample> out;
    for (const PromptRecord& r : records) {
      PpoExample e;
      if (r.chat) {
        LMF_CHECK(chat_template.has_value(), ValueError,
                  "{}: conversational prompts need a chat template; give --chat-template FILE",
                  r.where);
        e.query = encode_ids(
            tokenizer, tok::apply_chat_template(*chat_template, r.messages, true, specials.tokens),
            false);
        rep.chat = true;
      } else {
        e.query = encode_ids(tokenizer, r.text, true);
      }
      if (e.query.empty() || static_cast<int64_t>(e.query.size()) > o.max_prompt_length ||
          (max_positions > 0 &&
           static_cast<int64_t>(e.query.size()) + o.ppo.response_length > max_positions)) {
        ++rep.too_long;
        continue;
      }
      check_ids_in_vocab(e.query, vocab, r.where);
      out.push_back(std::move(e));
    }
    return out;
  };
  std::vector<PpoExample> train_ex = examples_of(split.train);
  std::vector<PpoExample> eval_ex = examples_of(split.eval);
  LMF_CHECK(!train_ex.empty(), ValueError,
            "{}: no training prompt left (malformed, or longer than --max-prompt-length {})",
            o.train_file, o.max_prompt_length);
  rep.train_examples = static_cast<int64_t>(train_ex.size());
  rep.eval_examples = static_cast<int64_t>(eval_ex.size());

  const int64_t pad = decoder_pad_id(*policy);
  int64_t eos = -1;
  if (!specials.eos.empty())
    if (auto id = tokenizer.token_to_id(specials.eos)) eos = static_cast<int64_t>(*id);
  if (eos < 0 && !policy->spec().eos_token_ids.empty()) eos = policy->spec().eos_token_ids.front();
  PpoConfig cfg = o.ppo;
  if (o.stop_at_eos) {
    LMF_CHECK(eos >= 0, ValueError,
              "--stop-token eos: the tokenizer in {} has no EOS token; give --stop-token-id ID",
              tok_dir);
    cfg.stop_token_id = eos;
  }
  auto obj = std::make_unique<PpoObjective>(std::move(policy), std::move(ref), std::move(reward),
                                            std::move(value), std::move(train_ex),
                                            std::move(eval_ex), pad, eos, cfg);
  obj->policy_dir = o.model_dir;
  obj->value_dir = value_dir;
  obj->tokenizer_dir = tok_dir;
  obj->eval_seed = o.seed;
  obj->eval_batch_size = std::max<int64_t>(1, o.eval_batch_size);
  if (!o.chat_template_file.empty())
    obj->extra_files.emplace_back("chat_template.jinja", *chat_template);
  if (report) *report = std::move(rep);
  return obj;
}

}  // namespace lmf::train
