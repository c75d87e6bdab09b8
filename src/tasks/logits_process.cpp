// transformers' logits processors (generation/logits_process.py) on f32 [rows, vocab] scores:
// the same arithmetic in float, -inf as the filter value, and the order generate builds them in.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "lmforge/core/error.h"
#include "lmforge/core/runtime.h"
#include "lmforge/tasks/generate.h"

namespace lmf::tasks {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Rows {
  float* p;
  int64_t rows, vocab;
  float* row(int64_t r) const { return p + r * vocab; }
};

Rows rows_of(Tensor& scores, size_t nids, const char* who) {
  LMF_CHECK(scores.dim() == 2 && scores.dtype() == DType::f32, ShapeError,
            "{}: scores must be f32 [rows, vocab], got {}", who, scores.describe());
  if (!scores.is_contiguous()) scores = scores.contiguous();
  LMF_CHECK(static_cast<size_t>(scores.size(0)) == nids, ShapeError,
            "{}: {} rows of scores for {} rows of input ids", who, scores.size(0), nids);
  return {scores.data<float>(), scores.size(0), scores.size(1)};
}

// torch.softmax over one row in float (max-subtracted exponentials over their sum).
void softmax_row(const float* x, int64_t n, std::vector<float>& out) {
  out.resize(n);
  float mx = kNegInf;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = std::exp(x[i] - mx);
    sum += out[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) out[i] *= inv;
}

class RepetitionPenalty : public LogitsProcessor {
 public:
  RepetitionPenalty(double penalty, std::vector<int64_t> ignore)
      : penalty_(static_cast<float>(penalty)), ignore_(std::move(ignore)) {
    LMF_CHECK(penalty > 0.0, ValueError, "`penalty` has to be a strictly positive float, but is {}",
              penalty);
  }
  std::string name() const override { return "RepetitionPenaltyLogitsProcessor"; }
  void apply(const TokenRows& ids, Tensor& scores) const override {
    Rows s = rows_of(scores, ids.size(), "RepetitionPenaltyLogitsProcessor");
    LMF_CHECK(ignore_.empty() || ignore_.size() == ids.size(), ValueError,
              "Incompatible `prompt_ignore_length` batch size");
    std::vector<char> seen(s.vocab);
    for (int64_t r = 0; r < s.rows; ++r) {
      std::fill(seen.begin(), seen.end(), 0);
      const size_t from =
          ignore_.empty() ? 0 : static_cast<size_t>(std::max<int64_t>(0, ignore_[r]));
      for (size_t i = from; i < ids[r].size(); ++i) {
        const int64_t t = ids[r][i];
        if (t >= 0 && t < s.vocab) seen[t] = 1;  // ids past the output vocab cannot be generated
      }
      float* x = s.row(r);
      for (int64_t v = 0; v < s.vocab; ++v)
        if (seen[v]) x[v] = x[v] < 0 ? x[v] * penalty_ : x[v] / penalty_;
    }
  }

 private:
  float penalty_;
  std::vector<int64_t> ignore_;
};

class NoRepeatNGram : public LogitsProcessor {
 public:
  explicit NoRepeatNGram(int64_t n) : n_(n) {
    LMF_CHECK(n > 0, ValueError, "`ngram_size` has to be a strictly positive integer, but is {}",
              n);
  }
  std::string name() const override { return "NoRepeatNGramLogitsProcessor"; }
  void apply(const TokenRows& ids, Tensor& scores) const override {
    Rows s = rows_of(scores, ids.size(), "NoRepeatNGramLogitsProcessor");
    for (int64_t r = 0; r < s.rows; ++r) {
      const auto& t = ids[r];
      const int64_t len = static_cast<int64_t>(t.size());
      if (len < n_) continue;
      // Each window of n whose first n-1 tokens equal the last n-1 tokens bans its last token.
      const int64_t pre = len + 1 - n_;
      float* x = s.row(r);
      for (int64_t w = 0; w + n_ <= len; ++w) {
        bool match = true;
        for (int64_t k = 0; k < n_ - 1 && match; ++k) match = t[w + k] == t[pre + k];
        const int64_t banned = t[w + n_ - 1];
        if (match && banned >= 0 && banned < s.vocab) x[banned] = kNegInf;
      }
    }
  }

