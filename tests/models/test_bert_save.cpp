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
#include "lmforge/core/runtime.h"
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


// ---- to_json against transformers ---------------------------------------------------------------

// all-MiniLM-L6-v2's config.json (written by transformers 4.8.2) and what transformers 5.24's
// BertModel.from_pretrained(...).save_pretrained(...) writes for it: unknown keys kept,
// _name_or_path dropped, version and dtype rewritten.
constexpr const char* kMiniLmConfig = R"({
  "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
  "architectures": ["BertModel"],
  "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": false, "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1, "hidden_size": 384, "initializer_range": 0.02,
  "intermediate_size": 1536, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
  "model_type": "bert", "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0,
  "position_embedding_type": "absolute", "transformers_version": "4.8.2", "type_vocab_size": 2,
  "use_cache": true, "vocab_size": 30522})";
constexpr const char* kMiniLmSavedByHf = R"({
  "add_cross_attention": false,
  "architectures": [
    "BertModel"
  ],
  "attention_probs_dropout_prob": 0.1,
  "bos_token_id": null,
  "classifier_dropout": null,
  "dtype": "float32",
  "eos_token_id": null,
  "gradient_checkpointing": false,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 384,
  "initializer_range": 0.02,
  "intermediate_size": 1536,
  "is_decoder": false,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "bert",
  "num_attention_heads": 12,
  "num_hidden_layers": 6,
  "pad_token_id": 0,
  "position_embedding_type": "absolute",
  "tie_word_embeddings": true,
  "transformers_version": "5.24.0",
  "type_vocab_size": 2,
  "use_cache": true,
  "vocab_size": 30522
}
)";

TEST(BertConfigToJson, KeepsUnknownKeysAsTransformersDoes) {
  const BertConfig c = BertConfig::from_json(kMiniLmConfig);
  EXPECT_EQ(c.to_json(), kMiniLmSavedByHf);
  expect_same_config(BertConfig::from_json(c.to_json()), c);
}

// Labels with non-ASCII names are escaped like Python's json.dumps (ensure_ascii) and sorted as
// strings; problem_type is written when set (expected text from transformers' to_json_string).
TEST(BertConfigToJson, LabelsAndProblemTypeAsTransformers) {
  BertConfig c = BertConfig::defaults(EncoderFamily::bert);
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 4;
  c.intermediate_size = 37;
  c.id2label = {{0, "n\xc3\xa9gatif"}, {1, "positif"}, {2, "neutre"}};
  c.label2id = {{"n\xc3\xa9gatif", 0}, {"positif", 1}, {"neutre", 2}};
  c.num_labels = 3;
  c.problem_type = "single_label_classification";
  const std::string j = c.to_json();
  EXPECT_NE(j.find("  \"id2label\": {\n    \"0\": \"n\\u00e9gatif\",\n    \"1\": \"positif\",\n"
                   "    \"2\": \"neutre\"\n  },"),
            std::string::npos)
      << j;
  EXPECT_NE(j.find("  \"label2id\": {\n    \"neutre\": 2,\n    \"n\\u00e9gatif\": 0,\n"
                   "    \"positif\": 1\n  },"),
            std::string::npos)
      << j;
  EXPECT_NE(j.find("\"problem_type\": \"single_label_classification\""), std::string::npos);
  EXPECT_EQ(j.find("architectures"), std::string::npos);  // HF omits None
  expect_same_config(BertConfig::from_json(j), c);
  // Default labels are omitted; 12 labels without names get HF's LABEL_i, sorted as strings.
  BertConfig d = BertConfig::defaults(EncoderFamily::roberta);
  EXPECT_EQ(d.to_json().find("id2label"), std::string::npos);
  d.num_labels = 12;
  const BertConfig r = BertConfig::from_json(d.to_json());
  EXPECT_EQ(r.num_labels, 12);
  EXPECT_EQ(r.id2label.at(11), "LABEL_11");
  EXPECT_EQ(r.label2id.at("LABEL_10"), 10);
  EXPECT_LT(d.to_json().find("\"10\": \"LABEL_10\""), d.to_json().find("\"2\": \"LABEL_2\""));
}

