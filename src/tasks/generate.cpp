// The generation loop (transformers' _sample and _beam_search) over DecoderModel with a
// preallocated KV cache: left-padded batches, prefill with logits_to_keep = 1, one-token steps,
// eos / length / stop-string / cancel stopping, streaming and timings.
#include "lmforge/tasks/generate.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "generate_search.h"
#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/core/runtime.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::tasks {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<uint32_t> to_u32(const std::vector<int64_t>& ids, size_t from = 0) {
  std::vector<uint32_t> out;
  out.reserve(ids.size() - std::min(from, ids.size()));
  for (size_t i = from; i < ids.size(); ++i) out.push_back(static_cast<uint32_t>(ids[i]));
  return out;
}

bool contains(const std::vector<int64_t>& v, int64_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// StopStringCriteria: a stop string that overlaps the last token's text (it ends after the
// text of the tokens before it).
bool hits_stop_string(const tok::Tokenizer& tk, const std::vector<int64_t>& generated,
                      const std::vector<std::string>& stops) {
  if (stops.empty() || generated.empty()) return false;
  std::vector<uint32_t> ids = to_u32(generated);
  const std::string all = tk.decode(ids, true);
  ids.pop_back();
  const std::string before = tk.decode(ids, true);
  size_t common = 0;
  while (common < before.size() && common < all.size() && before[common] == all[common]) ++common;
  for (const auto& s : stops) {
    const size_t from = common + 1 > s.size() ? common + 1 - s.size() : 0;
    if (all.find(s, from) != std::string::npos) return true;
  }
  return false;
}

// One forward pass: `ids` [rows, T] row-major, `mask` [rows, total] (empty: no mask); returns the
// last position's logits as a fresh f32 [rows, V].
Tensor forward_last(const models::DecoderModel& model, const std::vector<int64_t>& ids,
                    int64_t rows, int64_t T, const std::vector<int64_t>& mask, int64_t total,
                    models::KVCache& cache) {
  models::DecoderInputs in;
  in.input_ids = Tensor::from_vector(ids, {rows, T});
  if (!mask.empty()) in.attention_mask = Tensor::from_vector(mask, {rows, total});
  in.cache = &cache;
  in.logits_to_keep = 1;
  in.prune_last_layer = true;
  models::DecoderOutput out = model.forward(in);
  LMF_CHECK(out.logits.defined() && out.logits.dim() == 3 && out.logits.size(0) == rows &&
                out.logits.size(2) == model.spec().vocab_size,
            ShapeError, "generate: the model returned logits {} for {} rows and vocab_size {}",
            out.logits.defined() ? out.logits.describe() : "none", rows, model.spec().vocab_size);
  return out.logits.select(1, out.logits.size(1) - 1).to(DType::f32).contiguous().clone();
}

// The prompt's forward pass in pieces of at most `chunk` positions (0: one piece) through the
// cache, as llama.cpp's micro-batches: smaller GEMMs run faster here and keep oneDNN's working
// memory small (a 512-row prefill of SmolLM2 took ~350 MB more peak memory than a 256-row one).
// Returns the last position's logits, as forward_last.
Tensor prefill(const models::DecoderModel& model, const std::vector<int64_t>& ids, int64_t rows,
               int64_t L, const std::vector<int64_t>& mask, int64_t chunk, models::KVCache& cache) {
  if (chunk <= 0 || L <= chunk) return forward_last(model, ids, rows, L, mask, L, cache);
  Tensor logits;
  for (int64_t c0 = 0; c0 < L; c0 += chunk) {
    const int64_t T = std::min(chunk, L - c0), total = c0 + T;
    std::vector<int64_t> part, part_mask;
    part.reserve(rows * T);
    for (int64_t r = 0; r < rows; ++r) {
      part.insert(part.end(), ids.begin() + r * L + c0, ids.begin() + r * L + total);
      if (!mask.empty())
        part_mask.insert(part_mask.end(), mask.begin() + r * L, mask.begin() + r * L + total);
    }
    logits = forward_last(model, part, rows, T, part_mask, total, cache);
  }
  return logits;
}

// Draws one index with probability softmax(scores) (-inf never), as torch.multinomial on probs.
int64_t sample_row(const float* x, int64_t n, Generator& gen) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  std::vector<double> p(n);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += (p[i] = std::exp(static_cast<double>(x[i]) - mx));
  double u = gen.uniform() * total;
  int64_t last = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] <= 0) continue;
    last = i;
    if (u < p[i]) return i;
    u -= p[i];
  }
  return last;
}

