// Metrics against scikit-learn, seqeval, the official SQuAD scoring and scipy (goldens from
// scripts/reference/gen_finetune_goldens.py).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/core/error.h"
#include "lmforge/train/metrics.h"

namespace {

using namespace lmf::train;
using nlohmann::json;

const json& goldens() {
  static const json g = [] {
    std::ifstream in(std::string(LMF_FIXTURES_DIR) + "/finetune/goldens.json");
    return json::parse(in);
  }();
  return g;
}

constexpr double kTol = 1e-9;

TEST(FinetuneMetrics, ClassificationMatchesSklearn) {
  for (const auto& c : goldens()["metrics"]["classification"]) {
    const auto t = c["y_true"].get<std::vector<int64_t>>();
    const auto p = c["y_pred"].get<std::vector<int64_t>>();
    EXPECT_NEAR(accuracy(t, p), c["accuracy"].get<double>(), kTol);
    const std::pair<const char*, Average> avgs[] = {
        {"macro", Average::macro}, {"micro", Average::micro}, {"weighted", Average::weighted}};
    for (const auto& [name, avg] : avgs) {
      const auto r = precision_recall_f1(t, p, avg);
      EXPECT_NEAR(r.precision, c[name][0].get<double>(), kTol) << name;
      EXPECT_NEAR(r.recall, c[name][1].get<double>(), kTol) << name;
      EXPECT_NEAR(r.f1, c[name][2].get<double>(), kTol) << name;
    }
  }
}

TEST(FinetuneMetrics, MultiLabelMatchesSklearn) {
  for (const auto& c : goldens()["metrics"]["multilabel"]) {
    const auto t = c["y_true"].get<std::vector<std::vector<int>>>();
    const auto p = c["y_pred"].get<std::vector<std::vector<int>>>();
    const std::pair<const char*, Average> avgs[] = {
        {"macro", Average::macro}, {"micro", Average::micro}, {"weighted", Average::weighted}};
    for (const auto& [name, avg] : avgs) {
      const auto r = precision_recall_f1_multilabel(t, p, avg);
      EXPECT_NEAR(r.precision, c[name][0].get<double>(), kTol) << name;
      EXPECT_NEAR(r.recall, c[name][1].get<double>(), kTol) << name;
      EXPECT_NEAR(r.f1, c[name][2].get<double>(), kTol) << name;
    }
  }
}

TEST(FinetuneMetrics, SeqevalEntitiesAndScores) {
  int n = 0;
  for (const auto& c : goldens()["metrics"]["seqeval"]) {
    const auto t = c["y_true"].get<std::vector<std::vector<std::string>>>();
    const auto p = c["y_pred"].get<std::vector<std::vector<std::string>>>();
    std::vector<std::string> flat;
    for (const auto& s : t) {
      flat.insert(flat.end(), s.begin(), s.end());
      flat.emplace_back("O");
    }
    const auto ents = get_entities(flat);
    ASSERT_EQ(ents.size(), c["entities_true"].size()) << "case " << n;
    for (size_t i = 0; i < ents.size(); ++i) {
      EXPECT_EQ(std::get<0>(ents[i]), c["entities_true"][i][0].get<std::string>());
      EXPECT_EQ(std::get<1>(ents[i]), c["entities_true"][i][1].get<int64_t>());
      EXPECT_EQ(std::get<2>(ents[i]), c["entities_true"][i][2].get<int64_t>());
    }
    const auto s = seqeval_scores(t, p);
    EXPECT_NEAR(s.precision, c["precision"].get<double>(), kTol) << "case " << n;
    EXPECT_NEAR(s.recall, c["recall"].get<double>(), kTol) << "case " << n;
    EXPECT_NEAR(s.f1, c["f1"].get<double>(), kTol) << "case " << n;
    EXPECT_NEAR(s.accuracy, c["accuracy"].get<double>(), kTol) << "case " << n;
    ++n;
  }
  EXPECT_GT(n, 5);
}

TEST(FinetuneMetrics, SeqevalChunkRules) {
  // IOB1 (I- starts a chunk), BIOES, type change inside a chunk.
  const auto e = get_entities({"I-PER", "I-PER", "O", "S-LOC", "B-LOC", "E-LOC", "B-PER", "I-LOC"});
  ASSERT_EQ(e.size(), 5u);
  EXPECT_EQ(e[0], Entity("PER", 0, 1));
  EXPECT_EQ(e[1], Entity("LOC", 3, 3));
  EXPECT_EQ(e[2], Entity("LOC", 4, 5));
  EXPECT_EQ(e[3], Entity("PER", 6, 6));
  EXPECT_EQ(e[4], Entity("LOC", 7, 7));
  EXPECT_THROW(seqeval_scores({{"O"}}, {{"O", "O"}}), lmf::ValueError);
}

TEST(FinetuneMetrics, SquadNormalizeAndScores) {
  for (const auto& c : goldens()["metrics"]["squad_normalize"])
    EXPECT_EQ(squad_normalize_answer(c[0].get<std::string>()), c[1].get<std::string>())
        << c[0].get<std::string>();
  for (const auto& c : goldens()["metrics"]["squad_f1_pairs"]) {
    const auto p = c[0].get<std::string>(), g = c[1].get<std::string>();
    EXPECT_NEAR(squad_f1(p, g, false), c[2].get<double>(), kTol) << p << " | " << g;
    EXPECT_NEAR(squad_f1(p, g, true), c[3].get<double>(), kTol) << p << " | " << g;
  }
  for (const auto& c : goldens()["metrics"]["squad"]) {
    const auto s = squad_scores(c["predictions"].get<std::vector<std::string>>(),
                                c["golds"].get<std::vector<std::vector<std::string>>>(),
                                c["version_2"].get<bool>());
    EXPECT_NEAR(s.exact_match, c["exact_match"].get<double>(), 1e-7);
    EXPECT_NEAR(s.f1, c["f1"].get<double>(), 1e-7);
  }
}

TEST(FinetuneMetrics, CorrelationsMatchScipy) {
  for (const auto& c : goldens()["metrics"]["correlation"]) {
    const auto x = c["x"].get<std::vector<double>>(), y = c["y"].get<std::vector<double>>();
    EXPECT_NEAR(pearson(x, y), c["pearson"].get<double>(), kTol);
    EXPECT_NEAR(spearman(x, y), c["spearman"].get<double>(), kTol);
  }
  const std::vector<double> r = rank_average(std::vector<double>{3, 1, 3, 2});
  EXPECT_EQ(r, (std::vector<double>{3.5, 1, 3.5, 2}));
  EXPECT_TRUE(std::isnan(pearson(std::vector<double>{1, 1, 1}, std::vector<double>{1, 2, 3})));
  EXPECT_THROW(pearson(std::vector<double>{1}, std::vector<double>{1}), lmf::ValueError);
}

}  // namespace
