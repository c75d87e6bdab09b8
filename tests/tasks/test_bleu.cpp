// BLEU / chrF against sacrebleu (fixtures/bleu/goldens.json from
// scripts/reference/gen_bleu_goldens.py): corpus and sentence scores with every detail field,
// option variants and the 13a tokenizer. Scores and floating fields agree to 1e-9 absolute
// (they are 0..100 or ratios; the only differences are summation-order roundings), integer
// fields and the printed lines exactly. Plus bad input: no crash on arbitrary bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tasks/bleu.h"

namespace {

using nlohmann::json;
using namespace lmf::tasks;

constexpr double kTol = 1e-9;
const std::string kDir = std::string(LMF_FIXTURES_DIR) + "/bleu/";

const json& goldens() {
  static const json j = [] {
    std::ifstream f(kDir + "goldens.json");
    EXPECT_TRUE(f.good()) << "missing " << kDir << "goldens.json";
    return json::parse(f);
  }();
  return j;
}

// The lines of a fixture file: split on "\n" only, nothing else removed (as the generator wrote
// them).
std::vector<std::string> read_lines(const std::string& rel) {
  std::ifstream f(kDir + rel, std::ios::binary);
  EXPECT_TRUE(f.good()) << rel;
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string s = ss.str();
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t nl; (nl = s.find('\n', pos)) != std::string::npos; pos = nl + 1)
    out.push_back(s.substr(pos, nl - pos));
  EXPECT_EQ(pos, s.size()) << rel << " does not end in a newline";
  return out;
}

struct Case {
  std::string name;
  std::vector<std::string> hyps;
  RefStreams refs;
  const json* j;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const auto& c : goldens()["cases"]) {
    Case k{c["name"], {}, {}, &c};
    if (c.contains("files")) {
      k.hyps = read_lines(c["files"]["hyp"]);
      for (const auto& r : c["files"]["refs"]) k.refs.push_back(read_lines(r));
    } else {
      k.hyps = c["hyps"].get<std::vector<std::string>>();
      k.refs = c["refs"].get<RefStreams>();
    }
    out.push_back(std::move(k));
  }
  return out;
}

void expect_bleu(const BleuScore& s, const json& g, const std::string& where, double add_k = 0) {
  SCOPED_TRACE(where);
  EXPECT_NEAR(s.score, g["score"].get<double>(), kTol);
  EXPECT_NEAR(s.bp, g["bp"].get<double>(), kTol);
  EXPECT_NEAR(s.ratio, g["ratio"].get<double>(), kTol);
  EXPECT_EQ(s.sys_len, g["sys_len"].get<int64_t>());
  EXPECT_EQ(s.ref_len, g["ref_len"].get<int64_t>());
  const auto p = g["precisions"].get<std::vector<double>>();
  ASSERT_EQ(s.precisions.size(), p.size());
  for (size_t n = 0; n < p.size(); ++n) EXPECT_NEAR(s.precisions[n], p[n], kTol) << "order " << n;
  // sacrebleu reports add-k counts with k added for orders >= 2 when any n-gram matched.
  const bool any = std::any_of(s.counts.begin(), s.counts.end(), [](int64_t c) { return c; });
  const auto counts = g["counts"].get<std::vector<double>>();
  const auto totals = g["totals"].get<std::vector<double>>();
  ASSERT_EQ(s.counts.size(), counts.size());
  ASSERT_EQ(s.totals.size(), totals.size());
  for (size_t n = 0; n < counts.size(); ++n) {
    const double k = (any && n > 0) ? add_k : 0.0;
    EXPECT_EQ(static_cast<double>(s.counts[n]) + k, counts[n]) << "counts order " << n;
    EXPECT_EQ(static_cast<double>(s.totals[n]) + k, totals[n]) << "totals order " << n;
  }
  if (g.contains("formatted")) EXPECT_EQ(format_score(s), g["formatted"].get<std::string>());
}

