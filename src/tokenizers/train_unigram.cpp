// HF UnigramTrainer (tokenizers 0.23) reimplemented: seed pieces from a suffix array of the
// words (the substrings its esaxx pass enumerates), EM with the Bayesian (digamma) M step,
// pruning by the approximate likelihood loss, finalization to the vocabulary size.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "lmforge/core/error.h"
#include "tokenizers/train_hf_internal.h"

namespace lmf::tok {

namespace {

using Piece = std::pair<std::string, double>;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kUnkPenalty = 10.0;

struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using IdMap = std::unordered_map<std::string, uint32_t, SvHash, std::equal_to<>>;

// HF Unigram::from as the trainer uses it (unk id 0): pieces, lookup, min score (NaN ignored).
struct Model {
  const std::vector<Piece>* pieces;
  IdMap ids;
  double min_score = std::numeric_limits<double>::infinity();
  size_t max_bytes = 0;
  explicit Model(const std::vector<Piece>& p) : pieces(&p) {
    ids.reserve(p.size());
    for (uint32_t i = 0; i < p.size(); ++i) {
      ids[p[i].first] = i;
      if (p[i].second < min_score) min_score = p[i].second;
      max_bytes = std::max(max_bytes, p[i].first.size());
    }
  }
};

struct Node {
  uint32_t id;  // piece id (bos/eos: n+1 / n+2)
  uint32_t pos, len;
  double score;
  double backtrace = 0;
  int prev = -1;
};

// HF Lattice: nodes 0 (bos) and 1 (eos), then the pieces found at every char position.
struct Lattice {
  std::string_view s;
  std::vector<Node> nodes;
  std::vector<std::vector<uint32_t>> begin, end;
  Lattice(std::string_view sentence, const Model& m) : s(sentence) {
    const size_t len = s.size(), n = m.pieces->size();
    begin.assign(len + 1, {});
    end.assign(len + 1, {});
    nodes.push_back({static_cast<uint32_t>(n + 1), 0, 0, 0.0});
    nodes.push_back({static_cast<uint32_t>(n + 2), static_cast<uint32_t>(len), 0, 0.0});
    begin[len].push_back(1);
    end[0].push_back(0);
    const double unk_score = m.min_score - kUnkPenalty;
    for (size_t b = 0; b < len;) {
      const size_t mblen = utf8_len(static_cast<unsigned char>(s[b]));
      bool single = false;
      // The trie's common-prefix search: every piece starting here, shortest first.
      for (size_t e = b + 1; e <= len && e - b <= m.max_bytes; ++e) {
        auto it = m.ids.find(s.substr(b, e - b));
        if (it == m.ids.end()) continue;
        insert(b, e - b, (*m.pieces)[it->second].second, it->second);
        if (e - b == mblen) single = true;
      }
      if (!single) insert(b, mblen, unk_score, 0);
      b += mblen;
    }
  }
  void insert(size_t pos, size_t len, double score, uint32_t id) {
    const auto nid = static_cast<uint32_t>(nodes.size());
    nodes.push_back({id, static_cast<uint32_t>(pos), static_cast<uint32_t>(len), score});
    begin[pos].push_back(nid);
    end[pos + len].push_back(nid);
  }
  // HF Lattice::viterbi: the best path's nodes (bos/eos excluded); first of equals wins.
  std::vector<uint32_t> viterbi() {
    const size_t len = s.size();
    for (size_t pos = 0; pos <= len;) {
      if (begin[pos].empty()) return {};
      for (uint32_t r : begin[pos]) {
        nodes[r].prev = -1;
        double best = 0;
        int bn = -1;
        for (uint32_t l : end[pos]) {
          const double sc = nodes[l].backtrace + nodes[r].score;
          if (bn < 0 || sc > best) {
            best = sc;
            bn = static_cast<int>(l);
          }
        }
        if (bn < 0) return {};
        nodes[r].prev = bn;
        nodes[r].backtrace = best;
      }
      if (pos == len) break;
      pos += utf8_len(static_cast<unsigned char>(s[pos]));
    }
    std::vector<uint32_t> out;
    int node = nodes[begin[len][0]].prev;
    if (node < 0) return {};
    while (nodes[node].prev >= 0) {
      out.push_back(static_cast<uint32_t>(node));
      node = nodes[node].prev;
    }
    std::reverse(out.begin(), out.end());
    return out;
  }
  // The two best paths (as HF's nbest(2)): each a list of nodes; one path when there is one.
  std::vector<std::vector<uint32_t>> nbest2() {
    struct Cand {
      double score;
      int node, rank;
    };
    std::vector<std::vector<Cand>> best(nodes.size());
    best[0] = {{0.0, -1, -1}};
    const size_t len = s.size();
    for (size_t pos = 0; pos <= len; ++pos) {
      for (uint32_t r : begin[pos]) {
        auto& br = best[r];
        for (uint32_t l : end[pos])
          for (int k = 0; k < static_cast<int>(best[l].size()); ++k) {
            const double sc = best[l][k].score + nodes[r].score;
            Cand c{sc, static_cast<int>(l), k};
            if (br.size() < 2) {
              br.push_back(c);
              if (br.size() == 2 && br[1].score > br[0].score) std::swap(br[0], br[1]);
            } else if (sc > br[0].score) {
              br[1] = br[0];
              br[0] = c;
            } else if (sc > br[1].score) {
              br[1] = c;
            }
          }
      }
    }
    std::vector<std::vector<uint32_t>> out;
    for (int k = 0; k < static_cast<int>(best[1].size()); ++k) {
      std::vector<uint32_t> path;
      int node = best[1][k].node, rank = best[1][k].rank;
      while (node > 0) {
        path.push_back(static_cast<uint32_t>(node));
        const auto& c = best[node][rank];
        node = c.node;
        rank = c.rank;
      }
      std::reverse(path.begin(), path.end());
      out.push_back(std::move(path));
    }
    return out;
  }
};

double log_sum_exp(double x, double y, bool init) {
  if (init) return y;
  const double vmin = x > y ? y : x, vmax = x > y ? x : y;
  if (vmax > vmin + 50.0) return vmax;
  return vmax + std::log(std::exp(vmin - vmax) + 1.0);
}

// HF Lattice::populate_marginal: adds freq * P(node) to expected[piece]; returns freq * log Z.
double populate_marginal(const Lattice& lat, double freq, std::vector<double>& expected) {
  const size_t len = lat.s.size(), n = lat.nodes.size();
  std::vector<double> alpha(n, 0.0), beta(n, 0.0);
  for (size_t pos = 0; pos <= len; ++pos)
    for (uint32_t r : lat.begin[pos])
      for (uint32_t l : lat.end[pos])
        alpha[r] = log_sum_exp(alpha[r], lat.nodes[l].score + alpha[l],
                               lat.nodes[l].id == lat.nodes[lat.end[pos][0]].id);
  for (size_t pos = len + 1; pos-- > 0;)
    for (uint32_t l : lat.end[pos])
      for (uint32_t r : lat.begin[pos])
        beta[l] = log_sum_exp(beta[l], lat.nodes[r].score + beta[r],
                              lat.nodes[r].id == lat.nodes[lat.begin[pos][0]].id);
  const double z = alpha[lat.begin[len][0]];
  for (size_t pos = 0; pos < len; ++pos)
    for (uint32_t nd : lat.begin[pos]) {
      const auto& node = lat.nodes[nd];
      expected[node.id] += freq * std::exp(alpha[nd] + node.score + beta[nd] - z);
    }
  return freq * z;
}

double digamma(double x) {
  double r = 0.0;
  while (x < 7.0) {
    r -= 1.0 / x;
    x += 1.0;
  }
  x -= 0.5;
  const double xx = 1.0 / x, xx2 = xx * xx, xx4 = xx2 * xx2;
  r += std::log(x) + (1.0 / 24.0) * xx2 - 7.0 / 960.0 * xx4 + (31.0 / 8064.0) * xx4 * xx2 -
       (127.0 / 30720.0) * xx4 * xx4;
  return r;
}

using Sentences = std::vector<std::pair<std::string, uint64_t>>;

// Suffix array of s by prefix doubling with counting sorts (O(n log n)); a suffix that is a
// prefix of another sorts first.
std::vector<uint32_t> suffix_array(const std::vector<uint32_t>& s) {
  const size_t n = s.size();
  std::vector<uint32_t> sa(n), rank(n), tmp(n), by2(n);
  for (size_t i = 0; i < n; ++i) sa[i] = static_cast<uint32_t>(i);
  std::sort(sa.begin(), sa.end(), [&](uint32_t a, uint32_t b) { return s[a] < s[b]; });
  for (size_t i = 0; i < n; ++i)
    rank[sa[i]] = i == 0 ? 0 : rank[sa[i - 1]] + (s[sa[i]] != s[sa[i - 1]] ? 1 : 0);
  std::vector<uint32_t> cnt;
  for (size_t k = 1; n > 0 && rank[sa[n - 1]] + 1 < n; k <<= 1) {
    // Order by the second key (rank of i + k; none sorts first), then stably by the first.
    size_t m = 0;
    for (size_t i = n - std::min(k, n); i < n; ++i) by2[m++] = static_cast<uint32_t>(i);
    for (size_t j = 0; j < n; ++j)
      if (sa[j] >= k) by2[m++] = static_cast<uint32_t>(sa[j] - k);
    cnt.assign(n + 1, 0);
    for (size_t i = 0; i < n; ++i) ++cnt[rank[i] + 1];
    for (size_t r = 1; r <= n; ++r) cnt[r] += cnt[r - 1];
    for (size_t j = 0; j < n; ++j) sa[cnt[rank[by2[j]]]++] = by2[j];
    auto second = [&](uint32_t i) -> int64_t { return i + k < n ? int64_t{rank[i + k]} : -1; };
    tmp[sa[0]] = 0;
    for (size_t j = 1; j < n; ++j)
      tmp[sa[j]] = tmp[sa[j - 1]] +
                   ((rank[sa[j]] != rank[sa[j - 1]] || second(sa[j]) != second(sa[j - 1])) ? 1 : 0);
    rank.swap(tmp);
  }
  return sa;
}

// The seed pieces as HF makes them: every char (by weighted count), then the substrings of
// 2..max_piece_length chars without a boundary among the internal nodes of the suffix tree of
// the distinct words joined by \0 (esaxx's enhanced suffix array: the repeats followed by two
// different chars), by occurrences * length; log-probabilities of those counts.
std::vector<Piece> seed_pieces(const Sentences& sentences, const UnigramTrainConfig& cfg) {
  std::unordered_map<char32_t, uint64_t> all_chars;
  std::vector<uint32_t> flat;
  for (const auto& [w, n] : sentences) {
    if (w.empty()) continue;
    for (char32_t c : chars_of(w)) {
      flat.push_back(c);
      if (c != 0) all_chars[c] += n;
    }
    flat.push_back(0);
  }
  const size_t n = flat.size();
  const auto sa = suffix_array(flat);
  // LCP of neighbours (Kasai): lcp[i] = lcp(sa[i - 1], sa[i]), lcp[0] = 0.
  std::vector<uint32_t> lcp(n, 0);
  {
    std::vector<uint32_t> inv(n);
    for (size_t i = 0; i < n; ++i) inv[sa[i]] = static_cast<uint32_t>(i);
    size_t h = 0;
    for (size_t i = 0; i < n; ++i) {
      if (inv[i] == 0) {
        h = 0;
        continue;
      }
      const size_t j = sa[inv[i] - 1];
      while (i + h < n && j + h < n && flat[i + h] == flat[j + h]) ++h;
      lcp[inv[i]] = static_cast<uint32_t>(h);
      if (h > 0) --h;
    }
  }
  // The lcp intervals (esaxx's stack walk): [left, right) of depth d is a node.
  struct Sub {
    uint64_t score;
    std::string text;
  };
  std::vector<Sub> subs;
  std::vector<std::pair<int64_t, int64_t>> stack{{-1, -1}};
  for (size_t i = 0;; ++i) {
    std::pair<int64_t, int64_t> cur{static_cast<int64_t>(i), i == n ? -1 : int64_t{lcp[i]}};
    auto cand = stack.back();
    while (cand.second > cur.second) {
      const int64_t left = cand.first, depth = cand.second;
      if (static_cast<int64_t>(i) - left > 1 && depth > 1 &&
          static_cast<size_t>(depth) <= cfg.max_piece_length) {
        const size_t off = sa[static_cast<size_t>(left)];
        const auto b = flat.begin() + static_cast<ptrdiff_t>(off);
        if (std::find(b, b + depth, 0u) == b + depth) {
          std::string text;
          for (auto it = b; it != b + depth; ++it) append_utf8(text, *it);
          const auto freq = static_cast<uint64_t>(static_cast<int64_t>(i) - left);
          subs.push_back({freq * static_cast<uint64_t>(depth), std::move(text)});
        }
      }
      cur.first = cand.first;
      stack.pop_back();
      cand = stack.back();
    }
    if (cand.second < cur.second) stack.push_back(cur);
    if (i == n) break;
    stack.emplace_back(static_cast<int64_t>(i), static_cast<int64_t>(n - sa[i] + 1));
  }
  std::vector<std::pair<uint64_t, char32_t>> sall;
  for (const auto& [c, cnt] : all_chars) sall.emplace_back(cnt, c);
  std::sort(sall.begin(), sall.end(), std::greater<>());
  // By decreasing (score, chars): UTF-8 byte order is code point order.
  std::sort(subs.begin(), subs.end(), [](const Sub& a, const Sub& b) {
    return a.score != b.score ? a.score > b.score : a.text > b.text;
  });
  std::vector<Piece> seeds;
  for (const auto& [cnt, c] : sall) seeds.emplace_back(utf8(c), static_cast<double>(cnt));
  for (auto& sub : subs) {
    if (seeds.size() >= cfg.seed_size) break;
    seeds.emplace_back(std::move(sub.text), static_cast<double>(sub.score));
  }
  double sum = 0;
  for (const auto& p : seeds) sum += p.second;
  const double logsum = std::log(sum);
  for (auto& p : seeds) p.second = std::log(p.second) - logsum;
  return seeds;
}

std::vector<double> e_step(const Model& m, const Sentences& sentences) {
  std::vector<double> expected(m.pieces->size(), 0.0);
  for (const auto& [s, n] : sentences) {
    Lattice lat(s, m);
    const double z = populate_marginal(lat, static_cast<double>(n), expected);
    LMF_CHECK(!std::isnan(z), ValueError,
              "tokenizer train: unigram likelihood is NaN (a word too long?)");
  }
  return expected;
}

std::vector<Piece> m_step(const std::vector<Piece>& pieces, const std::vector<double>& expected) {
  std::vector<Piece> out;
  double sum = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (i == 0) {
      out.emplace_back(pieces[i].first, kNaN);
      continue;
    }
    if (expected[i] < 0.5) continue;
    out.emplace_back(pieces[i].first, expected[i]);
    sum += expected[i];
  }
  const double logsum = digamma(sum);
  for (auto& p : out) p.second = digamma(p.second) - logsum;
  return out;
}

std::vector<Piece> prune(const Model& m, const std::vector<Piece>& pieces,
                         const Sentences& sentences, const UnigramTrainConfig& cfg) {
  const size_t n = pieces.size();
  std::vector<bool> always_keep(n, true);
  std::vector<std::vector<uint32_t>> alternatives(n);
  for (size_t id = 0; id < n; ++id) {
    if (id == 0) {
      always_keep[id] = false;
      continue;
    }
    Lattice lat(pieces[id].first, m);
    auto nb = lat.nbest2();
    if (nb.size() == 1) {
      always_keep[id] = true;
    } else if (nb[0].size() >= 2) {
      always_keep[id] = false;
    } else if (nb[0].size() == 1) {
      always_keep[id] = true;
      for (uint32_t node : nb[1]) alternatives[id].push_back(lat.nodes[node].id);
    }
  }
  double vsum = 0;
  std::vector<double> freq(n, 0.0);
  std::vector<std::vector<uint32_t>> inverted(n);
  for (uint32_t i = 0; i < sentences.size(); ++i) {
    Lattice lat(sentences[i].first, m);
    const double c = static_cast<double>(sentences[i].second);
    vsum += c;
    for (uint32_t node : lat.viterbi()) {
      const uint32_t id = lat.nodes[node].id;
      freq[id] += c;
      inverted[id].push_back(i);
    }
  }
  double sum = 0;
  for (double f : freq) sum += f;
  const double logsum = std::log(sum);
  std::vector<std::pair<size_t, double>> candidates;
  std::vector<Piece> out{pieces[0]};
  for (size_t id = 1; id < n; ++id) {
    if (freq[id] == 0.0 && !always_keep[id]) continue;
    if (alternatives[id].empty()) {
      out.push_back(pieces[id]);
      continue;
    }
    double f = 0;
    for (uint32_t s : inverted[id]) f += static_cast<double>(sentences[s].second);
    if (f == 0.0 || std::isnan(f)) continue;
    f /= vsum;
    const double logprob_sp = std::log(freq[id]) - logsum;
    // HF multiplies by (the number of pieces - 1) here, not by (alternatives - 1).
    const double logsum_alt = std::log(sum + freq[id] * static_cast<double>(n - 1));
    double logprob_alt = 0;
    for (uint32_t a : alternatives[id]) logprob_alt += std::log(freq[a] + freq[id]) - logsum_alt;
    candidates.emplace_back(id, f * (logprob_sp - logprob_alt));
  }
  const size_t desired = cfg.vocab_size * 11 / 10;
  const size_t pruned =
      std::max(desired, static_cast<size_t>(static_cast<double>(n) * cfg.shrinking_factor));
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [id, loss] : candidates) {
    if (out.size() == pruned) break;
    out.push_back(pieces[id]);
  }
  return out;
}

}  // namespace

