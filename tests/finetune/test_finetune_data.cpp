// Fine-tuning readers (CSV/TSV/JSONL, CoNLL, SQuAD) incl. bad input, and features identical to
// transformers' run_glue / run_ner / run_qa (goldens from gen_finetune_goldens.py).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/core/error.h"
#include "lmforge/train/finetune.h"
#include "../train_data_util.h"

namespace {

using namespace lmf::train;
using nlohmann::json;
namespace fs = std::filesystem;

const std::string kDir = std::string(LMF_FIXTURES_DIR) + "/finetune";
const std::string kTok = std::string(LMF_FIXTURES_DIR) + "/pipelines/bert_cls";

const json& goldens() {
  static const json g = [] {
    std::ifstream in(kDir + "/goldens.json");
    return json::parse(in);
  }();
  return g;
}

std::string write_tmp(const std::string& name, const std::string& content) {
  return lmf::test::write_temp_file("lmf_finetune_data", name, content);
}

using lmf::test::error_of;

TEST(FinetuneData, CsvQuotingAndColumnsByNameOrIndex) {
  const auto p = write_tmp("a.csv",
                           "id,sentence1,sentence2,label\r\n"
                           "1,\"hello, \"\"world\"\"\",\"two\nlines\",b\r\n"
                           "2,plain,x,a\n\n");
  TextData d = read_text_data(p);
  ASSERT_EQ(d.rows.size(), 2u);
  EXPECT_TRUE(d.has_pair);
  EXPECT_EQ(d.text_column, "sentence1");
  EXPECT_EQ(d.rows[0].text, "hello, \"world\"");
  EXPECT_EQ(d.rows[0].text_pair, "two\nlines");
  EXPECT_EQ(d.rows[0].labels, std::vector<std::string>{"b"});
  EXPECT_EQ(d.rows[1].where, p + ":4");
  TextColumns c;
  c.text = "2";
  c.text_pair = "";
  c.label = "0";
  d = read_text_data(p, c);
  EXPECT_FALSE(d.has_pair);
  EXPECT_EQ(d.rows[1].text, "x");
  EXPECT_EQ(d.rows[1].labels[0], "2");
  const LabelSpace ls = make_label_space(read_text_data(p));
  EXPECT_EQ(ls.names, (std::vector<std::string>{"a", "b"}));
  // No "label" column: unlabelled pairs (MNRL); training a classifier on them says so.
  const TextData pairs = read_text_data(write_tmp("p.csv", "sentence1,sentence2\nx,y\n"));
  EXPECT_FALSE(pairs.has_label);
  EXPECT_TRUE(pairs.has_pair);
  EXPECT_NE(error_of([&] { make_label_space(pairs); }).find("label column"), std::string::npos);
}

TEST(FinetuneData, TsvAndLabelKinds) {
  const auto p = write_tmp("b.tsv", "label\tsentence\n10\tx\n2\ty\n10\tz\n");
  const LabelSpace ls = make_label_space(read_text_data(p));
  EXPECT_EQ(ls.kind, LabelKind::single_label);
  EXPECT_EQ(ls.names, (std::vector<std::string>{"2", "10"}));  // numeric order, as run_glue
  const auto r = write_tmp("r.tsv", "label\tsentence\n1\tx\n2.5\ty\n");
  EXPECT_EQ(make_label_space(read_text_data(r)).kind, LabelKind::regression);
  const auto m = write_tmp("m.jsonl",
                           "{\"text\": \"a\", \"label\": [\"x\", \"y\"]}\n"
                           "{\"text\": \"b\", \"label\": []}\n");
  const LabelSpace ml = make_label_space(read_text_data(m));
  EXPECT_EQ(ml.kind, LabelKind::multi_label);
  EXPECT_EQ(ml.names, (std::vector<std::string>{"x", "y"}));
}

TEST(FinetuneData, BadTablesNameFileAndLine) {
  EXPECT_NE(error_of([] { read_text_data(write_tmp("e.csv", "")); }).find("empty"),
            std::string::npos);
  EXPECT_NE(error_of([] { read_text_data(write_tmp("h.csv", "label,text\n")); }).find("no data"),
            std::string::npos);
  auto msg = error_of([] { read_text_data(write_tmp("f.csv", "label,text\na,b\nc\n")); });
  EXPECT_NE(msg.find("f.csv:3"), std::string::npos) << msg;
  msg = error_of([] { read_text_data(write_tmp("q.csv", "label,text\na,\"open\n")); });
  EXPECT_NE(msg.find("q.csv:2"), std::string::npos) << msg;
  msg = error_of([] { read_text_data(write_tmp("g.csv", "label,text\na,\"x\"y\n")); });
  EXPECT_NE(msg.find("g.csv:2"), std::string::npos) << msg;
  msg = error_of([] { read_text_data(write_tmp("u.tsv", "label\ttext\na\tok\nb\t\xff\xfe\n")); });
  EXPECT_NE(msg.find("u.tsv:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
  TextColumns c;
  c.label = "polarity";
  msg = error_of([&] { read_text_data(write_tmp("c.csv", "label,text\na,b\n"), c); });
  EXPECT_NE(msg.find("polarity"), std::string::npos) << msg;
  EXPECT_NE(msg.find("label, text"), std::string::npos) << msg;
  msg = error_of(
      [] { read_text_data(write_tmp("j.jsonl", "{\"text\": \"a\", \"label\": 1}\n{bad\n")); });
  EXPECT_NE(msg.find("j.jsonl:2"), std::string::npos) << msg;
  msg = error_of([] { read_text_data(write_tmp("x.xyz", "a")); });
  EXPECT_NE(msg.find("format"), std::string::npos) << msg;
  msg = error_of([] {
    make_label_space(
        read_text_data(write_tmp(
            "n.jsonl", "{\"text\": \"a\", \"label\": 0.5}\n{\"text\": \"b\", \"label\": \"x\"}\n")),
        LabelKind::regression);
  });
  EXPECT_NE(msg.find("n.jsonl:2"), std::string::npos) << msg;
}

TEST(FinetuneData, ConllAndJsonlTokenData) {
  const TokenData d = read_token_data(kDir + "/ner_train.conll");
  ASSERT_EQ(d.words.size(), 10u);
  EXPECT_EQ(d.words[0].size(), d.tags[0].size());
  EXPECT_EQ(d.tags[0][0], "B-PER");
  EXPECT_EQ(token_label_list(d),
            (std::vector<std::string>{"B-LOC", "B-PER", "I-LOC", "I-PER", "O"}));
  const TokenData j = read_token_data(kDir + "/ner_eval.jsonl");
  EXPECT_EQ(j.words.size(), 4u);
  auto msg = error_of([] { read_token_data(write_tmp("t.conll", "a O\nb\n")); });
  EXPECT_NE(msg.find("t.conll:2"), std::string::npos) << msg;
  msg = error_of(
      [] { read_token_data(write_tmp("t.jsonl", "{\"tokens\": [\"a\"], \"ner_tags\": []}\n")); });
  EXPECT_NE(msg.find("t.jsonl:1"), std::string::npos) << msg;
  msg = error_of([] { read_token_data(write_tmp("d.conll", "-DOCSTART- O\n\n")); });
  EXPECT_NE(msg.find("no sentences"), std::string::npos) << msg;
}

TEST(FinetuneData, SquadJsonAndJsonl) {
  const auto ex = read_squad(kDir + "/squad.json");
  ASSERT_EQ(ex.size(), 16u);
  EXPECT_EQ(ex[0].id, "q0_0");
  EXPECT_EQ(ex[0].answer_texts.size(), 1u);
  EXPECT_TRUE(ex[3].answer_texts.empty());
  const auto p = write_tmp("s.jsonl",
                           "{\"id\": \"1\", \"question\": \"q\", \"context\": \"abc déf\", "
                           "\"answers\": {\"text\": [\"déf\"], \"answer_start\": [4]}}\n");
  const auto j = read_squad(p);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0].answer_starts[0], 4);
  const auto bad = write_tmp("s2.jsonl",
                             "{\"id\": \"1\", \"question\": \"q\", \"context\": \"abc\", "
                             "\"answers\": {\"text\": [\"abcd\"], \"answer_start\": [1]}}\n");
  const auto msg = error_of([&] { read_squad(bad); });
  EXPECT_NE(msg.find("s2.jsonl:1"), std::string::npos) << msg;
  EXPECT_NE(error_of([] { read_squad(write_tmp("s3.json", "{\"x\": 1}")); }).find("SQuAD"),
            std::string::npos);
}

std::vector<int32_t> ints(const json& j) {
  return j.get<std::vector<int32_t>>();
}

TEST(FinetuneFeatures, ClassificationMatchesHf) {
  lmf::tok::Tokenizer tok = lmf::tok::Tokenizer::from_pretrained(kTok);
  const json& g = goldens()["features"]["cls_single"];
  const TextData d = read_text_data(kDir + "/cls_train.tsv");
  const LabelSpace ls = make_label_space(d);
  const auto f = classification_features(tok, d, ls, g["max_length"].get<int64_t>());
  ASSERT_EQ(f.size(), g["input_ids"].size());
  for (size_t i = 0; i < f.size(); ++i) {
    EXPECT_EQ(f[i].input_ids, ints(g["input_ids"][i])) << i;
    EXPECT_EQ(f[i].token_type_ids, ints(g["token_type_ids"][i])) << i;
    EXPECT_EQ(f[i].label, g["labels"][i].get<int64_t>()) << i;
  }
  EXPECT_FALSE(tok.truncation().has_value());  // restored
  const json& gp = goldens()["features"]["cls_pair"];
  const TextData dp = read_text_data(kDir + "/sts.csv");
  const LabelSpace lp = make_label_space(dp);
  ASSERT_EQ(lp.kind, LabelKind::regression);
  const auto fp = classification_features(tok, dp, lp, gp["max_length"].get<int64_t>());
  ASSERT_EQ(fp.size(), gp["input_ids"].size());
  for (size_t i = 0; i < fp.size(); ++i) {
    EXPECT_EQ(fp[i].input_ids, ints(gp["input_ids"][i])) << i;
    EXPECT_EQ(fp[i].token_type_ids, ints(gp["token_type_ids"][i])) << i;
    EXPECT_FLOAT_EQ(fp[i].targets.at(0), gp["scores"][i].get<float>()) << i;
  }
}

// Features of ner_train.conll with `tok` equal the golden `g` (ids, labels, and type ids when
// recorded); returns the label map used.
std::map<std::string, int64_t> expect_ner_features(lmf::tok::Tokenizer& tok, const json& g) {
  const TokenData d = read_token_data(kDir + "/ner_train.conll");
  const auto names = token_label_list(d);
  EXPECT_EQ(names, g["label_list"].get<std::vector<std::string>>());
  std::map<std::string, int64_t> l2i;
  for (size_t i = 0; i < names.size(); ++i) l2i[names[i]] = static_cast<int64_t>(i);
  const auto f = token_classification_features(tok, d, l2i, g["max_length"].get<int64_t>());
  EXPECT_EQ(f.size(), g["input_ids"].size());
  for (size_t i = 0; i < std::min(f.size(), g["input_ids"].size()); ++i) {
    EXPECT_EQ(f[i].input_ids, ints(g["input_ids"][i])) << i;
    if (g.contains("token_type_ids"))
      EXPECT_EQ(f[i].token_type_ids, ints(g["token_type_ids"][i])) << i;
    EXPECT_EQ(f[i].token_labels, ints(g["labels"][i])) << i;
  }
  return l2i;
}

TEST(FinetuneFeatures, TokenClassificationMatchesHf) {
  lmf::tok::Tokenizer tok = lmf::tok::Tokenizer::from_pretrained(kTok);
  auto l2i = expect_ner_features(tok, goldens()["features"]["ner"]);
  l2i.erase("B-LOC");
  EXPECT_THROW(token_classification_features(tok, read_token_data(kDir + "/ner_train.conll"), l2i, 64),
               lmf::ValueError);
}

// A byte-level BPE tokenizer (RoBERTa's, add_prefix_space false in its tokenizer.json): run_ner
// loads it with add_prefix_space=True, so each word gets its "Ġ" form; golden from
// gen_finetune_goldens.py --roberta-ner-only (transformers 5.24).
TEST(FinetuneFeatures, TokenClassificationByteLevelWordsGetAPrefixSpaceLikeRunNer) {
  std::ifstream in(kDir + "/ner_roberta_goldens.json");
  ASSERT_TRUE(in) << "missing ner_roberta_goldens.json";
  const json g = json::parse(in);
  lmf::tok::Tokenizer tok = lmf::tok::Tokenizer::from_pretrained(
      std::string(LMF_FIXTURES_DIR) + "/" + g["tokenizer"].get<std::string>());
  expect_ner_features(tok, g);
}

TEST(FinetuneFeatures, QuestionAnsweringMatchesHf) {
  lmf::tok::Tokenizer tok = lmf::tok::Tokenizer::from_pretrained(kTok);
  const json& g = goldens()["features"]["qa"];
  const auto ex = read_squad(kDir + "/squad.json");
  const auto f =
      qa_features(tok, ex, g["max_length"].get<int64_t>(), g["doc_stride"].get<int64_t>());
  const json& gf = g["features"];
  ASSERT_EQ(f.size(), gf.size());
  for (size_t i = 0; i < f.size(); ++i) {
    EXPECT_EQ(f[i].input_ids, ints(gf[i]["input_ids"])) << i;
    EXPECT_EQ(f[i].token_type_ids, ints(gf[i]["token_type_ids"])) << i;
    EXPECT_EQ(f[i].start_position, gf[i]["start_position"].get<int64_t>()) << i;
    EXPECT_EQ(f[i].end_position, gf[i]["end_position"].get<int64_t>()) << i;
    EXPECT_EQ(f[i].example_index, gf[i]["example_index"].get<int64_t>()) << i;
    ASSERT_EQ(f[i].offsets.size(), gf[i]["offsets"].size()) << i;
    for (size_t k = 0; k < f[i].offsets.size(); ++k) {
      EXPECT_EQ(f[i].offsets[k].first, gf[i]["offsets"][k][0].get<int32_t>()) << i << "," << k;
      EXPECT_EQ(f[i].offsets[k].second, gf[i]["offsets"][k][1].get<int32_t>()) << i << "," << k;
    }
  }
  const auto starts = g["start_logits"].get<std::vector<std::vector<float>>>();
  const auto ends = g["end_logits"].get<std::vector<std::vector<float>>>();
  QaPostprocessOptions o;
  EXPECT_EQ(postprocess_qa_predictions(ex, f, starts, ends, o),
            g["predictions_v1"].get<std::vector<std::string>>());
  o.version_2_with_negative = true;
  EXPECT_EQ(postprocess_qa_predictions(ex, f, starts, ends, o),
            g["predictions_v2"].get<std::vector<std::string>>());
}

}  // namespace
