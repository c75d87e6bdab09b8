// BLEU and chrF as sacrebleu 2.x (metrics/bleu.py, metrics/chrf.py, tokenizers/tokenizer_13a.py):
// the same tokenization, n-gram statistics per segment, best-reference choice and smoothing, so
// scores agree to rounding. Text is handled as Unicode code points, as Python's str is.
#include "lmforge/tasks/bleu.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::tasks {

namespace {

using Counts = std::unordered_map<std::u32string, int64_t>;
using OrderCounts = std::vector<Counts>;  // [n - 1]: the n-grams of order n

// Python's str.isspace(): Unicode White_Space plus the ASCII separators U+001C..U+001F.
bool py_isspace(char32_t c) {
  return tok::is_whitespace(c) || (c >= 0x1C && c <= 0x1F);
}

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out.push_back(tok::next_char(s, i));
  return out;
}

// Python's str.split() with no argument.
std::vector<std::u32string> py_split(const std::u32string& s) {
  std::vector<std::u32string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && py_isspace(s[i])) ++i;
    const size_t start = i;
    while (i < s.size() && !py_isspace(s[i])) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// Python's str.replace(from, to): one left-to-right pass over non-overlapping occurrences.
void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size())
    out.append(s, pos, hit - pos).append(to);
  if (pos == 0) return;
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_period_comma(char c) {
  return c == '.' || c == ',';
}
// 13a's first class [\{-\~\[-\` -\&\(-\+\:-\@\/]: ASCII symbols and space, not ' , - .
bool is_13a_symbol(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 0x7B && u <= 0x7E) || (u >= 0x5B && u <= 0x60) || (u >= 0x20 && u <= 0x26) ||
         (u >= 0x28 && u <= 0x2B) || (u >= 0x3A && u <= 0x40) || u == '/';
}