// The first index of the largest value (a NaN never wins, except at index 0 as the scan's
// start), vectorised: the maximum in one pass, then its first position.
__attribute__((target_clones("avx512f", "default"))) int64_t argmax_row(const float* x,
                                                                       int64_t n) {
  if (n <= 0 || std::isnan(x[0])) return 0;
  float m = x[0];
#pragma omp simd reduction(max : m)
  for (int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int64_t i = 0; i < n; ++i)
    if (x[i] == m) return i;
  return 0;
}

// torch.topk's order: the larger value first, the lower index first among equals.
bool ranks_before(float xa, int64_t a, float xb, int64_t b) {
  return xa > xb || (xa == xb && a < b);
}

// Indices of the k largest values (descending, the lower index first among equals), torch.topk.
// One pass keeping the best k sorted (k is 2 x num_beams, n up to beams x vocabulary): a value
// enters only if it beats the current k-th, and a later equal value never does (higher index).
std::vector<int64_t> topk_indices(const float* x, int64_t n, int64_t k) {
  k = std::min(k, n);
  std::vector<int64_t> best;
  if (k <= 0) return best;
  best.reserve(static_cast<size_t>(k) + 1);
  auto better = [&](int64_t a, int64_t b) { return ranks_before(x[a], a, x[b], b); };
  for (int64_t i = 0; i < n; ++i) {
    if (static_cast<int64_t>(best.size()) == k && !better(i, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), i, better), i);
    if (static_cast<int64_t>(best.size()) > k) best.pop_back();
  }
  return best;
}

// The top k of (row[v] + add) over v in [0, n) as topk_indices orders them (value descending,
// index ascending on ties), written to idx[0..k) / val[0..k); fewer when n < k. Adding `add` in
// the scan (as beam search's running score) keeps the float sums, so merging these per-row lists
// equals topk_indices over the summed rows.
// Offers (x, v) to the sorted top list (m entries of k): enters only if it beats the k-th.
inline void topk_offer(float x, int64_t v, int64_t k, int64_t& m, int64_t* idx, float* val) {
  if (m == k && !(x > val[k - 1])) return;  // a later index loses ties
  int64_t i = m < k ? m++ : k - 1;
  while (i > 0 && x > val[i - 1]) {
    val[i] = val[i - 1];
    idx[i] = idx[i - 1];
    --i;
  }
  val[i] = x;
  idx[i] = v;
}

#if defined(__x86_64__)
// The same scan, 16 values at a time: once the list is full, only the values that beat its k-th
// (rare after the first few hundred) are offered, in index order, so the result is the scalar
// scan's exactly (the same float sums; NaN never enters either way).
__attribute__((target("avx512f"))) int64_t row_topk_avx512(const float* row, int64_t n, float add,
                                                           int64_t k, int64_t* idx, float* val) {
  int64_t m = 0, v = 0;
  for (; v < n && m < k; ++v) topk_offer(row[v] + add, v, k, m, idx, val);
  const __m512 a = _mm512_set1_ps(add);
  for (; v + 16 <= n; v += 16) {
    const __m512 x = _mm512_add_ps(_mm512_loadu_ps(row + v), a);
    __mmask16 hit = _mm512_cmp_ps_mask(x, _mm512_set1_ps(val[k - 1]), _CMP_GT_OQ);
    while (hit) {
      const int j = __builtin_ctz(hit);
      hit = static_cast<__mmask16>(hit & (hit - 1));
      topk_offer(row[v + j] + add, v + j, k, m, idx, val);
    }
  }
  for (; v < n; ++v) topk_offer(row[v] + add, v, k, m, idx, val);
  return m;
}
#endif

int64_t row_topk(const float* row, int64_t n, float add, int64_t k, int64_t* idx, float* val) {
  if (k <= 0) return 0;
#if defined(__x86_64__)
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512) return row_topk_avx512(row, n, add, k, idx, val);
#endif
  int64_t m = 0;
  for (int64_t v = 0; v < n; ++v) topk_offer(row[v] + add, v, k, m, idx, val);
  return m;
}

}  // namespace

double GenerationStats::prefill_tokens_per_second() const {
  return prefill_seconds > 0 ? static_cast<double>(prompt_tokens) / prefill_seconds : 0.0;
}
double GenerationStats::decode_tokens_per_second() const {
  return decode_seconds > 0 ? static_cast<double>(decode_tokens) / decode_seconds : 0.0;
}

