// Head pipelines against transformers' pipelines on tiny random checkpoints
// (scripts/reference/gen_pipeline_goldens.py): same tokens, labels, spans and words; scores within
// 1e-4. Plus the errors bad input must give.
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
    std::ifstream f(kDir + "goldens.json");
    return json::parse(f);
  }();
  return g;
}

// One loaded pipeline per (type, model folder) for the whole test run.
template <class P>
const P& pipeline(const std::string& name) {
  static std::map<std::string, std::unique_ptr<P>> cache;
  auto& p = cache[name];
  if (!p) p = std::make_unique<P>(kDir + name);
  return *p;
}

constexpr double kTol = 1e-4;

void check_fill_mask(const tasks::FillMask& p, const json& cases) {
  for (const auto& c : cases) {
    const std::string text = c["text"];
    SCOPED_TRACE(text);
    tasks::FillMaskOptions o;
    o.top_k = c["top_k"];
    const auto rows = p(text, o);
    ASSERT_EQ(rows.size(), c["result"].size());
    for (size_t m = 0; m < rows.size(); ++m) {
      const auto& want = c["result"][m];
      ASSERT_EQ(rows[m].size(), want.size());
      for (size_t r = 0; r < rows[m].size(); ++r) {
        EXPECT_EQ(rows[m][r].token, want[r]["token"].get<uint32_t>()) << "mask " << m << " #" << r;
        EXPECT_EQ(rows[m][r].token_str, want[r]["token_str"].get<std::string>());
        EXPECT_EQ(rows[m][r].sequence, want[r]["sequence"].get<std::string>());
        EXPECT_NEAR(rows[m][r].score, want[r]["score"].get<double>(), kTol);
      }
    }
  }
}

void check_classify(const tasks::TextClassification& p, const json& cases) {
  for (const auto& c : cases) {
    const std::string text = c["text"];
    SCOPED_TRACE(text);
    tasks::ClassificationOptions o;
    o.top_k = c["top_k"].is_null() ? std::nullopt : std::optional<size_t>(c["top_k"]);
    if (c.contains("function_to_apply"))
      o.function = tasks::parse_score_function(c["function_to_apply"]);
    std::optional<std::string> pair;
    if (c.contains("text_pair")) pair = c["text_pair"].get<std::string>();
    const auto res = pair ? p(text, std::string_view(*pair), o) : p(text, std::nullopt, o);
    ASSERT_EQ(res.size(), c["result"].size());
    for (size_t i = 0; i < res.size(); ++i) {
      EXPECT_EQ(res[i].label, c["result"][i]["label"].get<std::string>());
      EXPECT_NEAR(res[i].score, c["result"][i]["score"].get<double>(), kTol);
    }
  }
}

}  // namespace

TEST(HeadsFillMask, BertTopKTokensScoresAndSequencesMatchHF) {
  const auto& g = goldens()["fill_mask"];
  check_fill_mask(pipeline<tasks::FillMask>(g["model"]), g["cases"]);
}

TEST(HeadsFillMask, RobertaByteLevelTopKMatchesHF) {
  const auto& g = goldens()["roberta_fill_mask"];
  check_fill_mask(pipeline<tasks::FillMask>(g["model"]), g["cases"]);
}