 private:
  int64_t n_;
};

class BanEos : public LogitsProcessor {
 public:
  BanEos(std::string name, int64_t skip, int64_t min_len, std::vector<int64_t> eos)
      : name_(std::move(name)), skip_(skip), min_(min_len), eos_(std::move(eos)) {}
  std::string name() const override { return name_; }
  void apply(const TokenRows& ids, Tensor& scores) const override {
    Rows s = rows_of(scores, ids.size(), name_.c_str());
    for (int64_t r = 0; r < s.rows; ++r) {
      if (static_cast<int64_t>(ids[r].size()) - skip_ >= min_) continue;
      for (int64_t e : eos_)
        if (e >= 0 && e < s.vocab) s.row(r)[e] = kNegInf;
    }
  }

 private:
  std::string name_;
  int64_t skip_, min_;
  std::vector<int64_t> eos_;
};

// NoBadWordsLogitsProcessor (a SequenceBias of -inf): the last token of a banned sequence gets
// -inf in each row whose ids end with the sequence's other tokens.
class NoBadWords : public LogitsProcessor {
 public:
  NoBadWords(std::vector<std::vector<int64_t>> words, const std::vector<int64_t>& eos) {
    LMF_CHECK(!words.empty(), ValueError, "`bad_words_ids` has to be a non-empty list");
    for (auto& w : words) {
      LMF_CHECK(!w.empty(), ValueError, "`bad_words_ids` holds an empty sequence");
      for (int64_t t : w)
        LMF_CHECK(t >= 0, ValueError,
                  "Each list in `bad_words_ids` has to be a list of positive integers, got {}", t);
      const bool eos_only = w.size() == 1 && std::find(eos.begin(), eos.end(), w[0]) != eos.end();
      if (!eos_only) words_.push_back(std::move(w));
    }
  }
  std::string name() const override { return "NoBadWordsLogitsProcessor"; }
  void apply(const TokenRows& ids, Tensor& scores) const override {
    Rows s = rows_of(scores, ids.size(), "NoBadWordsLogitsProcessor");
    for (const auto& w : words_)
      for (int64_t t : w)
        LMF_CHECK(t < s.vocab, ValueError,
                  "bad_words_ids: token id {} is outside the vocabulary [0, {})", t, s.vocab);
    for (int64_t r = 0; r < s.rows; ++r) {
      const auto& row = ids[r];
      for (const auto& w : words_) {
        const size_t pre = w.size() - 1;
        if (row.size() < pre || !std::equal(w.begin(), w.end() - 1, row.end() - pre)) continue;
        s.row(r)[w.back()] = kNegInf;
      }
    }
  }

 private:
  std::vector<std::vector<int64_t>> words_;
};

// ForcedBOS / ForcedEOS: at one row length, every score -inf but 0 at the forced ids.
class ForceAt : public LogitsProcessor {
 public:
  ForceAt(std::string name, int64_t at_len, std::vector<int64_t> tokens)
      : name_(std::move(name)), at_(at_len), tokens_(std::move(tokens)) {
    for (int64_t t : tokens_)
      LMF_CHECK(t >= 0, ValueError, "{}: token id {} must be >= 0", name_, t);
  }
  std::string name() const override { return name_; }
  void apply(const TokenRows& ids, Tensor& scores) const override {
    Rows s = rows_of(scores, ids.size(), name_.c_str());
    for (int64_t t : tokens_)
      LMF_CHECK(t < s.vocab, ValueError, "{}: token id {} is outside the vocabulary [0, {})", name_,
                t, s.vocab);
    // transformers looks at input_ids.shape[-1]: every row has the same length.
    if (ids.empty() || static_cast<int64_t>(ids[0].size()) != at_) return;
    for (int64_t r = 0; r < s.rows; ++r) {
      std::fill(s.row(r), s.row(r) + s.vocab, kNegInf);
      for (int64_t t : tokens_) s.row(r)[t] = 0.0f;
    }
  }