nlohmann::json GenerationResult::to_json() const {
  nlohmann::json j;
  j["sequences"] = nlohmann::json::array();
  for (const auto& s : sequences) {
    nlohmann::json o;
    o["prompt_index"] = s.prompt_index;
    o["prompt_ids"] = s.prompt_ids;
    o["output_ids"] = s.output_ids;
    o["text"] = s.text;
    o["finish_reason"] = s.finish_reason;
    if (s.score) o["score"] = *s.score;
    o["prompt_tokens"] = s.prompt_ids.size();
    o["generated_tokens"] = s.output_ids.size();
    j["sequences"].push_back(o);
  }
  j["stats"] = {{"prompt_tokens", stats.prompt_tokens},
                {"generated_tokens", stats.generated_tokens},
                {"decode_steps", stats.decode_steps},
                {"decode_tokens", stats.decode_tokens},
                {"prefill_seconds", stats.prefill_seconds},
                {"decode_seconds", stats.decode_seconds},
                {"prefill_tokens_per_second", stats.prefill_tokens_per_second()},
                {"decode_tokens_per_second", stats.decode_tokens_per_second()},
                {"cache_bytes", stats.cache_bytes},
                {"cache_capacity", stats.cache_capacity}};
  return j;
}

namespace detail {

PromptRows prompt_rows(const Setup& s, int64_t per_prompt) {
  const int64_t rows = s.B * per_prompt;
  PromptRows p;
  p.seqs.resize(rows);
  p.pad_len.resize(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const auto& prompt = s.prompts[r / per_prompt];
    p.pad_len[r] = s.pad_len[r / per_prompt];
    p.seqs[r].assign(p.pad_len[r], s.pad);
    p.seqs[r].insert(p.seqs[r].end(), prompt.begin(), prompt.end());
    p.ids.insert(p.ids.end(), p.seqs[r].begin(), p.seqs[r].end());
    if (s.padded)
      for (int64_t i = 0; i < s.L; ++i) p.mask.push_back(i < p.pad_len[r] ? 0 : 1);
  }
  return p;
}

}  // namespace detail

namespace {

using detail::PromptRows;
using detail::Setup;

// The decoder-only model's steps: a prefill in chunks, then one-token forwards over the KV cache.
class DecoderSteps : public detail::Stepper {
 public:
  DecoderSteps(const models::DecoderModel& m, int64_t chunk) : model_(m), chunk_(chunk) {}
  void start(int64_t rows, int64_t capacity) override {
    rows_ = rows;
    cache_ = model_.make_cache(rows, capacity);
  }
  Tensor first(const PromptRows& pr, int64_t L) override {
    return prefill(model_, pr.ids, rows_, L, pr.mask, chunk_, cache_);
  }
  Tensor step(const std::vector<int64_t>& next, const std::vector<int64_t>& mask,
              int64_t cur_len) override {
    return forward_last(model_, next, rows_, 1, mask, cur_len, cache_);
  }
  void reorder(const std::vector<int64_t>& rows) override { cache_.reorder(rows); }
  size_t cache_bytes() const override { return cache_.bytes(); }
  int64_t cache_capacity() const override { return cache_.capacity(); }