// Fields that are not attributes of the family's config class are written only when they
// differ from the default (transformers keeps them as extra attributes).
TEST(BertConfigToJson, FamilyFieldsAndNonDefaultExtras) {
  BertConfig e = BertConfig::defaults(EncoderFamily::electra);
  json j = json::parse(e.to_json());
  for (const char* k : {"embedding_size", "summary_type", "summary_use_proj",
                        "summary_activation", "summary_last_dropout", "classifier_dropout"})
    EXPECT_TRUE(j.contains(k)) << k;
  for (const char* k : {"summary_first_dropout", "summary_proj_to_labels", "num_hidden_groups",
                        "classifier_dropout_prob", "position_embedding_type", "num_labels"})
    EXPECT_FALSE(j.contains(k)) << k;
  e.summary_first_dropout = 0.2;
  e.summary_activation = "";  // none: HF's strict config refuses null, "" means identity
  j = json::parse(e.to_json());
  EXPECT_EQ(j.at("summary_first_dropout"), 0.2);
  expect_same_config(BertConfig::from_json(e.to_json()), e);
  BertConfig a = BertConfig::defaults(EncoderFamily::albert);
  a.classifier_dropout = 0.3;
  j = json::parse(a.to_json());
  EXPECT_EQ(j.at("classifier_dropout_prob"), 0.1);
  EXPECT_EQ(j.at("classifier_dropout"), 0.3);
  EXPECT_EQ(j.at("bos_token_id"), 2);
  EXPECT_FALSE(j.contains("use_cache"));
  expect_same_config(BertConfig::from_json(a.to_json()), a);
}

// ---- saving rules -------------------------------------------------------------------------------

// An MLM checkpoint loaded as BertModel without a seed has a refused pooler: saving leaves it
// out (HF will report it missing), so the reload refuses pooler_output again rather than
// presenting random weights as trained.
TEST(BertSave, RefusedPoolerIsNotSaved) {
  LoadOptions opt;
  opt.architecture = "BertModel";
  auto model = create_model(bert_fixture("bert_mlm"), opt);
  TempDir tmp;
  save_pretrained(*model, tmp.str());
  const auto sd = io::load_safetensors(tmp.str() + "/model.safetensors");
  EXPECT_FALSE(sd.count("pooler.dense.weight"));
  EXPECT_TRUE(sd.count("encoder.layer.0.output.dense.weight"));
  LoadReport rep;
  auto again = create_model(tmp.str(), {}, &rep);
  EXPECT_TRUE(rep.pooler_missing);
  const json golden = json::parse(read_text(bert_fixture("bert_mlm") + "/golden.json"));
  NoGradGuard no_grad;
  ModelOutput out = again->forward(inputs_of(golden.at("inputs"), false));
  EXPECT_THROW(out.pooler_output(), ValueError);
}

// Seed-002 rule: a pooler initialised from pooler_init_seed is saved, so every later load (lmforge
// or HF, see BertSaveFixtures/bert_base_seeded_pooler) gives the same pooler_output.
TEST(BertSave, SeededPoolerIsSavedAndReloadsDeterministically) {
  LoadOptions opt;
  opt.architecture = "BertModel";
  opt.pooler_init_seed = 7;
  auto model = create_model(bert_fixture("bert_mlm"), opt);
  TempDir tmp;
  save_pretrained(*model, tmp.str());
  const auto sd = io::load_safetensors(tmp.str() + "/model.safetensors");
  ASSERT_TRUE(sd.count("pooler.dense.weight"));
  ASSERT_TRUE(sd.count("pooler.dense.bias"));
  LoadReport rep;
  auto again = create_model(tmp.str(), {}, &rep);
  EXPECT_FALSE(rep.pooler_missing);
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  const json golden = json::parse(read_text(bert_fixture("bert_mlm") + "/golden.json"));
  NoGradGuard no_grad;
  const auto in = inputs_of(golden.at("inputs"), false);
  EXPECT_EQ(model->forward(in).pooler_output().to_vector<float>(),
            again->forward(in).pooler_output().to_vector<float>());
}

TEST(BertSave, OverwritesAFolderAndRefusesAFile) {
  auto model = create_model(bert_fixture("bert_tokcls"));
  TempDir tmp;
  save_pretrained(*model, tmp.str());
  save_pretrained(*model, tmp.str());  // again, over the first
  EXPECT_EQ(read_text(tmp.str() + "/config.json"),
            read_text(bert_fixture("bert_tokcls") + "/config.json"));
  const std::string file = tmp.str() + "/config.json";
  EXPECT_THROW(save_pretrained(*model, file), IoError);
}

// An untied MLM head is written whole (decoder.weight and decoder.bias), as HF writes it.
TEST(BertSave, UntiedDecoderIsWritten) {
  BertConfig c = BertConfig::from_file(bert_fixture("roberta_mlm") + "/config.json");
  c.tie_word_embeddings = false;
  manual_seed(3);
  auto model = create_model(c, "RobertaForMaskedLM");
  TempDir tmp;
  save_pretrained(*model, tmp.str());
  const auto sd = io::load_safetensors(tmp.str() + "/model.safetensors");
  EXPECT_TRUE(sd.count("lm_head.decoder.weight"));
  EXPECT_TRUE(sd.count("lm_head.decoder.bias"));
  EXPECT_TRUE(sd.count("lm_head.bias"));
  EXPECT_EQ(json::parse(read_text(tmp.str() + "/config.json")).at("tie_word_embeddings"), false);
}

}  // namespace
}  // namespace lmf::models