 private:
  std::string name_;
  int64_t at_;
  std::vector<int64_t> tokens_;
};

class Temperature : public LogitsProcessor {
 public:
  explicit Temperature(double t) : t_(static_cast<float>(t)) {
    LMF_CHECK(t > 0.0, ValueError,
              "`temperature` (={}) has to be a strictly positive float, otherwise your next token "
              "scores will be invalid.{}",
              t, t == 0.0 ? " For greedy decoding use temperature 0 without sampling." : "");
  }
  std::string name() const override { return "TemperatureLogitsWarper"; }
  void apply(const TokenRows& ids, Tensor& scores) const override {
    Rows s = rows_of(scores, ids.size(), "TemperatureLogitsWarper");
    for (int64_t i = 0; i < s.rows * s.vocab; ++i) s.p[i] = s.p[i] / t_;
  }

 private:
  float t_;
};

class TopK : public LogitsProcessor {
 public:
  TopK(int64_t k, int64_t keep) : k_(std::max(k, keep)) {
    LMF_CHECK(k > 0, ValueError, "`top_k` has to be a strictly positive integer, but is {}", k);
  }
  std::string name() const override { return "TopKLogitsWarper"; }
  void apply(const TokenRows& ids, Tensor& scores) const override {
    Rows s = rows_of(scores, ids.size(), "TopKLogitsWarper");
    const int64_t k = std::min(k_, s.vocab);
    std::vector<float> tmp;
    for (int64_t r = 0; r < s.rows; ++r) {
      float* x = s.row(r);
      tmp.assign(x, x + s.vocab);
      std::nth_element(tmp.begin(), tmp.begin() + (k - 1), tmp.end(), std::greater<float>());
      const float kth = tmp[k - 1];
      for (int64_t v = 0; v < s.vocab; ++v)
        if (x[v] < kth) x[v] = kNegInf;
    }
  }

 private:
  int64_t k_;
};

class TopP : public LogitsProcessor {
 public:
  TopP(double p, int64_t keep) : p_(p), keep_(keep) {
    LMF_CHECK(p >= 0.0 && p <= 1.0, ValueError, "`top_p` has to be a float > 0 and < 1, but is {}",
              p);
    LMF_CHECK(keep >= 1, ValueError, "`min_tokens_to_keep` has to be a positive integer, but is {}",
              keep);
  }
  std::string name() const override { return "TopPLogitsWarper"; }
  void apply(const TokenRows& ids, Tensor& scores) const override {
    Rows s = rows_of(scores, ids.size(), "TopPLogitsWarper");
    std::vector<int64_t> order;
    std::vector<float> sorted, probs;
    // torch computes `1 - self.top_p` in double and compares float32 cumsums against it as float.
    const float threshold = static_cast<float>(1.0 - p_);
    for (int64_t r = 0; r < s.rows; ++r) {
      float* x = s.row(r);
      // Tokens already at -inf (e.g. after top-k) sort first with probability 0: they add
      // nothing to the cumulative sums, so only the finite ones need sorting (unless fewer
      // than min_tokens_to_keep are finite, where the kept tail reaches into them).
      order.clear();
      for (int64_t v = 0; v < s.vocab; ++v)
        if (x[v] != kNegInf) order.push_back(v);
      if (static_cast<int64_t>(order.size()) < keep_) {
        order.resize(s.vocab);
        std::iota(order.begin(), order.end(), 0);
      }
      const int64_t n = static_cast<int64_t>(order.size());
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return x[a] < x[b]; });
      sorted.resize(n);
      for (int64_t i = 0; i < n; ++i) sorted[i] = x[order[i]];
      softmax_row(sorted.data(), n, probs);
      // Ascending order: drop the low tail whose cumulative probability stays <= 1 - top_p
      // (torch's CPU cumsum accumulates float in double), keep the last min_tokens_to_keep.
      double acc = 0;
      for (int64_t i = 0; i < n - keep_; ++i) {
        acc += probs[i];
        if (static_cast<float>(acc) <= threshold) x[order[i]] = kNegInf;
      }
    }
  }

 private:
  double p_;
  int64_t keep_;
};