UnigramTrainOutput train_unigram_words(const Sentences& sentences, const UnigramTrainConfig& cfg) {
  Progress prog{cfg.progress};
  LMF_CHECK(cfg.shrinking_factor > 0 && cfg.shrinking_factor < 1, ValueError,
            "tokenizer train: --shrinking-factor must be in (0, 1), got {}", cfg.shrinking_factor);
  LMF_CHECK(cfg.n_sub_iterations >= 1, ValueError,
            "tokenizer train: --n-sub-iterations must be at least 1");
  LMF_CHECK(cfg.max_piece_length >= 1, ValueError,
            "tokenizer train: --max-piece-length must be at least 1");
  // Required chars: every char of the corpus and the initial alphabet (HF: a hash set, so the
  // chars missing from the final model get their small scores in an arbitrary order; here by
  // code point).
  std::vector<char32_t> req_cps(cfg.initial_alphabet.begin(), cfg.initial_alphabet.end());
  for (const auto& [w, n] : sentences)
    for (char32_t c : chars_of(w)) req_cps.push_back(c);
  std::sort(req_cps.begin(), req_cps.end());
  req_cps.erase(std::unique(req_cps.begin(), req_cps.end()), req_cps.end());
  LMF_CHECK(req_cps.size() <= cfg.vocab_size, ValueError,
            "tokenizer train: --vocab-size {} is smaller than the alphabet ({} chars, which a "
            "unigram vocabulary must all hold); raise --vocab-size",
            cfg.vocab_size, req_cps.size());

  std::vector<Piece> pieces{{"<UNK>", kNaN}};
  {
    auto seeds = seed_pieces(sentences, cfg);
    pieces.insert(pieces.end(), seeds.begin(), seeds.end());
  }
  prog.tick([&] { return fmt::format("unigram: {} seed pieces", pieces.size()); }, true);
  const size_t desired = cfg.vocab_size * 11 / 10;
  for (;;) {
    for (unsigned it = 0; it < cfg.n_sub_iterations; ++it) {
      Model m(pieces);
      auto expected = e_step(m, sentences);
      pieces = m_step(pieces, expected);
    }
    if (pieces.size() <= desired) break;
    Model m(pieces);
    pieces = prune(m, pieces, sentences, cfg);
    prog.tick([&] { return fmt::format("unigram: EM, {} pieces", pieces.size()); });
  }

  // finalize
  Model m(pieces);
  std::vector<Piece> out;
  std::unordered_set<std::string> inserted{"<UNK>"};
  std::unordered_map<std::string, double> existing;
  for (const auto& p : pieces) existing.emplace(p.first, p.second);
  double penalty = 0;
  for (char32_t c : req_cps) {
    std::string s = utf8(c);
    auto it = existing.find(s);
    inserted.insert(s);
    if (it != existing.end()) {
      out.emplace_back(s, it->second);
    } else {
      out.emplace_back(s, m.min_score + penalty);
      penalty += 0.0001;
    }
  }
  std::optional<uint32_t> unk_id;
  bool need_unk = false;
  if (!cfg.unk_token.empty()) {
    auto it = std::find(cfg.special_tokens.begin(), cfg.special_tokens.end(), cfg.unk_token);
    if (it != cfg.special_tokens.end()) {
      unk_id = static_cast<uint32_t>(it - cfg.special_tokens.begin());
    } else {
      unk_id = 0;
      need_unk = true;
    }
  }
  const size_t nspecial = cfg.special_tokens.size() + (need_unk ? 1 : 0);
  LMF_CHECK(cfg.vocab_size > nspecial, ValueError,
            "tokenizer train: --vocab-size {} leaves no room after the {} special tokens",
            cfg.vocab_size, nspecial);
  const size_t target = cfg.vocab_size - nspecial;
  for (const auto& [tok, score] : pieces) {
    if (inserted.count(tok)) continue;
    inserted.insert(tok);
    out.emplace_back(tok, std::isnan(score) ? 0.0 : score);
    if (out.size() == target) break;
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Piece& a, const Piece& b) { return a.second > b.second; });
  UnigramTrainOutput res;
  if (need_unk) res.pieces.emplace_back(cfg.unk_token, 0.0);
  for (const auto& s : cfg.special_tokens) res.pieces.emplace_back(s, 0.0);
  res.pieces.insert(res.pieces.end(), out.begin(), out.end());
  res.unk_id = unk_id;
  return res;
}

}  // namespace lmf::tok