 private:
  const models::DecoderModel& model_;
  int64_t chunk_;
  int64_t rows_ = 0;
  models::KVCache cache_;
};

Setup prepare(const models::DecoderModel& model, const std::vector<std::vector<int64_t>>& prompts,
              const GenerationConfig& cfg, const GenerateOptions& opt) {
  LMF_CHECK(
      model.is_causal_lm(), ValueError,
      "generate: {} has no language-model head; load a *LMHeadModel / *ForCausalLM checkpoint",
      model.architecture());
  LMF_CHECK(!prompts.empty(), ValueError, "generate: no prompts given");
  LMF_CHECK(cfg.stop_strings.empty() || opt.tokenizer, ValueError,
            "generate: stop_strings need a tokenizer (GenerateOptions::tokenizer)");
  LMF_CHECK(!opt.on_text || opt.tokenizer, ValueError, "generate: streaming needs a tokenizer");
  LMF_CHECK(!opt.on_text || cfg.num_beams == 1, ValueError,
            "generate: streaming is not supported with beam search (num_beams {})", cfg.num_beams);
  const models::DecoderSpec spec = model.spec();
  Setup s;
  s.V = spec.vocab_size;
  s.B = static_cast<int64_t>(prompts.size());
  const int64_t P = spec.max_positions;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int64_t> p = prompts[i];
    LMF_CHECK(!p.empty(), ValueError,
              "generate: prompt {} is empty (give at least one token, e.g. BOS)", i);
    for (int64_t t : p)
      LMF_CHECK(t >= 0 && t < s.V, ValueError,
                "generate: prompt {} has token id {} outside the vocabulary [0, {})", i, t, s.V);
    if (P > 0 && static_cast<int64_t>(p.size()) >= P) {
      LMF_CHECK(
          opt.truncate_left, ValueError,
          "generate: prompt {} has {} tokens but the model's context is {} positions (with room "
          "for "
          "at least one new token); shorten the prompt or truncate it from the left (--truncate)",
          i, p.size(), P);
    }
    s.prompts.push_back(std::move(p));
  }
  if (P > 0 && opt.truncate_left) {
    const int64_t want_new = cfg.max_new_tokens ? *cfg.max_new_tokens : (cfg.max_length ? 1 : 20);
    const int64_t keep = std::max<int64_t>(1, P - std::min(want_new, P - 1));
    for (auto& p : s.prompts)
      if (static_cast<int64_t>(p.size()) > keep) p.erase(p.begin(), p.end() - keep);
  }
  for (const auto& p : s.prompts) s.L = std::max<int64_t>(s.L, static_cast<int64_t>(p.size()));
  for (const auto& p : s.prompts) {
    s.pad_len.push_back(s.L - static_cast<int64_t>(p.size()));
    s.padded = s.padded || s.pad_len.back() > 0;
  }
  // transformers: pad_token_id, else eos_token_id[0]; lmforge then the model's pad id, else 0.
  s.pad = cfg.pad_token_id
              ? *cfg.pad_token_id
              : (!cfg.eos_token_id.empty() ? cfg.eos_token_id[0]
                                           : (spec.pad_token_id >= 0 ? spec.pad_token_id : 0));
  // max_new_tokens overrides max_length; at least one token is generated (as generate's loop).
  // Unset max_length: 20 new tokens.
  s.max_len = cfg.max_new_tokens ? s.L + *cfg.max_new_tokens
                                 : (cfg.max_length ? *cfg.max_length : s.L + 20);
  s.max_len = std::max(s.max_len, s.L + 1);
  if (P > 0) s.max_len = std::min(s.max_len, P);
  return s;
}

}  // namespace