class MinP : public LogitsProcessor {
 public:
  MinP(double p, int64_t keep) : p_(p), keep_(keep) {
    LMF_CHECK(p >= 0.0 && p <= 1.0, ValueError,
              "`min_p` has to be a float in the [0, 1] interval, but is {}", p);
    LMF_CHECK(keep >= 1, ValueError, "`min_tokens_to_keep` has to be a positive integer, but is {}",
              keep);
  }
  std::string name() const override { return "MinPLogitsWarper"; }
  void apply(const TokenRows& ids, Tensor& scores) const override {
    Rows s = rows_of(scores, ids.size(), "MinPLogitsWarper");
    std::vector<float> probs;
    std::vector<int64_t> order(s.vocab);
    const int64_t k = std::min(keep_, s.vocab);
    for (int64_t r = 0; r < s.rows; ++r) {
      float* x = s.row(r);
      softmax_row(x, s.vocab, probs);
      const float top = *std::max_element(probs.begin(), probs.end());
      const float scaled = static_cast<float>(static_cast<float>(p_) * top);
      // The k most probable tokens always stay.
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
        return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
      });
      std::vector<char> keep(s.vocab, 0);
      for (int64_t i = 0; i < k; ++i) keep[order[i]] = 1;
      for (int64_t v = 0; v < s.vocab; ++v)
        if (!keep[v] && probs[v] < scaled) x[v] = kNegInf;
    }
  }

 private:
  double p_;
  int64_t keep_;
};

}  // namespace

void apply_processors(const LogitsProcessorList& list, const TokenRows& ids, Tensor& scores) {
  for (const auto& p : list) p->apply(ids, scores);
}

std::unique_ptr<LogitsProcessor> make_repetition_penalty(double penalty,
                                                         std::vector<int64_t> ignore) {
  return std::make_unique<RepetitionPenalty>(penalty, std::move(ignore));
}
std::unique_ptr<LogitsProcessor> make_no_repeat_ngram(int64_t n) {
  return std::make_unique<NoRepeatNGram>(n);
}
std::unique_ptr<LogitsProcessor> make_min_length(int64_t min_length, std::vector<int64_t> eos) {
  LMF_CHECK(min_length >= 0, ValueError, "`min_length` has to be a non-negative integer, but is {}",
            min_length);
  return std::make_unique<BanEos>("MinLengthLogitsProcessor", 0, min_length, std::move(eos));
}
std::unique_ptr<LogitsProcessor> make_min_new_tokens(int64_t skip, int64_t min_new,
                                                     std::vector<int64_t> eos) {
  LMF_CHECK(skip >= 0, ValueError,
            "`prompt_length_to_skip` has to be a positive integer, but is {}", skip);
  LMF_CHECK(min_new >= 0, ValueError, "`min_new_tokens` has to be a positive integer, but is {}",
            min_new);
  return std::make_unique<BanEos>("MinNewTokensLengthLogitsProcessor", skip, min_new,
                                  std::move(eos));
}
std::unique_ptr<LogitsProcessor> make_no_bad_words(std::vector<std::vector<int64_t>> words,
                                                   const std::vector<int64_t>& eos) {
  return std::make_unique<NoBadWords>(std::move(words), eos);
}
std::unique_ptr<LogitsProcessor> make_forced_bos(int64_t token) {
  return std::make_unique<ForceAt>("ForcedBOSTokenLogitsProcessor", 1, std::vector<int64_t>{token});
}
std::unique_ptr<LogitsProcessor> make_forced_eos(int64_t max_length, std::vector<int64_t> eos) {
  return std::make_unique<ForceAt>("ForcedEOSTokenLogitsProcessor", max_length - 1, std::move(eos));
}
std::unique_ptr<LogitsProcessor> make_logit_normalization() {
  struct LogitNormalization : LogitsProcessor {
    std::string name() const override { return "LogitNormalization"; }
    void apply(const TokenRows& ids, Tensor& scores) const override {
      rows_of(scores, ids.size(), "LogitNormalization");
      log_softmax_rows(scores);
    }
  };
  return std::make_unique<LogitNormalization>();
}
std::unique_ptr<LogitsProcessor> make_temperature(double t) {
  return std::make_unique<Temperature>(t);
}
std::unique_ptr<LogitsProcessor> make_top_k(int64_t k, int64_t keep) {
  return std::make_unique<TopK>(k, keep);
}
std::unique_ptr<LogitsProcessor> make_top_p(double p, int64_t keep) {
  return std::make_unique<TopP>(p, keep);
}
std::unique_ptr<LogitsProcessor> make_min_p(double p, int64_t keep) {
  return std::make_unique<MinP>(p, keep);
}