// re.sub of a two-character pattern (first, second) over `s`: matches are found left to right
// and never overlap; `emit` writes the replacement of a match.
template <class First, class Second, class Emit>
std::string sub_pairs(const std::string& s, First first, Second second, Emit emit) {
  std::string out;
  out.reserve(s.size() + s.size() / 2);
  for (size_t i = 0; i < s.size();) {
    if (i + 1 < s.size() && first(s[i]) && second(s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

// mteval-v13a on valid UTF-8. Every pattern is ASCII and a multi-byte character never holds an
// ASCII byte, so running the regexes on bytes matches Python running them on code points.
std::string tokenize_13a_raw(std::string_view line) {
  std::string s(line);
  replace_all(s, "<skipped>", "");
  replace_all(s, "-\n", "");
  replace_all(s, "\n", " ");
  if (s.find('&') != std::string::npos) {
    replace_all(s, "&quot;", "\"");
    replace_all(s, "&amp;", "&");
    replace_all(s, "&lt;", "<");
    replace_all(s, "&gt;", ">");
  }
  std::string spaced = " ";
  for (char c : s) {
    if (is_13a_symbol(c))
      spaced.append({' ', c, ' '});
    else
      spaced.push_back(c);
  }
  spaced.push_back(' ');
  auto not_digit = [](char c) { return !is_digit(c); };
  // Period and comma unless preceded by a digit, then unless followed by one.
  spaced = sub_pairs(spaced, not_digit, is_period_comma, [](std::string& o, char a, char b) {
    o.append({a, ' ', b, ' '});
  });
  spaced = sub_pairs(spaced, is_period_comma, not_digit, [](std::string& o, char a, char b) {
    o.append({' ', a, ' ', b});
  });
  // A dash preceded by a digit.
  return sub_pairs(
      spaced, is_digit, [](char c) { return c == '-'; },
      [](std::string& o, char a, char b) {
        o.append({a, ' ', b, ' '});
      });
}

std::u32string py_rstrip(std::u32string s) {
  while (!s.empty() && py_isspace(s.back())) s.pop_back();
  return s;
}

std::string encode(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) tok::append_utf8(out, c);
  return out;
}

std::vector<std::u32string> bleu_tokens(const std::string& text, const BleuOptions& o) {
  const std::u32string stripped = py_rstrip(decode(text));
  if (o.tokenize == "none") return py_split(stripped);
  return py_split(decode(tokenize_13a_raw(encode(stripped))));
}

// Word n-grams of orders 1..max_order keyed by the words joined with a space (words hold no
// whitespace, so keys of different n-grams differ).
OrderCounts word_ngrams(const std::vector<std::u32string>& words, int max_order) {
  OrderCounts out(max_order);
  for (int n = 1; n <= max_order; ++n) {
    for (size_t i = 0; i + n <= words.size(); ++i) {
      std::u32string key = words[i];
      for (int k = 1; k < n; ++k) key.append(1, U' ').append(words[i + k]);
      ++out[n - 1][key];
    }
  }
  return out;
}

size_t closest_ref_len(size_t hyp_len, const std::vector<size_t>& ref_lens) {
  size_t best_diff = 0, best_len = 0;
  bool first = true;
  for (size_t len : ref_lens) {
    const size_t diff = len > hyp_len ? len - hyp_len : hyp_len - len;
    if (first || diff < best_diff || (diff == best_diff && len < best_len)) {
      best_diff = diff;
      best_len = len;
      first = false;
    }
  }
  return best_len;
}

void check_inputs(const std::vector<std::string>& hyps, const RefStreams& refs) {
  LMF_CHECK(!hyps.empty(), ValueError, "no hypotheses: BLEU and chrF need at least one line");
  LMF_CHECK(!refs.empty(), ValueError,
            "no references: give at least one reference stream (one reference per hypothesis)");
  for (size_t k = 0; k < refs.size(); ++k)
    LMF_CHECK(refs[k].size() == hyps.size(), ValueError,
              "reference stream {} has {} lines but there are {} hypotheses; the streams must be "
              "line-aligned",
              k + 1, refs[k].size(), hyps.size());
  for (size_t i = 0; i < hyps.size(); ++i)
    LMF_CHECK(tok::is_valid_utf8(hyps[i]), ValueError,
              "hypothesis line {} is not valid UTF-8; convert the input to UTF-8", i + 1);
  for (size_t k = 0; k < refs.size(); ++k)
    for (size_t i = 0; i < refs[k].size(); ++i)
      LMF_CHECK(tok::is_valid_utf8(refs[k][i]), ValueError,
                "reference stream {} line {} is not valid UTF-8; convert the input to UTF-8", k + 1,
                i + 1);
}

// sacrebleu's my_log: log floored at -9999999999 for 0.
double floored_log(double x) {
  return x == 0.0 ? -9999999999.0 : std::log(x);
}

BleuScore compute_bleu(std::vector<int64_t> correct, std::vector<int64_t> total, int64_t sys_len,
                       int64_t ref_len, const BleuOptions& o) {
  const int order = o.max_ngram_order;
  BleuScore s;
  s.counts = correct;
  s.totals = total;
  s.sys_len = sys_len;
  s.ref_len = ref_len;
  s.ratio = ref_len ? static_cast<double>(sys_len) / static_cast<double>(ref_len) : 0.0;
  s.bp = 1.0;
  if (sys_len < ref_len)
    s.bp = sys_len > 0 ? std::exp(1.0 - static_cast<double>(ref_len) / static_cast<double>(sys_len))
                       : 0.0;
  s.precisions.assign(order, 0.0);
  if (std::all_of(correct.begin(), correct.end(), [](int64_t c) { return c == 0; })) return s;

  double smooth_value = o.smooth_value.value_or(o.smooth == BleuSmooth::kAddK ? 1.0 : 0.1);
  double smooth_mteval = 1.0;
  int eff_order = order;
  for (int n = 1; n <= order; ++n) {
    double c = static_cast<double>(correct[n - 1]), t = static_cast<double>(total[n - 1]);
    if (o.smooth == BleuSmooth::kAddK && n > 1) {
      c += smooth_value;
      t += smooth_value;
    }
    if (t == 0) break;
    if (o.effective_order) eff_order = n;
    double& p = s.precisions[n - 1];
    if (c == 0) {
      if (o.smooth == BleuSmooth::kExp) {
        smooth_mteval *= 2;
        p = 100.0 / (smooth_mteval * t);
      } else if (o.smooth == BleuSmooth::kFloor) {
        p = 100.0 * smooth_value / t;
      }
    } else {
      p = 100.0 * c / t;
    }
  }
  double log_sum = 0.0;
  for (int n = 0; n < eff_order; ++n) log_sum += floored_log(s.precisions[n]);
  s.score = s.bp * std::exp(log_sum / eff_order);
  return s;
}

// sacrebleu's _remove_punctuation: one ASCII punctuation mark split off the end of a word, or
// else off its start.
std::vector<std::u32string> chrf_words(const std::u32string& text) {
  static const std::u32string kPuncts = U"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  auto is_punct = [](char32_t c) { return kPuncts.find(c) != std::u32string::npos; };
  std::vector<std::u32string> out;
  for (auto& w : py_split(text)) {
    if (w.size() == 1) {
      out.push_back(w);
    } else if (is_punct(w.back())) {
      out.push_back(w.substr(0, w.size() - 1));
      out.push_back(w.substr(w.size() - 1));
    } else if (is_punct(w.front())) {
      out.push_back(w.substr(0, 1));
      out.push_back(w.substr(1));
    } else {
      out.push_back(w);
    }
  }
  return out;
}

// chrF's n-grams: characters (whitespace removed unless kept), then words for chrF++.
OrderCounts chrf_ngrams(const std::string& text, const ChrfOptions& o) {
  const std::u32string u = decode(text);
  std::u32string chars;
  if (o.whitespace) {
    chars = u;
  } else {
    for (char32_t c : u)
      if (!py_isspace(c)) chars.push_back(c);
  }
  OrderCounts out(o.char_order);
  for (int n = 1; n <= o.char_order; ++n)
    for (size_t i = 0; i + n <= chars.size(); ++i) ++out[n - 1][chars.substr(i, n)];
  if (o.word_order > 0) {
    OrderCounts words = word_ngrams(chrf_words(u), o.word_order);
    for (auto& c : words) out.push_back(std::move(c));
  }
  return out;
}

double chrf_f_score(const std::vector<int64_t>& stats, const ChrfOptions& o) {
  constexpr double kEps = 1e-16;
  const double factor = static_cast<double>(o.beta) * o.beta;
  const int order = o.char_order + o.word_order;
  double score = 0.0, avg_prec = 0.0, avg_rec = 0.0;
  int effective_order = 0;
  for (int i = 0; i < order; ++i) {
    const int64_t n_hyp = stats[3 * i], n_ref = stats[3 * i + 1], n_match = stats[3 * i + 2];
    const double prec = n_hyp > 0 ? static_cast<double>(n_match) / n_hyp : kEps;
    const double rec = n_ref > 0 ? static_cast<double>(n_match) / n_ref : kEps;
    const double denom = factor * prec + rec;
    score += denom > 0 ? (1 + factor) * prec * rec / denom : kEps;
    if (n_hyp > 0 && n_ref > 0) {
      avg_prec += prec;
      avg_rec += rec;
      ++effective_order;
    }
  }
  if (o.eps_smoothing) return 100 * score / order;
  if (effective_order == 0) return 0.0;
  avg_prec /= effective_order;
  avg_rec /= effective_order;
  if (avg_prec + avg_rec == 0) return 0.0;
  return 100 * ((1 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec));
}

}  // namespace

std::string tokenize_13a(std::string_view line) {
  LMF_CHECK(tok::is_valid_utf8(line), ValueError,
            "tokenize_13a: the text is not valid UTF-8; convert it to UTF-8");
  std::string out;
  for (const auto& w : py_split(decode(tokenize_13a_raw(line)))) {
    if (!out.empty()) out.push_back(' ');
    out += encode(w);
  }
  return out;
}

BleuScore corpus_bleu(const std::vector<std::string>& hyps, const RefStreams& refs,
                      const BleuOptions& o) {
  check_inputs(hyps, refs);
  LMF_CHECK(o.max_ngram_order >= 1, ValueError, "BLEU max_ngram_order must be >= 1, got {}",
            o.max_ngram_order);
  LMF_CHECK(o.tokenize == "13a" || o.tokenize == "none", ValueError,
            "unknown BLEU tokenizer '{}': use 13a or none", o.tokenize);
  const int order = o.max_ngram_order;
  std::vector<int64_t> correct(order, 0), total(order, 0);
  int64_t sys_len = 0, ref_len = 0;
  for (size_t i = 0; i < hyps.size(); ++i) {
    OrderCounts ref_max(order);
    std::vector<size_t> ref_lens;
    for (const auto& stream : refs) {
      const auto words = bleu_tokens(stream[i], o);
      ref_lens.push_back(words.size());
      OrderCounts counts = word_ngrams(words, order);
      for (int n = 0; n < order; ++n)
        for (const auto& [key, c] : counts[n]) ref_max[n][key] = std::max(ref_max[n][key], c);
    }
    const auto words = bleu_tokens(hyps[i], o);
    sys_len += static_cast<int64_t>(words.size());
    ref_len += static_cast<int64_t>(closest_ref_len(words.size(), ref_lens));
    const OrderCounts hyp = word_ngrams(words, order);
    for (int n = 0; n < order; ++n) {
      for (const auto& [key, c] : hyp[n]) {
        total[n] += c;
        if (auto it = ref_max[n].find(key); it != ref_max[n].end())
          correct[n] += std::min(c, it->second);
      }
    }
  }
  return compute_bleu(std::move(correct), std::move(total), sys_len, ref_len, o);
}

ChrfScore corpus_chrf(const std::vector<std::string>& hyps, const RefStreams& refs,
                      const ChrfOptions& o) {
  check_inputs(hyps, refs);
  LMF_CHECK(o.char_order >= 0 && o.word_order >= 0 && o.char_order + o.word_order >= 1, ValueError,
            "chrF needs char_order + word_order >= 1 (got {} and {})", o.char_order, o.word_order);
  const size_t orders = static_cast<size_t>(o.char_order + o.word_order);
  std::vector<int64_t> sums(3 * orders, 0);
  for (size_t i = 0; i < hyps.size(); ++i) {
    const OrderCounts hyp = chrf_ngrams(hyps[i], o);
    std::vector<int64_t> best;
    double best_f = -1.0;
    for (const auto& stream : refs) {
      const OrderCounts ref = chrf_ngrams(stream[i], o);
      std::vector<int64_t> stats;
      for (size_t n = 0; n < orders; ++n) {
        int64_t hyp_count = 0, ref_count = 0, match = 0;
        for (const auto& [key, c] : hyp[n]) {
          hyp_count += c;
          if (auto it = ref[n].find(key); it != ref[n].end()) match += std::min(c, it->second);
        }
        for (const auto& kv : ref[n]) ref_count += kv.second;
        stats.insert(stats.end(), {ref[n].empty() ? 0 : hyp_count, ref_count, match});
      }
      if (const double f = chrf_f_score(stats, o); f > best_f) {
        best_f = f;
        best = std::move(stats);
      }
    }
    for (size_t k = 0; k < sums.size(); ++k) sums[k] += best[k];
  }
  ChrfScore s;
  s.score = chrf_f_score(sums, o);
  s.char_order = o.char_order;
  s.word_order = o.word_order;
  s.beta = o.beta;
  s.stats = std::move(sums);
  return s;
}

BleuScore sentence_bleu(const std::string& hyp, const std::vector<std::string>& refs,
                        BleuOptions options) {
  RefStreams streams;
  for (const auto& r : refs) streams.push_back({r});
  return corpus_bleu({hyp}, streams, options);
}

ChrfScore sentence_chrf(const std::string& hyp, const std::vector<std::string>& refs,
                        const ChrfOptions& options) {
  RefStreams streams;
  for (const auto& r : refs) streams.push_back({r});
  return corpus_chrf({hyp}, streams, options);
}

std::string ChrfScore::name() const {
  return fmt::format("chrF{}{}", beta, std::string(static_cast<size_t>(word_order), '+'));
}

std::string format_score(const BleuScore& s, int width) {
  std::string precisions;
  for (double p : s.precisions)
    precisions += fmt::format("{}{:.1f}", precisions.empty() ? "" : "/", p);
  return fmt::format("BLEU = {:.{}f} {} (BP = {:.3f} ratio = {:.3f} hyp_len = {} ref_len = {})",
                     s.score, width, precisions, s.bp, s.ratio, s.sys_len, s.ref_len);
}

std::string format_score(const ChrfScore& s, int width) {
  return fmt::format("{} = {:.{}f}", s.name(), s.score, width);
}

}  // namespace lmf::tasks