namespace detail {

void finish_sequence(GeneratedSequence& g, const GenerateOptions& opt) {
  if (opt.tokenizer) g.text = opt.tokenizer->decode(to_u32(g.output_ids), true);
}

// Greedy search and multinomial sampling (transformers' _sample).
GenerationResult sample_search(Stepper& st, const GenerationConfig& cfg, const GenerateOptions& opt,
                               const Setup& s) {
  const int64_t nrs = cfg.sampling() ? cfg.num_return_sequences : 1;
  const int64_t rows = s.B * nrs;
  const int64_t L = s.L;
  GenerationResult res;
  st.start(rows, s.max_len);
  res.stats.cache_bytes = st.cache_bytes();
  res.stats.cache_capacity = st.cache_capacity();

  PromptRows pr = prompt_rows(s, nrs);
  TokenRows& seqs = pr.seqs;
  const std::vector<int64_t>& pad_len = pr.pad_len;
  std::vector<int64_t>& mask = pr.mask;  // grows by one column per step
  const LogitsProcessorList procs = build_logits_processors(cfg, L, pad_len, s.max_len);
  Generator gen(cfg.seed ? *cfg.seed : std::random_device{}());

  std::vector<GeneratedSequence> out(rows);
  std::vector<char> done(rows, 0);
  std::vector<std::unique_ptr<TextStreamDecoder>> streams(rows);
  for (int64_t r = 0; r < rows; ++r) {
    out[r].prompt_index = r / nrs;
    out[r].prompt_ids = s.prompts[r / nrs];
    if (opt.on_text) streams[r] = std::make_unique<TextStreamDecoder>(*opt.tokenizer);
  }

  NoGradGuard no_grad;
  auto t0 = Clock::now();
  Tensor logits = st.first(pr, L);
  res.stats.prefill_seconds = seconds_since(t0);
  res.stats.prompt_tokens = rows * L;
  auto t1 = Clock::now();
  int64_t cur_len = L;
  while (true) {
    apply_processors(procs, seqs, logits);
    const float* x = logits.data<float>();
    std::vector<int64_t> next(rows);
    for (int64_t r = 0; r < rows; ++r) {
      next[r] = done[r] ? s.pad
                        : (cfg.sampling() ? sample_row(x + r * s.V, s.V, gen)
                                          : argmax_row(x + r * s.V, s.V));
      seqs[r].push_back(next[r]);
    }
    ++cur_len;
    const bool cancelled = opt.cancel && opt.cancel->load();
    for (int64_t r = 0; r < rows; ++r) {
      if (done[r]) continue;
      out[r].output_ids.push_back(next[r]);
      if (streams[r]) {
        const std::string piece = streams[r]->put(next[r]);
        if (!piece.empty()) opt.on_text(r, piece);
      }
      if (contains(cfg.eos_token_id, next[r]))
        out[r].finish_reason = "eos";
      else if (opt.tokenizer &&
               hits_stop_string(*opt.tokenizer, out[r].output_ids, cfg.stop_strings))
        out[r].finish_reason = "stop";
      else if (cur_len >= s.max_len)
        out[r].finish_reason = "length";
      else if (cancelled)
        out[r].finish_reason = "cancelled";
      done[r] = !out[r].finish_reason.empty();
    }
    if (std::all_of(done.begin(), done.end(), [](char d) { return d != 0; })) break;
    // Next step: the new tokens, the mask grown by one attended position.
    if (s.padded) {
      std::vector<int64_t> m2;
      m2.reserve(rows * cur_len);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i = 0; i < cur_len; ++i) m2.push_back(i < pad_len[r] ? 0 : 1);
      }
      mask.swap(m2);
    }
    logits = st.step(next, mask, cur_len);
    ++res.stats.decode_steps;
    res.stats.decode_tokens += static_cast<int64_t>(std::count(done.begin(), done.end(), 0));
  }
  res.stats.decode_seconds = seconds_since(t1);
  for (int64_t r = 0; r < rows; ++r) {
    if (streams[r]) {
      const std::string tail = streams[r]->flush();
      if (!tail.empty()) opt.on_text(r, tail);
    }
    finish_sequence(out[r], opt);
    res.stats.generated_tokens += static_cast<int64_t>(out[r].output_ids.size());
  }
  res.sequences = std::move(out);
  return res;
}