TEST(HeadsFillMask, InputWithoutMaskIsAnErrorNamingTheMaskToken) {
  const auto& p = pipeline<tasks::FillMask>("bert_mlm");
  try {
    p("Alice found the old book.");
    FAIL() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("[MASK]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(p("a [MASK]", {0}), ValueError);
  EXPECT_THROW(p(""), ValueError);
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "book ";
  EXPECT_THROW(p(long_text + "[MASK]"), ValueError);
}

TEST(HeadsClassify, SingleLabelSoftmaxTopKFunctionsAndPairsMatchHF) {
  const auto& g = goldens()["classify"];
  const auto& p = pipeline<tasks::TextClassification>(g["model"]);
  EXPECT_EQ(p.default_function(), tasks::ScoreFunction::softmax);
  check_classify(p, g["cases"]);
}

TEST(HeadsClassify, MultiLabelUsesSigmoidAsHF) {
  const auto& g = goldens()["classify_multi"];
  const auto& p = pipeline<tasks::TextClassification>(g["model"]);
  EXPECT_EQ(p.default_function(), tasks::ScoreFunction::sigmoid);
  check_classify(p, g["cases"]);
}

TEST(HeadsNer, AllAggregationStrategiesMatchHF) {
  const auto& g = goldens()["ner"];
  const auto& p = pipeline<tasks::TokenClassification>(g["model"]);
  size_t entities = 0;
  for (const auto& c : g["cases"]) {
    const std::string text = c["text"], strategy = c["aggregation_strategy"];
    SCOPED_TRACE(strategy + ": " + text);
    tasks::TokenClassificationOptions o;
    o.aggregation = tasks::parse_aggregation(strategy);
    const auto res = p(text, o);
    ASSERT_EQ(res.size(), c["result"].size());
    const bool none = strategy == "none";
    for (size_t i = 0; i < res.size(); ++i) {
      const auto& w = c["result"][i];
      EXPECT_EQ(res[i].entity, w[none ? "entity" : "entity_group"].get<std::string>()) << i;
      EXPECT_EQ(res[i].word, w["word"].get<std::string>()) << i;
      EXPECT_EQ(res[i].start, w["start"].get<size_t>()) << i;
      EXPECT_EQ(res[i].end, w["end"].get<size_t>()) << i;
      EXPECT_NEAR(res[i].score, w["score"].get<double>(), kTol) << i;
      EXPECT_EQ(res[i].index.has_value(), none);
      if (none) EXPECT_EQ(*res[i].index, w["index"].get<size_t>());
    }
    entities += res.size();
  }
  EXPECT_GT(entities, 100u);
}

TEST(HeadsNer, BadUtf8AndEmptyInputDoNotCrash) {
  const auto& p = pipeline<tasks::TokenClassification>("bert_ner");
  tasks::TokenClassificationOptions o;
  o.aggregation = tasks::Aggregation::simple;
  EXPECT_NO_THROW(p(std::string("Maria \xff\xfe lives in Berlin"), o));
  EXPECT_TRUE(p("", o).empty());
  EXPECT_THROW(tasks::parse_aggregation("mean"), ValueError);
}

TEST(HeadsQa, AnswersSpansAndScoresMatchHFIncludingDocStrideWindows) {
  const auto& g = goldens()["qa"];
  const auto& p = pipeline<tasks::QuestionAnswering>(g["model"]);
  for (const auto& c : g["cases"]) {
    const std::string q = c["question"], ctx = c["context"];
    SCOPED_TRACE(q);
    tasks::QuestionAnsweringOptions o;
    if (c.contains("top_k")) o.top_k = c["top_k"];
    if (c.contains("max_seq_len")) o.max_seq_len = c["max_seq_len"];
    if (c.contains("doc_stride")) o.doc_stride = c["doc_stride"];
    if (c.contains("max_answer_len")) o.max_answer_len = c["max_answer_len"];
    const auto res = p(q, ctx, o);
    EXPECT_EQ(p.windows_used(), c["windows"].get<size_t>());
    ASSERT_EQ(res.size(), c["result"].size());
    for (size_t i = 0; i < res.size(); ++i) {
      const auto& w = c["result"][i];
      EXPECT_EQ(res[i].answer, w["answer"].get<std::string>());
      EXPECT_EQ(res[i].start, w["start"].get<size_t>());
      EXPECT_EQ(res[i].end, w["end"].get<size_t>());
      const double want = w["score"];
      EXPECT_NEAR(res[i].score, want, std::min(kTol, 1e-3 * want + 1e-7));
    }
  }
}

TEST(HeadsQa, BadInputAndOptionsAreClearErrors) {
  const auto& p = pipeline<tasks::QuestionAnswering>("bert_qa");
  EXPECT_THROW(p("", "Maria lives in Paris."), ValueError);
  EXPECT_THROW(p("Where?", ""), ValueError);
  tasks::QuestionAnsweringOptions o;
  o.max_seq_len = 16;
  o.doc_stride = 20;
  EXPECT_THROW(p("Where?", "Maria lives in Paris.", o), ValueError);
  o.doc_stride = 4;
  // The question alone fills the window: no room for the context.
  EXPECT_THROW(p("Where did Maria Lopez and John Smith live before they moved to Berlin?",
                 "Maria lives in Paris.", o),
               ValueError);
  o = {};
  o.max_seq_len = 100000;
  EXPECT_THROW(p("Where?", "Paris.", o), ValueError);
  o = {};
  o.handle_impossible_answer = true;
  o.top_k = 40;
  const auto res = p("Where?", "Maria lives in Paris.", o);
  bool has_null = false;
  for (const auto& a : res) has_null |= a.answer.empty() && a.start == 0 && a.end == 0;
  EXPECT_TRUE(has_null);
}

TEST(HeadsNsp, ProbabilitiesMatchBertForNextSentencePrediction) {
  const auto& g = goldens()["nsp"];
  const auto& p = pipeline<tasks::NextSentencePrediction>(g["model"]);
  for (const auto& c : g["cases"]) {
    const auto r = p(c["text"].get<std::string>(), c["text_pair"].get<std::string>());
    EXPECT_NEAR(r.is_next, c["is_next"].get<double>(), kTol);
    EXPECT_NEAR(r.not_next, 1.0 - c["is_next"].get<double>(), kTol);
    EXPECT_NEAR(r.logits[0], c["logits"][0].get<double>(), kTol);
    EXPECT_NEAR(r.logits[1], c["logits"][1].get<double>(), kTol);
  }
}

TEST(HeadsLoading, WrongHeadOrMissingFolderIsAClearError) {
  try {
    tasks::FillMask p(kDir + "bert_cls");
    FAIL() << "no error";
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("BertForSequenceClassification"), std::string::npos) << m;
    EXPECT_NE(m.find("BertForMaskedLM"), std::string::npos) << m;
  }
  EXPECT_THROW(tasks::QuestionAnswering(kDir + "bert_ner"), ValueError);
  EXPECT_THROW(tasks::NextSentencePrediction(kDir + "bert_mlm"), ValueError);
  EXPECT_THROW(tasks::TextClassification(kDir + "does_not_exist"), IoError);
  EXPECT_THROW(tasks::parse_score_function("softplus"), ValueError);
}

TEST(HeadsHelpers, SubstringByCodePoints) {
  EXPECT_EQ(tasks::substr_code_points("São Paulo", 1, 3), "ão");
  EXPECT_EQ(tasks::substr_code_points("Zürich", 4, 100), "ch");
  EXPECT_EQ(tasks::substr_code_points("abc", 5, 2), "");
}