void expect_chrf(const ChrfScore& s, const json& g, const std::string& where) {
  SCOPED_TRACE(where);
  EXPECT_NEAR(s.score, g["score"].get<double>(), kTol);
  EXPECT_EQ(s.name(), g["name"].get<std::string>());
  EXPECT_EQ(s.stats, g["stats"].get<std::vector<int64_t>>());
  if (g.contains("formatted")) EXPECT_EQ(format_score(s), g["formatted"].get<std::string>());
}

BleuOptions bleu_options(const json& o) {
  BleuOptions b;
  if (o.contains("tokenize")) b.tokenize = o["tokenize"];
  if (o.contains("smooth")) {
    const std::string m = o["smooth"];
    b.smooth = m == "none"    ? BleuSmooth::kNone
               : m == "floor" ? BleuSmooth::kFloor
               : m == "add-k" ? BleuSmooth::kAddK
                              : BleuSmooth::kExp;
  }
  if (o.contains("smooth_value")) b.smooth_value = o["smooth_value"].get<double>();
  if (o.contains("max_ngram_order")) b.max_ngram_order = o["max_ngram_order"];
  if (o.contains("effective_order")) b.effective_order = o["effective_order"];
  return b;
}

ChrfOptions chrf_options(const json& o) {
  ChrfOptions c;
  if (o.contains("char_order")) c.char_order = o["char_order"];
  if (o.contains("word_order")) c.word_order = o["word_order"];
  if (o.contains("beta")) c.beta = o["beta"];
  if (o.contains("whitespace")) c.whitespace = o["whitespace"];
  if (o.contains("eps_smoothing")) c.eps_smoothing = o["eps_smoothing"];
  return c;
}

TEST(Bleu, GoldensCoverTheCasesTheIssueAsksFor) {
  std::set<std::string> names;
  for (const auto& c : goldens()["cases"]) names.insert(c["name"]);
  for (const char* n : {"english", "french_unicode", "cjk_emoji", "empty_lines", "perfect",
                        "no_overlap", "multi_ref", "multi30k_fr_200", "multi30k_fr_200_2refs"})
    EXPECT_TRUE(names.count(n)) << n;
}

TEST(Bleu, CorpusBleuEqualsSacrebleuDefaults) {
  for (const auto& c : cases()) expect_bleu(corpus_bleu(c.hyps, c.refs), (*c.j)["bleu"], c.name);
}

TEST(Bleu, CorpusChrfEqualsSacrebleuDefaults) {
  for (const auto& c : cases()) expect_chrf(corpus_chrf(c.hyps, c.refs), (*c.j)["chrf"], c.name);
}

TEST(Bleu, BleuOptionVariantsEqualSacrebleu) {
  for (const auto& c : cases()) {
    for (const auto& v : (*c.j)["bleu_variants"]) {
      const BleuOptions o = bleu_options(v["options"]);
      const double add_k = o.smooth == BleuSmooth::kAddK ? o.smooth_value.value_or(1.0) : 0.0;
      expect_bleu(corpus_bleu(c.hyps, c.refs, o), v, c.name + " " + v["options"].dump(), add_k);
    }
  }
}

TEST(Bleu, ChrfOptionVariantsEqualSacrebleu) {
  for (const auto& c : cases())
    for (const auto& v : (*c.j)["chrf_variants"])
      expect_chrf(corpus_chrf(c.hyps, c.refs, chrf_options(v["options"])), v,
                  c.name + " " + v["options"].dump());
}

TEST(Bleu, SentenceScoresEqualSacrebleu) {
  int checked = 0;
  for (const auto& c : cases()) {
    if (!c.j->contains("sentence_bleu")) continue;
    const auto& sb = (*c.j)["sentence_bleu"];
    const auto& sc = (*c.j)["sentence_chrf"];
    for (size_t i = 0; i < sb.size(); ++i, ++checked) {
      std::vector<std::string> refs;
      for (const auto& stream : c.refs) refs.push_back(stream[i]);
      const std::string where = c.name + " line " + std::to_string(i + 1);
      expect_bleu(sentence_bleu(c.hyps[i], refs), sb[i], where);
      EXPECT_NEAR(sentence_chrf(c.hyps[i], refs).score, sc[i].get<double>(), kTol) << where;
    }
  }
  EXPECT_GT(checked, 40);
}