LogitsProcessorList build_logits_processors(const GenerationConfig& cfg, int64_t input_len,
                                            const std::vector<int64_t>& padding_lengths,
                                            int64_t max_length) {
  LogitsProcessorList list;
  if (cfg.repetition_penalty != 1.0)
    list.push_back(make_repetition_penalty(cfg.repetition_penalty, padding_lengths));
  if (cfg.no_repeat_ngram_size > 0) list.push_back(make_no_repeat_ngram(cfg.no_repeat_ngram_size));
  if (!cfg.bad_words_ids.empty())
    list.push_back(make_no_bad_words(cfg.bad_words_ids, cfg.eos_token_id));
  // min_new_tokens overrides min_length with prompt + min_new_tokens, as generate does.
  const int64_t min_length = cfg.min_new_tokens ? input_len + *cfg.min_new_tokens : cfg.min_length;
  if (!cfg.eos_token_id.empty() && min_length > 0)
    list.push_back(make_min_length(min_length, cfg.eos_token_id));
  if (!cfg.eos_token_id.empty() && cfg.min_new_tokens && *cfg.min_new_tokens > 0)
    list.push_back(make_min_new_tokens(input_len, *cfg.min_new_tokens, cfg.eos_token_id));
  if (cfg.forced_bos_token_id) list.push_back(make_forced_bos(*cfg.forced_bos_token_id));
  if (!cfg.forced_eos_token_id.empty() && max_length > 0)
    list.push_back(make_forced_eos(max_length, cfg.forced_eos_token_id));
  if (cfg.sampling()) {
    // Beam sampling keeps one non-eos token more than there are eos ids.
    const int64_t keep =
        cfg.num_beams > 1
            ? (cfg.eos_token_id.empty() ? 2 : static_cast<int64_t>(cfg.eos_token_id.size()) + 1)
            : 1;
    if (cfg.temperature != 1.0) list.push_back(make_temperature(cfg.temperature));
    if (cfg.top_k != 0) list.push_back(make_top_k(cfg.top_k, keep));
    if (cfg.top_p < 1.0) list.push_back(make_top_p(cfg.top_p, keep));
    if (cfg.min_p) list.push_back(make_min_p(*cfg.min_p, keep));
  }
  if (cfg.renormalize_logits) list.push_back(make_logit_normalization());
  return list;
}

void log_softmax_rows(Tensor& scores) {
  LMF_CHECK(scores.dim() == 2 && scores.dtype() == DType::f32, ShapeError,
            "log_softmax_rows: scores must be f32 [rows, vocab], got {}", scores.describe());
  // The vectorised, row-parallel softmax kernel (as torch's log_softmax over the last dim):
  // beam search runs it over batch x beams rows of the vocabulary every step.
  scores = log_softmax(scores, -1);
}

}  // namespace lmf::tasks
