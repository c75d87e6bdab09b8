// Cross-encoder scores against sentence-transformers' CrossEncoder.predict, token classification
// in stride windows and fill-mask targets against transformers' pipelines
// (goldens_extra.json from scripts/reference/gen_pipeline_goldens.py), plus their bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "lmforge/core/error.h"
#include "lmforge/tasks/heads.h"

using namespace lmf;
using nlohmann::json;

namespace {

const std::string kDir = std::string(LMF_FIXTURES_DIR) + "/pipelines/";

const json& goldens() {
  static const json g = [] {
    std::ifstream f(kDir + "goldens_extra.json");
    return json::parse(f);
  }();
  return g;
}

template <class P>
const P& pipeline(const std::string& name) {
  static std::map<std::string, std::unique_ptr<P>> cache;
  auto& p = cache[name];
  if (!p) p = std::make_unique<P>(kDir + name);
  return *p;
}

std::vector<std::pair<std::string, std::string>> pairs_of(const json& g) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& p : g["pairs"]) out.emplace_back(p[0], p[1]);
  return out;
}

// Max |got - want| over every score; want rows are numbers (one label) or arrays.
double max_abs_diff(const std::vector<std::vector<double>>& got, const json& want) {
  EXPECT_EQ(got.size(), want.size());
  double d = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const json row = want[i].is_array() ? want[i] : json::array({want[i]});
    EXPECT_EQ(got[i].size(), row.size()) << i;
    for (size_t j = 0; j < std::min(got[i].size(), row.size()); ++j)
      d = std::max(d, std::abs(got[i][j] - row[j].get<double>()));
  }
  return d;
}

}  // namespace

TEST(HeadsCrossEncoder, OneLabelSigmoidAndLogitsMatchSentenceTransformers) {
  const auto& g = goldens()["cross_encoder"];
  const auto& p = pipeline<tasks::CrossEncoder>("bert_ce");
  EXPECT_EQ(p.num_labels(), 1u);
  EXPECT_EQ(p.default_activation(), tasks::ScoreFunction::sigmoid);
  const auto pairs = pairs_of(g);
  tasks::CrossEncoderOptions o;
  o.batch_size = 3;  // padded batches, the last one partial, and a pair truncated to 256 tokens
  EXPECT_LE(max_abs_diff(p.predict(pairs, o), g["default"]), 1e-5);
  o.activation = tasks::ScoreFunction::none;
  EXPECT_LE(max_abs_diff(p.predict(pairs, o), g["identity"]), 1e-5);
  o.batch_size = 1;
  EXPECT_LE(max_abs_diff(p.predict(pairs, o), g["identity"]), 1e-5);
}

TEST(HeadsCrossEncoder, TwoLabelsSoftmaxOrLogitsMatchSentenceTransformers) {
  const auto& g = goldens()["cross_encoder_2"];
  const auto& p = pipeline<tasks::CrossEncoder>("bert_cls");
  EXPECT_EQ(p.num_labels(), 2u);
  EXPECT_EQ(p.label(1), "POSITIVE");
  EXPECT_EQ(p.default_activation(), tasks::ScoreFunction::softmax);
  const auto pairs = pairs_of(g);
  EXPECT_LE(max_abs_diff(p.predict(pairs), g["softmax"]), 1e-5);
  tasks::CrossEncoderOptions o;
  o.activation = tasks::ScoreFunction::none;
  EXPECT_LE(max_abs_diff(p.predict(pairs, o), g["default"]), 1e-5);
}

TEST(HeadsCrossEncoder, BadInputIsAClearError) {
  const auto& p = pipeline<tasks::CrossEncoder>("bert_ce");
  EXPECT_THROW(p.predict({{"a question", ""}}), ValueError);
  EXPECT_THROW(p.predict({{"  ", "a document"}}), ValueError);
  tasks::CrossEncoderOptions o;
  o.max_length = 100000;
  EXPECT_THROW(p.predict({{"a", "b"}}, o), ValueError);
  EXPECT_TRUE(p.predict({}).empty());
  o = {};
  o.activation = tasks::ScoreFunction::softmax;  // over one label: always 1
  EXPECT_THROW(p.predict({{"a", "b"}}, o), ValueError);
  EXPECT_THROW(tasks::CrossEncoder(kDir + "bert_ner"), ValueError);
}