TEST(Bleu, Tokenizer13aEqualsSacrebleu) {
  const auto& pairs = goldens()["tokenize_13a"];
  ASSERT_GT(pairs.size(), 100u);
  for (const auto& p : pairs)
    EXPECT_EQ(tokenize_13a(p[0].get<std::string>()), p[1].get<std::string>())
        << p[0].get<std::string>();
}

TEST(Bleu, PerfectMatchIs100AndNoOverlapIs0) {
  const std::vector<std::string> h = {"the cat sat on the mat", "a dog barks loudly"};
  EXPECT_DOUBLE_EQ(corpus_bleu(h, {h}).score, 100.0);
  EXPECT_DOUBLE_EQ(corpus_chrf(h, {h}).score, 100.0);
  const BleuScore zero = corpus_bleu({"x y z"}, {{"a b c"}});
  EXPECT_EQ(zero.score, 0.0);
  EXPECT_EQ(zero.precisions, std::vector<double>(4, 0.0));
}

TEST(Bleu, BadInputIsAClearError) {
  EXPECT_THROW(corpus_bleu({}, {{}}), lmf::ValueError);
  EXPECT_THROW(corpus_bleu({"a"}, {}), lmf::ValueError);
  try {
    corpus_bleu({"a", "b"}, {{"a"}});
    FAIL() << "expected a ValueError";
  } catch (const lmf::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("1 lines but there are 2"), std::string::npos) << e.what();
  }
  try {
    corpus_chrf({"ok", "bad \xff byte"}, {{"ok", "ok"}});
    FAIL() << "expected a ValueError";
  } catch (const lmf::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("hypothesis line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(corpus_bleu({"a"}, {{"\xc3"}}), lmf::ValueError);
  EXPECT_THROW(tokenize_13a("\xed\xa0\x80"), lmf::ValueError);  // a UTF-16 surrogate
  EXPECT_THROW(corpus_bleu({"a"}, {{"a"}}, {.max_ngram_order = 0}), lmf::ValueError);
  EXPECT_THROW(corpus_bleu({"a"}, {{"a"}}, {.tokenize = "intl"}), lmf::ValueError);
  EXPECT_THROW(corpus_chrf({"a"}, {{"a"}}, {.char_order = 0}), lmf::ValueError);
}

// Arbitrary bytes: either a ValueError (invalid UTF-8) or a score in [0, 100]; never a crash.
// Half of the trials draw ASCII bytes only, so that many inputs are valid and get scored.
TEST(Bleu, ArbitraryBytesNeverCrash) {
  std::mt19937 rng(5);
  const std::string specials[] = {
      "&amp;",        "<skipped>",        "-\n", "\n", ".", ",", "-", "9", "\xc2\xa0",
      "\xe2\x80\xa8", "\xf0\x9f\x98\x80", " "};
  int scored = 0, refused = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const unsigned byte_range = trial % 2 ? 128 : 256;
    std::vector<std::string> hyps(3), refs(3);
    for (auto* v : {&hyps, &refs}) {
      for (auto& s : *v) {
        const int len = static_cast<int>(rng() % 30);
        for (int i = 0; i < len; ++i) {
          if (rng() % 3 == 0)
            s += specials[rng() % std::size(specials)];
          else
            s.push_back(static_cast<char>(rng() % byte_range));
        }
      }
    }
    try {
      const double b = corpus_bleu(hyps, {refs}).score, c = corpus_chrf(hyps, {refs}).score;
      EXPECT_TRUE(b >= 0 && b <= 100 && c >= 0 && c <= 100) << b << " " << c;
      for (const auto& h : hyps) tokenize_13a(h);
      ++scored;
    } catch (const lmf::ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos) << e.what();
      ++refused;
    }
  }
  EXPECT_GT(scored, 150);
  EXPECT_GT(refused, 100);
}

}  // namespace