// Beam search as transformers 5.x _beam_search: K = max(2, 1 + #eos) * num_beams candidates per
// prompt and step, finished hypotheses kept with length-penalised scores, the early-stop
// heuristic and the three early_stopping modes.
GenerationResult beam_search(Stepper& st, const GenerationConfig& cfg, const GenerateOptions& opt,
                             const Setup& s) {
  const int64_t nb = cfg.num_beams, B = s.B, L = s.L, V = s.V, rows = B * nb;
  const int64_t n_eos = static_cast<int64_t>(cfg.eos_token_id.size());
  const int64_t K = std::max<int64_t>(2, 1 + n_eos) * nb;
  const double lpd = cfg.length_penalty;
  constexpr float kBig = -1.0e9f;
  GenerationResult res;
  st.start(rows, s.max_len);
  res.stats.cache_bytes = st.cache_bytes();
  res.stats.cache_capacity = st.cache_capacity();

  PromptRows pr = prompt_rows(s, nb);
  TokenRows& run_seq = pr.seqs;
  TokenRows fin_seq(rows);
  std::vector<std::vector<int64_t>> run_bidx(rows), fin_bidx(rows);
  std::vector<float> run_scores(rows, 0.0f), fin_scores(rows, kBig);
  std::vector<char> is_fin(rows, 0), unsat(B, 1);
  const std::vector<int64_t>& pad_len = pr.pad_len;
  std::vector<int64_t>& mask = pr.mask;  // grows by one column per step
  for (int64_t r = 0; r < rows; ++r)
    if (r % nb) run_scores[r] = kBig;  // only the first beam of a prompt starts live
  fin_seq = run_seq;
  const LogitsProcessorList procs = build_logits_processors(cfg, L, pad_len, s.max_len);
  Generator gen(cfg.seed ? *cfg.seed : std::random_device{}());
  auto gen_part = [&](const std::vector<int64_t>& seq) {
    return std::vector<int64_t>(seq.begin() + L, seq.end());
  };

  NoGradGuard no_grad;
  auto t0 = Clock::now();
  Tensor logits = st.first(pr, L);
  res.stats.prefill_seconds = seconds_since(t0);
  res.stats.prompt_tokens = rows * L;
  auto t1 = Clock::now();
  int64_t cur_len = L;
  bool cancelled = false;
  std::vector<float> acc(cfg.sampling() ? nb * V : 0);  // sampling: the beams' summed scores
  while (true) {
    log_softmax_rows(logits);
    apply_processors(procs, run_seq, logits);
    const float* x = logits.data<float>();
    // Deterministic search: each running beam's own top K (score added), in parallel; a prompt's
    // top K candidates are among its beams' (merged below).
    std::vector<int64_t> row_idx;
    std::vector<float> row_val;
    std::vector<int64_t> row_n;
    if (!cfg.sampling()) {
      row_idx.resize(rows * K);
      row_val.resize(rows * K);
      row_n.resize(rows);
#pragma omp parallel for num_threads(num_threads()) schedule(static) if (rows * V >= 65536)
      for (int64_t r = 0; r < rows; ++r)
        row_n[r] = row_topk(x + r * V, V, run_scores[r], K, row_idx.data() + r * K,
                            row_val.data() + r * K);
    }
    TokenRows cand_seq(B * K);
    std::vector<std::vector<int64_t>> cand_bidx(B * K);
    std::vector<float> cand_lp(B * K);
    std::vector<char> hits(B * K, 0);
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> top;  // beam * V + token, best first
      std::vector<float> top_lp;  // their summed log-probabilities
      if (cfg.sampling()) {
        for (int64_t j = 0; j < nb; ++j) {
          const float* row = x + (b * nb + j) * V;
          const float add = run_scores[b * nb + j];
          for (int64_t v = 0; v < V; ++v) acc[j * V + v] = row[v] + add;
        }
        // K draws without replacement from softmax(acc), then sorted by score (descending).
        std::vector<float> w(acc);
        for (int64_t k = 0; k < K; ++k) {
          const int64_t i = sample_row(w.data(), nb * V, gen);
          top.push_back(i);
          w[i] = -std::numeric_limits<float>::infinity();
        }
        std::stable_sort(top.begin(), top.end(),
                         [&](int64_t a, int64_t c) { return acc[a] > acc[c]; });
        for (int64_t i : top) top_lp.push_back(acc[i]);
      } else {
        // topk_indices over the beams' lists (global index beam * V + token).
        std::vector<int64_t> gidx;
        std::vector<float> gval;
        for (int64_t j = 0; j < nb; ++j) {
          const int64_t r = b * nb + j;
          for (int64_t k = 0; k < row_n[r]; ++k) {
            gidx.push_back(j * V + row_idx[r * K + k]);
            gval.push_back(row_val[r * K + k]);
          }
        }
        std::vector<int64_t> order(gidx.size());
        std::iota(order.begin(), order.end(), 0);
        const int64_t k_top = std::min<int64_t>(K, static_cast<int64_t>(order.size()));
        std::partial_sort(order.begin(), order.begin() + k_top, order.end(),
                          [&](int64_t a, int64_t c) {
                            return ranks_before(gval[a], gidx[a], gval[c], gidx[c]);
                          });
        for (int64_t k = 0; k < k_top; ++k) {
          top.push_back(gidx[order[k]]);
          top_lp.push_back(gval[order[k]]);
        }
      }
      for (int64_t k = 0; k < K; ++k) {
        const int64_t beam = top[k] / V, tokid = top[k] % V, src = b * nb + beam, c = b * K + k;
        cand_lp[c] = top_lp[k];
        cand_seq[c] = run_seq[src];
        cand_seq[c].push_back(tokid);
        cand_bidx[c] = run_bidx[src];
        cand_bidx[c].push_back(src);
        bool h = cur_len + 1 >= s.max_len || contains(cfg.eos_token_id, tokid);
        if (!h && opt.tokenizer && !cfg.stop_strings.empty())
          h = hits_stop_string(*opt.tokenizer, gen_part(cand_seq[c]), cfg.stop_strings);
        hits[c] = h;
      }
    }
    // e. the next running beams: the best num_beams candidates that did not stop.
    for (int64_t b = 0; b < B; ++b) {
      std::vector<float> tmp(K);
      for (int64_t k = 0; k < K; ++k)
        tmp[k] = cand_lp[b * K + k] + (hits[b * K + k] ? kBig : -0.0f);
      const auto sel = topk_indices(tmp.data(), K, nb);
      for (int64_t j = 0; j < nb; ++j) {
        run_seq[b * nb + j] = cand_seq[b * K + sel[j]];
        run_scores[b * nb + j] = tmp[sel[j]];
        run_bidx[b * nb + j] = cand_bidx[b * K + sel[j]];
      }
    }
    // f. finished hypotheses: merge the top num_beams candidates that just stopped.
    const float denom = static_cast<float>(std::pow(static_cast<double>(cur_len + 1 - L), lpd));
    for (int64_t b = 0; b < B; ++b) {
      bool full = cfg.early_stopping == EarlyStopping::True;
      for (int64_t j = 0; j < nb && full; ++j) full = is_fin[b * nb + j];
      std::vector<float> merged(nb + K);
      std::vector<char> mfin(nb + K);
      for (int64_t j = 0; j < nb; ++j) {
        merged[j] = fin_scores[b * nb + j];
        mfin[j] = is_fin[b * nb + j];
      }
      for (int64_t k = 0; k < K; ++k) {
        const bool did = hits[b * K + k] && k < nb;
        float v = cand_lp[b * K + k] / denom;
        v = v + (full ? kBig : -0.0f);
        v = v + (!unsat[b] ? kBig : -0.0f);
        v = v + (!did ? kBig : -0.0f);
        merged[nb + k] = v;
        mfin[nb + k] = did;
      }
      const auto sel = topk_indices(merged.data(), nb + K, nb);
      TokenRows nseq(nb);
      std::vector<std::vector<int64_t>> nbidx(nb);
      std::vector<float> nsc(nb);
      std::vector<char> nfin(nb);
      for (int64_t j = 0; j < nb; ++j) {
        const int64_t m = sel[j];
        nseq[j] = m < nb ? fin_seq[b * nb + m] : cand_seq[b * K + (m - nb)];
        nbidx[j] = m < nb ? fin_bidx[b * nb + m] : cand_bidx[b * K + (m - nb)];
        nsc[j] = merged[m];
        nfin[j] = mfin[m];
      }
      for (int64_t j = 0; j < nb; ++j) {
        fin_seq[b * nb + j] = std::move(nseq[j]);
        fin_bidx[b * nb + j] = std::move(nbidx[j]);
        fin_scores[b * nb + j] = nsc[j];
        is_fin[b * nb + j] = nfin[j];
      }
    }
    ++cur_len;
    // The early-stop heuristic: can the best running beam still beat the worst finished one?
    const int64_t best_len =
        (cfg.early_stopping == EarlyStopping::Never && lpd > 0.0) ? s.max_len - L : cur_len - L;
    const float best_den = static_cast<float>(std::pow(static_cast<double>(best_len), lpd));
    for (int64_t b = 0; b < B; ++b) {
      const float best = run_scores[b * nb] / best_den;
      float worst_all = fin_scores[b * nb];
      for (int64_t j = 1; j < nb; ++j) worst_all = std::min(worst_all, fin_scores[b * nb + j]);
      bool any = false;
      for (int64_t j = 0; j < nb; ++j) any = any || best > (is_fin[b * nb + j] ? worst_all : kBig);
      unsat[b] = unsat[b] && any;
    }
    const bool improvement = std::any_of(unsat.begin(), unsat.end(), [](char u) { return u != 0; });
    const bool all_fin = std::all_of(is_fin.begin(), is_fin.end(), [](char f) { return f != 0; });
    const bool open = !(all_fin && cfg.early_stopping == EarlyStopping::True);
    const bool valid = !std::all_of(hits.begin(), hits.end(), [](char h) { return h != 0; });
    if (!(improvement && open && valid)) break;
    if (opt.cancel && opt.cancel->load()) {
      cancelled = true;
      break;
    }
    // Pluck the cache rows of the beams that continue, then feed their last tokens.
    std::vector<int64_t> reorder(rows), next(rows);
    for (int64_t r = 0; r < rows; ++r) {
      reorder[r] = run_bidx[r].back();
      next[r] = run_seq[r].back();
    }
    st.reorder(reorder);
    if (s.padded) {
      std::vector<int64_t> m2;
      m2.reserve(rows * cur_len);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < cur_len; ++i) m2.push_back(i < pad_len[r] ? 0 : 1);
      mask.swap(m2);
    }
    logits = st.step(next, mask, cur_len);
    ++res.stats.decode_steps;
    res.stats.decode_tokens += rows;
  }
  res.stats.decode_seconds = seconds_since(t1);
  for (int64_t b = 0; b < B; ++b) {
    // With a cancel before num_return_sequences hypotheses finished, the best running beams
    // fill the rest.
    std::vector<std::pair<const std::vector<int64_t>*, std::optional<float>>> picked;
    for (int64_t j = 0; j < nb; ++j)
      if (is_fin[b * nb + j]) picked.push_back({&fin_seq[b * nb + j], fin_scores[b * nb + j]});
    for (int64_t j = 0; j < nb && static_cast<int64_t>(picked.size()) < cfg.num_return_sequences;
         ++j)
      picked.push_back({&run_seq[b * nb + j], std::nullopt});
    for (int64_t j = 0; j < cfg.num_return_sequences && j < static_cast<int64_t>(picked.size());
         ++j) {
      GeneratedSequence g;
      g.prompt_index = b;
      g.prompt_ids = s.prompts[b];
      g.output_ids = gen_part(*picked[j].first);
      if (picked[j].second) g.score = *picked[j].second;
      if (!picked[j].second && cancelled)
        g.finish_reason = "cancelled";
      else if (!g.output_ids.empty() && contains(cfg.eos_token_id, g.output_ids.back()))
        g.finish_reason = "eos";
      else if (opt.tokenizer && hits_stop_string(*opt.tokenizer, g.output_ids, cfg.stop_strings))
        g.finish_reason = "stop";
      else
        g.finish_reason = "length";
      finish_sequence(g, opt);
      res.stats.generated_tokens += static_cast<int64_t>(g.output_ids.size());
      res.sequences.push_back(std::move(g));
    }
  }
  return res;
}

