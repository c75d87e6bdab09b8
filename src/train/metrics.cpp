// Metrics as scikit-learn, seqeval, the SQuAD scripts and scipy compute them.
#include "lmforge/train/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/normalized_string.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::train {
namespace {

double safe_div(double a, double b) {
  return b == 0 ? 0.0 : a / b;
}

struct Counts {
  double tp = 0, fp = 0, fn = 0;
};

PrecisionRecallF1 average_counts(const std::vector<Counts>& per_label, Average average) {
  PrecisionRecallF1 r;
  if (per_label.empty()) return r;
  if (average == Average::micro) {
    Counts s;
    for (const auto& c : per_label) {
      s.tp += c.tp;
      s.fp += c.fp;
      s.fn += c.fn;
    }
    r.precision = safe_div(s.tp, s.tp + s.fp);
    r.recall = safe_div(s.tp, s.tp + s.fn);
    r.f1 = safe_div(2 * s.tp, 2 * s.tp + s.fp + s.fn);
    return r;
  }
  double total_w = 0;
  for (const auto& c : per_label) {
    const double w = average == Average::macro ? 1.0 : c.tp + c.fn;
    r.precision += w * safe_div(c.tp, c.tp + c.fp);
    r.recall += w * safe_div(c.tp, c.tp + c.fn);
    r.f1 += w * safe_div(2 * c.tp, 2 * c.tp + c.fp + c.fn);
    total_w += w;
  }
  r.precision = safe_div(r.precision, total_w);
  r.recall = safe_div(r.recall, total_w);
  r.f1 = safe_div(r.f1, total_w);
  return r;
}

void check_same_size(size_t a, size_t b, const char* what) {
  LMF_CHECK(a == b, ValueError, "{}: y_true has {} entries but y_pred has {}", what, a, b);
}

// Python's str.split() on the normalised text (whitespace runs, no empty tokens).
std::vector<std::string> split_whitespace(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  size_t i = 0;
  while (i < s.size()) {
    const size_t start = i;
    const char32_t c = tok::next_char(s, i);
    if (tok::is_whitespace(c)) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.append(s, start, i - start);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// Length of the word "a", "an" or "the" at s[i] when no word char follows it, else 0.
size_t article_length_at(const std::string& s, size_t i) {
  for (std::string_view art : {"the", "an", "a"}) {
    if (s.compare(i, art.size(), art) != 0) continue;
    size_t j = i + art.size();
    if (j >= s.size() || !tok::is_word_char(tok::next_char(s, j))) return art.size();
  }
  return 0;
}

}  // namespace

double accuracy(std::span<const int64_t> y_true, std::span<const int64_t> y_pred) {
  check_same_size(y_true.size(), y_pred.size(), "accuracy");
  if (y_true.empty()) return 0.0;
  size_t same = 0;
  for (size_t i = 0; i < y_true.size(); ++i) same += y_true[i] == y_pred[i];
  return static_cast<double>(same) / static_cast<double>(y_true.size());
}

PrecisionRecallF1 precision_recall_f1(std::span<const int64_t> y_true,
                                      std::span<const int64_t> y_pred, Average average) {
  check_same_size(y_true.size(), y_pred.size(), "precision_recall_f1");
  std::map<int64_t, Counts> counts;  // sorted labels of y_true and y_pred
  for (size_t i = 0; i < y_true.size(); ++i) {
    if (y_true[i] == y_pred[i]) {
      counts[y_true[i]].tp += 1;
    } else {
      counts[y_pred[i]].fp += 1;
      counts[y_true[i]].fn += 1;
    }
  }
  std::vector<Counts> per_label;
  for (const auto& [label, c] : counts) per_label.push_back(c);
  return average_counts(per_label, average);
}

PrecisionRecallF1 precision_recall_f1_multilabel(const std::vector<std::vector<int>>& y_true,
                                                 const std::vector<std::vector<int>>& y_pred,
                                                 Average average) {
  check_same_size(y_true.size(), y_pred.size(), "precision_recall_f1_multilabel");
  if (y_true.empty()) return {};
  const size_t n = y_true[0].size();
  std::vector<Counts> per_label(n);
  for (size_t i = 0; i < y_true.size(); ++i) {
    LMF_CHECK(y_true[i].size() == n && y_pred[i].size() == n, ValueError,
              "precision_recall_f1_multilabel: row {} has {} / {} columns, expected {}", i,
              y_true[i].size(), y_pred[i].size(), n);
    for (size_t j = 0; j < n; ++j) {
      const bool t = y_true[i][j] != 0, p = y_pred[i][j] != 0;
      per_label[j].tp += t && p;
      per_label[j].fp += !t && p;
      per_label[j].fn += t && !p;
    }
  }
  return average_counts(per_label, average);
}

// ---- seqeval ------------------------------------------------------------------------------------

namespace {

bool end_of_chunk(char p, char t, const std::string& pt, const std::string& ty) {
  bool end = p == 'E' || p == 'S';
  if (p == 'B' && (t == 'B' || t == 'S' || t == 'O')) end = true;
  if (p == 'I' && (t == 'B' || t == 'S' || t == 'O')) end = true;
  if (p != 'O' && p != '.' && pt != ty) end = true;
  return end;
}

bool start_of_chunk(char p, char t, const std::string& pt, const std::string& ty) {
  bool start = t == 'B' || t == 'S';
  if ((p == 'E' || p == 'S' || p == 'O') && (t == 'E' || t == 'I')) start = true;
  if (t != 'O' && t != '.' && pt != ty) start = true;
  return start;
}

// seqeval's tag = chunk[0], type = chunk[1:].split('-', 1)[-1] or '_'. A tag whose first
// character is not ASCII never equals one of the letters compared against, so '\x01' stands
// for it.
void split_tag(const std::string& chunk, char& tag, std::string& type) {
  if (chunk.empty()) {
    tag = '\x01';
    type = "_";
    return;
  }
  const size_t first = tok::utf8_len(static_cast<unsigned char>(chunk[0]));
  tag = static_cast<unsigned char>(chunk[0]) < 0x80 ? chunk[0] : '\x01';
  std::string rest = chunk.substr(std::min(first, chunk.size()));
  const size_t dash = rest.find('-');
  type = dash == std::string::npos ? rest : rest.substr(dash + 1);
  if (type.empty()) type = "_";
}

}  // namespace

std::vector<Entity> get_entities(const std::vector<std::string>& tags) {
  std::vector<Entity> chunks;
  char prev_tag = 'O';
  std::string prev_type;
  int64_t begin = 0;
  const int64_t n = static_cast<int64_t>(tags.size());
  for (int64_t i = 0; i <= n; ++i) {
    char tag;
    std::string type;
    split_tag(i < n ? tags[i] : std::string("O"), tag, type);
    if (end_of_chunk(prev_tag, tag, prev_type, type)) chunks.emplace_back(prev_type, begin, i - 1);
    if (start_of_chunk(prev_tag, tag, prev_type, type)) begin = i;
    prev_tag = tag;
    prev_type = std::move(type);
  }
  return chunks;
}

SeqevalScores seqeval_scores(const std::vector<std::vector<std::string>>& y_true,
                             const std::vector<std::vector<std::string>>& y_pred) {
  check_same_size(y_true.size(), y_pred.size(), "seqeval_scores (sentences)");
  std::vector<std::string> flat_true, flat_pred;
  size_t correct_tokens = 0, tokens = 0;
  for (size_t s = 0; s < y_true.size(); ++s) {
    LMF_CHECK(y_true[s].size() == y_pred[s].size(), ValueError,
              "seqeval_scores: sentence {} has {} gold tags but {} predicted", s, y_true[s].size(),
              y_pred[s].size());
    for (size_t i = 0; i < y_true[s].size(); ++i) {
      correct_tokens += y_true[s][i] == y_pred[s][i];
      ++tokens;
    }
    flat_true.insert(flat_true.end(), y_true[s].begin(), y_true[s].end());
    flat_true.emplace_back("O");
    flat_pred.insert(flat_pred.end(), y_pred[s].begin(), y_pred[s].end());
    flat_pred.emplace_back("O");
  }
  const auto true_entities = get_entities(flat_true);
  const auto pred_entities = get_entities(flat_pred);
  const std::set<Entity> true_set(true_entities.begin(), true_entities.end());
  const std::set<Entity> pred_set(pred_entities.begin(), pred_entities.end());
  double tp = 0;
  for (const auto& e : pred_set) tp += true_set.count(e);
  SeqevalScores r;
  r.precision = safe_div(tp, static_cast<double>(pred_set.size()));
  r.recall = safe_div(tp, static_cast<double>(true_set.size()));
  r.f1 = safe_div(2 * r.precision * r.recall, r.precision + r.recall);
  r.accuracy = safe_div(static_cast<double>(correct_tokens), static_cast<double>(tokens));
  return r;
}

// ---- SQuAD --------------------------------------------------------------------------------------

std::string squad_normalize_answer(const std::string& s) {
  tok::NormalizedString ns(tok::sanitize_utf8(s));
  ns.lowercase();
  const std::string& lower = ns.get();
  std::string no_punc;
  no_punc.reserve(lower.size());
  static const std::string kPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  for (char ch : lower)
    if (kPunct.find(ch) == std::string::npos) no_punc.push_back(ch);
  // re.sub(r'\b(a|an|the)\b', ' ', text): a whole word a/an/the between non-word chars.
  std::string no_articles;
  size_t i = 0;
  bool prev_word = false;
  while (i < no_punc.size()) {
    const size_t article = prev_word ? 0 : article_length_at(no_punc, i);
    if (article > 0) {
      no_articles.push_back(' ');
      i += article;
      prev_word = false;
      continue;
    }
    const size_t start = i;
    prev_word = tok::is_word_char(tok::next_char(no_punc, i));
    no_articles.append(no_punc, start, i - start);
  }
  std::string out;
  for (const auto& w : split_whitespace(no_articles)) {
    if (!out.empty()) out.push_back(' ');
    out += w;
  }
  return out;
}

double squad_exact(const std::string& prediction, const std::string& gold) {
  return squad_normalize_answer(prediction) == squad_normalize_answer(gold) ? 1.0 : 0.0;
}

double squad_f1(const std::string& prediction, const std::string& gold, bool version_2) {
  const auto pred = split_whitespace(squad_normalize_answer(prediction));
  const auto truth = split_whitespace(squad_normalize_answer(gold));
  if (version_2 && (pred.empty() || truth.empty())) return pred == truth ? 1.0 : 0.0;
  std::map<std::string, int64_t> counts;
  for (const auto& t : truth) ++counts[t];
  double same = 0;
  for (const auto& t : pred) {
    auto it = counts.find(t);
    if (it != counts.end() && it->second > 0) {
      --it->second;
      ++same;
    }
  }
  if (same == 0) return 0.0;
  const double p = same / static_cast<double>(pred.size());
  const double r = same / static_cast<double>(truth.size());
  return 2 * p * r / (p + r);
}

SquadScores squad_scores(const std::vector<std::string>& predictions,
                         const std::vector<std::vector<std::string>>& golds, bool version_2) {
  LMF_CHECK(predictions.size() == golds.size(), ValueError,
            "squad_scores: {} predictions for {} questions", predictions.size(), golds.size());
  SquadScores r;
  if (predictions.empty()) return r;
  for (size_t i = 0; i < predictions.size(); ++i) {
    std::vector<std::string> g = golds[i];
    if (g.empty()) g.emplace_back("");
    double em = 0, f1 = 0;
    for (const auto& a : g) {
      em = std::max(em, squad_exact(predictions[i], a));
      f1 = std::max(f1, squad_f1(predictions[i], a, version_2));
    }
    r.exact_match += em;
    r.f1 += f1;
  }
  r.exact_match *= 100.0 / static_cast<double>(predictions.size());
  r.f1 *= 100.0 / static_cast<double>(predictions.size());
  return r;
}

// ---- correlation --------------------------------------------------------------------------------

std::vector<double> rank_average(std::span<const double> x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> ranks(x.size());
  size_t i = 0;
  while (i < order.size()) {
    size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    const double avg = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = avg;
    i = j + 1;
  }
  return ranks;
}

double pearson(std::span<const double> x, std::span<const double> y) {
  LMF_CHECK(x.size() == y.size(), ValueError, "pearson: {} values against {}", x.size(), y.size());
  LMF_CHECK(x.size() >= 2, ValueError, "pearson needs at least 2 values, got {}", x.size());
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx == 0 || syy == 0) return std::numeric_limits<double>::quiet_NaN();
  return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

double spearman(std::span<const double> x, std::span<const double> y) {
  LMF_CHECK(x.size() == y.size(), ValueError, "spearman: {} values against {}", x.size(), y.size());
  const auto rx = rank_average(x), ry = rank_average(y);
  return pearson(rx, ry);
}

}  // namespace lmf::train