TEST(HeadsNerStride, WindowsAndOverlapMergingMatchHF) {
  const auto& g = goldens()["ner_stride"];
  const auto& p = pipeline<tasks::TokenClassification>(g["model"]);
  EXPECT_EQ(p.special_tokens().model_max_length, 32u);
  size_t entities = 0, multi_window = 0;
  for (const auto& c : g["cases"]) {
    const std::string text = c["text"], strategy = c["aggregation_strategy"];
    SCOPED_TRACE(strategy + " stride " + c["stride"].dump() + ": " + text);
    tasks::TokenClassificationOptions o;
    o.aggregation = tasks::parse_aggregation(strategy);
    if (!c["stride"].is_null()) o.stride = c["stride"].get<size_t>();
    const auto res = p(text, o);
    EXPECT_EQ(p.windows_used(), c["windows"].get<size_t>());
    multi_window += p.windows_used() > 1;
    ASSERT_EQ(res.size(), c["result"].size());
    for (size_t i = 0; i < res.size(); ++i) {
      const auto& w = c["result"][i];
      EXPECT_EQ(res[i].entity, w["entity_group"].get<std::string>()) << i;
      EXPECT_EQ(res[i].word, w["word"].get<std::string>()) << i;
      EXPECT_EQ(res[i].start, w["start"].get<size_t>()) << i;
      EXPECT_EQ(res[i].end, w["end"].get<size_t>()) << i;
      EXPECT_NEAR(res[i].score, w["score"].get<double>(), 1e-5) << i;
    }
    entities += res.size();
  }
  EXPECT_GT(entities, 500u);
  EXPECT_GE(multi_window, 20u);
}

TEST(HeadsNerStride, BadStrideIsAClearError) {
  const auto& p = pipeline<tasks::TokenClassification>("bert_ner_short");
  tasks::TokenClassificationOptions o;
  o.aggregation = tasks::Aggregation::simple;
  o.stride = 32;
  EXPECT_THROW(p("Maria lives in Berlin.", o), ValueError);
  o.stride = 31;  // less than 32 but not less than the 30 tokens a window holds
  std::string long_text;
  for (int i = 0; i < 20; ++i) long_text += "Maria lives in Berlin. ";
  EXPECT_THROW(p(long_text, o), ValueError);
  o.stride = 4;
  o.aggregation = tasks::Aggregation::none;
  EXPECT_THROW(p("Maria lives in Berlin.", o), ValueError);
  o.aggregation = tasks::Aggregation::first;
  EXPECT_TRUE(p("", o).empty());
}

void check_targets(const tasks::FillMask& p, const json& cases) {
  for (const auto& c : cases) {
    const std::string text = c["text"];
    SCOPED_TRACE(text + " targets " + c["targets"].dump());
    tasks::FillMaskOptions o;
    o.top_k = c["top_k"];
    o.targets = c["targets"].get<std::vector<std::string>>();
    const auto rows = p(text, o);
    ASSERT_EQ(rows.size(), c["result"].size());
    for (size_t m = 0; m < rows.size(); ++m) {
      const auto& want = c["result"][m];
      ASSERT_EQ(rows[m].size(), want.size());
      for (size_t r = 0; r < rows[m].size(); ++r) {
        EXPECT_EQ(rows[m][r].token, want[r]["token"].get<uint32_t>()) << "mask " << m << " #" << r;
        EXPECT_EQ(rows[m][r].token_str, want[r]["token_str"].get<std::string>());
        EXPECT_EQ(rows[m][r].sequence, want[r]["sequence"].get<std::string>());
        EXPECT_NEAR(rows[m][r].score, want[r]["score"].get<double>(), 1e-5);
      }
    }
  }
}

TEST(HeadsFillMaskTargets, WordPieceTargetsMatchHF) {
  const auto& g = goldens()["fill_mask_targets"];
  check_targets(pipeline<tasks::FillMask>(g["model"]), g["cases"]);
}

TEST(HeadsFillMaskTargets, ByteLevelTargetsMatchHF) {
  const auto& g = goldens()["roberta_fill_mask_targets"];
  check_targets(pipeline<tasks::FillMask>(g["model"]), g["cases"]);
}

TEST(HeadsFillMaskTargets, ResolutionWarnsAndRejectsTargetsWithoutTokens) {
  const auto& p = pipeline<tasks::FillMask>("bert_mlm");
  const auto r = p.resolve_targets({"book", "Paris", "book", "\u200b"});
  EXPECT_EQ(r.ids.size(), 2u);  // book, paris (deduplicated); the zero-width space is dropped
  ASSERT_EQ(r.warnings.size(), 2u);
  EXPECT_NE(r.warnings[0].find("\"paris\""), std::string::npos) << r.warnings[0];
  EXPECT_NE(r.warnings[1].find("no token"), std::string::npos) << r.warnings[1];
  EXPECT_THROW(p.resolve_targets({"", "\u200b"}), ValueError);
  tasks::FillMaskOptions o;
  o.targets = {""};
  EXPECT_THROW(p("a [MASK]", o), ValueError);
}