GenerationConfig checked_config(const GenerationConfig& cfg_in) {
  cfg_in.validate();
  GenerationConfig cfg = cfg_in;
  if (cfg.temperature == 0.0) cfg.do_sample = false;  // lmforge: temperature 0 means greedy
  return cfg;
}

}  // namespace detail

GenerationResult generate(const models::DecoderModel& model,
                          const std::vector<std::vector<int64_t>>& prompts,
                          const GenerationConfig& cfg_in, const GenerateOptions& opt) {
  const GenerationConfig cfg = detail::checked_config(cfg_in);
  const Setup s = prepare(model, prompts, cfg, opt);
  DecoderSteps steps(model, opt.prefill_chunk);
  return cfg.num_beams > 1 ? detail::beam_search(steps, cfg, opt, s)
                           : detail::sample_search(steps, cfg, opt, s);
}

// ---- TextStreamDecoder ----

TextStreamDecoder::TextStreamDecoder(const tok::Tokenizer& tokenizer, bool skip_special_tokens)
    : tok_(&tokenizer), skip_special_(skip_special_tokens) {}

std::string TextStreamDecoder::put(int64_t id) {
  ids_.push_back(static_cast<uint32_t>(id));
  return ready(false);
}

std::string TextStreamDecoder::flush() {
  return ready(true);
}

