// save_pretrained / BertConfig::to_json: every HF fixture of tests/fixtures/bert round-trips
// byte-identically (config.json and model.safetensors as transformers 5.24 wrote them), models
// built and perturbed here are saved to the bytes HF loaded when tests/fixtures/save was made
// (scripts/reference/gen_save_goldens.py), and their reloads give HF's recorded outputs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/io/checkpoint.h"
#include "lmforge/models/bert.h"

namespace lmf::models {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string bert_fixture(const std::string& name) {
  return std::string(LMF_FIXTURES_DIR) + "/bert/" + name;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

Tensor to_tensor(const json& j) {
  Shape shape = j.at("shape").get<Shape>();
  const json& d = j.at("data");
  if (!d.empty() && d[0].is_number_integer())
    return Tensor::from_vector(d.get<std::vector<int64_t>>(), shape);
  return Tensor::from_vector(d.get<std::vector<float>>(), shape);
}

// A fresh folder under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("lmf_save_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::remove_all(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string str() const { return path.string(); }
};

EncoderInputs inputs_of(const json& j, bool all_outputs) {
  EncoderInputs in;
  in.input_ids = to_tensor(j.at("input_ids"));
  in.attention_mask = to_tensor(j.at("attention_mask"));
  if (j.contains("token_type_ids")) in.token_type_ids = to_tensor(j.at("token_type_ids"));
  in.output_hidden_states = in.output_attentions = all_outputs;
  return in;
}

void expect_same_config(const BertConfig& a, const BertConfig& b) {
  EXPECT_EQ(a.family, b.family);
  EXPECT_EQ(a.architectures, b.architectures);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.hidden_act, b.hidden_act);
  EXPECT_EQ(a.hidden_act_name, b.hidden_act_name);
  EXPECT_EQ(a.hidden_dropout_prob, b.hidden_dropout_prob);
  EXPECT_EQ(a.attention_probs_dropout_prob, b.attention_probs_dropout_prob);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.type_vocab_size, b.type_vocab_size);
  EXPECT_EQ(a.initializer_range, b.initializer_range);
  EXPECT_EQ(a.layer_norm_eps, b.layer_norm_eps);
  EXPECT_EQ(a.pad_token_id, b.pad_token_id);
  EXPECT_EQ(a.num_labels, b.num_labels);
  EXPECT_EQ(a.position_embedding_type, b.position_embedding_type);
  EXPECT_EQ(a.embed_dim(), b.embed_dim());
  EXPECT_EQ(a.num_hidden_groups, b.num_hidden_groups);
  EXPECT_EQ(a.inner_group_num, b.inner_group_num);
  EXPECT_EQ(a.classifier_dropout, b.classifier_dropout);
  EXPECT_EQ(a.classifier_dropout_prob, b.classifier_dropout_prob);
  EXPECT_EQ(a.id2label, b.id2label);
  EXPECT_EQ(a.label2id, b.label2id);
  EXPECT_EQ(a.problem_type, b.problem_type);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.summary_type, b.summary_type);
  EXPECT_EQ(a.summary_use_proj, b.summary_use_proj);
  EXPECT_EQ(a.summary_proj_to_labels, b.summary_proj_to_labels);
  EXPECT_EQ(a.summary_activation, b.summary_activation);
  EXPECT_EQ(a.summary_first_dropout, b.summary_first_dropout);
  EXPECT_EQ(a.summary_last_dropout, b.summary_last_dropout);
  EXPECT_EQ(a.extra, b.extra);
}

void expect_same_tensors(const EncoderModel& a, const EncoderModel& b) {
  const auto sa = a.state_dict(), sb = b.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [k, t] : sa) {
    ASSERT_TRUE(sb.count(k)) << k;
    EXPECT_EQ(t.shape(), sb.at(k).shape()) << k;
    EXPECT_EQ(t.to_vector<float>(), sb.at(k).to_vector<float>()) << k;
  }
}

void expect_same_outputs(const ModelOutput& a, const ModelOutput& b) {
  auto same = [](const Tensor& x, const Tensor& y, const char* what) {
    ASSERT_EQ(x.defined(), y.defined()) << what;
    if (x.defined()) EXPECT_EQ(x.to_vector<float>(), y.to_vector<float>()) << what;
  };
  same(a.logits, b.logits, "logits");
  same(a.seq_relationship_logits, b.seq_relationship_logits, "seq_relationship_logits");
  same(a.start_logits, b.start_logits, "start_logits");
  same(a.end_logits, b.end_logits, "end_logits");
  same(a.last_hidden_state, b.last_hidden_state, "last_hidden_state");
  same(a.pooler, b.pooler, "pooler");
  ASSERT_EQ(a.hidden_states.size(), b.hidden_states.size());
  for (size_t i = 0; i < a.hidden_states.size(); ++i)
    same(a.hidden_states[i], b.hidden_states[i], "hidden_states");
}

std::vector<std::string> bert_fixture_names() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(std::string(LMF_FIXTURES_DIR) + "/bert"))
    if (fs::exists(e.path() / "golden.json")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class BertSaveRoundTrip : public ::testing::TestWithParam<std::string> {};

// Every HF checkpoint: to_json is HF's config.json byte for byte, save_pretrained rewrites HF's
// model.safetensors byte for byte, and the reload has identical tensors and outputs.
TEST_P(BertSaveRoundTrip, HfFolderIsRewrittenByteForByte) {
  const std::string name = GetParam();
  const std::string src = bert_fixture(name);
  const std::string hf_config = read_text(src + "/config.json");
  const BertConfig cfg = BertConfig::from_json(hf_config);
  EXPECT_EQ(cfg.to_json(), hf_config);
  expect_same_config(BertConfig::from_json(cfg.to_json()), cfg);

  auto model = create_model(src);
  TempDir tmp;
  save_pretrained(*model, tmp.str());
  EXPECT_EQ(read_text(tmp.str() + "/config.json"), hf_config) << name;
  EXPECT_TRUE(read_text(tmp.str() + "/model.safetensors") ==
              read_text(src + "/model.safetensors"))
      << name << ": model.safetensors differs from the one transformers wrote";
  for (const auto& e : fs::directory_iterator(tmp.path))
    EXPECT_TRUE(e.path().filename() == "config.json" ||
                e.path().filename() == "model.safetensors")
        << "left behind: " << e.path();

  LoadReport rep;
  LoadOptions strict;
  strict.strict = true;
  auto again = create_model(tmp.str(), strict, &rep);
  EXPECT_EQ(again->architecture(), model->architecture());
  EXPECT_FALSE(rep.pooler_missing);
  expect_same_tensors(*model, *again);
  const json golden = json::parse(read_text(src + "/golden.json"));
  const bool base = model->head() == EncoderHead::base;
  NoGradGuard no_grad;
  expect_same_outputs(model->forward(inputs_of(golden.at("inputs"), base)),
                      again->forward(inputs_of(golden.at("inputs"), base)));
}

INSTANTIATE_TEST_SUITE_P(Tiny, BertSaveRoundTrip, ::testing::ValuesIn(bert_fixture_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace lmf::models