std::string TextStreamDecoder::ready(bool final) {
  const std::string text = tok_->decode(ids_, skip_special_);
  // What was returned must stay a prefix of the text; when decode's clean-up rewrote it (not
  // expected with the held-back tail), nothing more can be said until it is a prefix again.
  if (text.compare(0, emitted_.size(), emitted_) != 0) return "";
  size_t end = text.size();
  if (!final) {
    // Hold back an incomplete character (decoded as U+FFFD at the end) ...
    static const std::string kRepl = "\xEF\xBF\xBD";
    while (end >= kRepl.size() && text.compare(end - kRepl.size(), kRepl.size(), kRepl) == 0)
      end -= kRepl.size();
    // ... and a space that decode's clean-up could still remove: one whose tail is a proper
    // prefix of a clean-up pattern (" ." " n't" ...; all start with a space, at most 4 bytes).
    static const char* const kPatterns[] = {" .",   " ?",  " !",  " ,",   " ' ",
                                            " n't", " 'm", " 's", " 've", " 're"};
    const size_t from = end > 4 ? end - 4 : 0;
    for (size_t sp = from; sp < end; ++sp) {
      if (text[sp] != ' ') continue;
      const std::string_view tail(text.data() + sp, end - sp);
      bool held = false;
      for (const char* p : kPatterns) {
        const std::string_view pat(p);
        held = held || (tail.size() < pat.size() && pat.substr(0, tail.size()) == tail);
      }
      if (held) {
        end = sp;
        break;
      }
    }
  }
  if (end <= emitted_.size()) return "";
  std::string piece = text.substr(emitted_.size(), end - emitted_.size());
  emitted_ += piece;
  return piece;
}

}  // namespace lmf::tasks
