// BERT family (BERT, RoBERTa, ALBERT, ELECTRA, every head) against Hugging Face transformers:
// tiny random checkpoints saved by HF and their golden outputs (scripts/reference/
// gen_bert_goldens.py); loading reports, the pooler pitfall, and bad configs / inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/io/checkpoint.h"
#include "lmforge/models/bert.h"

namespace lmf::models {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string fixture(const std::string& name) {
  return std::string(LMF_FIXTURES_DIR) + "/bert/" + name;
}

json read_golden(const std::string& name) {
  std::ifstream f(fixture(name) + "/golden.json");
  return json::parse(f);
}

Tensor to_tensor(const json& j) {
  Shape shape = j.at("shape").get<Shape>();
  const json& d = j.at("data");
  if (!d.empty() && d[0].is_number_integer())
    return Tensor::from_vector(d.get<std::vector<int64_t>>(), shape);
  return Tensor::from_vector(d.get<std::vector<float>>(), shape);
}

double max_abs_diff(const Tensor& a, const json& golden) {
  Tensor g = to_tensor(golden);
  EXPECT_EQ(a.shape(), g.shape());
  if (a.shape() != g.shape()) return 1e9;
  auto x = a.to_vector<float>(), y = g.to_vector<float>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(double(x[i]) - double(y[i])));
  return m;
}

EncoderInputs inputs_of(const json& golden, bool base) {
  EncoderInputs in;
  const json& j = golden.at("inputs");
  in.input_ids = to_tensor(j.at("input_ids"));
  in.attention_mask = to_tensor(j.at("attention_mask"));
  if (j.contains("token_type_ids")) in.token_type_ids = to_tensor(j.at("token_type_ids"));
  in.output_hidden_states = in.output_attentions = base;
  return in;
}

EncoderLabels labels_of(const json& golden) {
  EncoderLabels l;
  const json& j = golden.at("labels");
  if (j.contains("labels")) l.labels = to_tensor(j.at("labels"));
  for (const char* k : {"next_sentence_label", "sentence_order_label"})
    if (j.contains(k)) l.next_sentence_label = to_tensor(j.at(k));
  if (j.contains("start_positions")) l.start_positions = to_tensor(j.at("start_positions"));
  if (j.contains("end_positions")) l.end_positions = to_tensor(j.at("end_positions"));
  return l;
}

constexpr double kTol = 1e-4;

class BertParity : public ::testing::TestWithParam<std::string> {};

// Every class: HF's checkpoint loads with no missing/unexpected key, and every output (logits,
// hidden states, attention probabilities, pooler, loss) matches HF to 1e-4.
TEST_P(BertParity, MatchesTransformers) {
  const std::string name = GetParam();
  const json golden = read_golden(name);
  const std::string cls = golden.at("class");
  LoadReport rep;
  auto model = create_model(fixture(name), {}, &rep);
  EXPECT_EQ(model->architecture(), cls);
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  EXPECT_TRUE(rep.unexpected_keys.empty()) << rep.summary();
  EXPECT_FALSE(rep.pooler_missing);

  const bool base = model->head() == EncoderHead::base;
  NoGradGuard no_grad;
  ModelOutput out = model->forward(inputs_of(golden, base), labels_of(golden));
  const json& g = golden.at("outputs");
  int checked = 0;
  auto check = [&](const char* key, const Tensor& t) {
    if (!g.contains(key)) return;
    ASSERT_TRUE(t.defined()) << name << ": no " << key;
    EXPECT_LE(max_abs_diff(t, g.at(key)), kTol) << name << ": " << key;
    ++checked;
  };
  check("logits", out.logits);
  check("prediction_logits", out.logits);
  check("seq_relationship_logits", out.seq_relationship_logits);
  check("sop_logits", out.seq_relationship_logits);
  check("start_logits", out.start_logits);
  check("end_logits", out.end_logits);
  check("last_hidden_state", out.last_hidden_state);
  if (g.contains("pooler_output")) check("pooler_output", out.pooler_output());
  if (base) {
    ASSERT_EQ(out.hidden_states.size(), g.at("hidden_states").size());
    for (size_t i = 0; i < out.hidden_states.size(); ++i)
      EXPECT_LE(max_abs_diff(out.hidden_states[i], g.at("hidden_states")[i]), kTol)
          << name << ": hidden_states[" << i << "]";
    ASSERT_EQ(out.attentions.size(), g.at("attentions").size());
    for (size_t i = 0; i < out.attentions.size(); ++i)
      EXPECT_LE(max_abs_diff(out.attentions[i], g.at("attentions")[i]), kTol)
          << name << ": attentions[" << i << "]";
  }
  EXPECT_GE(checked, 1);
  if (g.contains("loss")) {
    ASSERT_TRUE(out.loss.defined()) << name << ": no loss";
    EXPECT_NEAR(out.loss.item(), g.at("loss").get<double>(), kTol) << name << ": loss";
  }
  if (golden.contains("extra_losses")) {
    for (const auto& [key, e] : golden.at("extra_losses").items()) {
      EncoderLabels l;
      l.labels = to_tensor(e.at("labels"));
      Tensor loss = model->forward(inputs_of(golden, false), l).loss;
      EXPECT_NEAR(loss.item(), e.at("loss").get<double>(), kTol) << name << ": " << key;
    }
  }
}

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(std::string(LMF_FIXTURES_DIR) + "/bert"))
    if (fs::exists(e.path() / "golden.json")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

INSTANTIATE_TEST_SUITE_P(Tiny, BertParity, ::testing::ValuesIn(fixture_names()),
                         [](const auto& info) { return info.param; });

TEST(BertFixtures, CoverEveryRegisteredArchitecture) {
  std::set<std::string> classes;
  for (const auto& n : fixture_names()) classes.insert(read_golden(n).at("class"));
  for (const auto& a : supported_architectures())
    EXPECT_TRUE(classes.count(a.name)) << a.name << " has no golden fixture";
}

// ---- the pooler pitfall -------------------------------------------------------------------------

TEST(BertPooler, MlmCheckpointAsBaseModelRefusesPoolerOutput) {
  const json golden = read_golden("bert_mlm");
  LoadOptions opt;
  opt.architecture = "BertModel";
  LoadReport rep;
  auto model = create_model(fixture("bert_mlm"), opt, &rep);
  EXPECT_TRUE(rep.pooler_missing);
  EXPECT_FALSE(rep.pooler_initialized);
  EXPECT_EQ(rep.prefix_change, "removed 'bert.'");
  EXPECT_NE(std::find(rep.missing_keys.begin(), rep.missing_keys.end(), "pooler.dense.weight"),
            rep.missing_keys.end());
  EXPECT_NE(std::find(rep.unexpected_keys.begin(), rep.unexpected_keys.end(),
                      "cls.predictions.transform.dense.weight"),
            rep.unexpected_keys.end());
  NoGradGuard no_grad;
  ModelOutput out = model->forward(inputs_of(golden, false));
  EXPECT_LE(max_abs_diff(out.last_hidden_state, golden.at("as_base_model")), kTol);
  try {
    out.pooler_output();
    FAIL() << "pooler_output must be refused";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("no pooler weights"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--pooling cls"), std::string::npos) << msg;
    EXPECT_NE(msg.find("BertForMaskedLM"), std::string::npos) << msg;
  }
}

TEST(BertPooler, HeadNeedingThePoolerRefusesToRun) {
  LoadOptions opt;
  opt.architecture = "BertForSequenceClassification";
  auto model = create_model(fixture("bert_mlm"), opt);
  NoGradGuard no_grad;
  EXPECT_THROW(model->forward(inputs_of(read_golden("bert_mlm"), false)), ValueError);
}

TEST(BertPooler, SeededInitialisationIsExplicitAndReproducible) {
  const json golden = read_golden("bert_mlm");
  auto pooled = [&](uint64_t seed) {
    LoadOptions opt;
    opt.architecture = "BertModel";
    opt.pooler_init_seed = seed;
    LoadReport rep;
    auto model = create_model(fixture("bert_mlm"), opt, &rep);
    EXPECT_TRUE(rep.pooler_missing);
    EXPECT_TRUE(rep.pooler_initialized);
    NoGradGuard no_grad;
    return model->forward(inputs_of(golden, false)).pooler_output().to_vector<float>();
  };
  EXPECT_EQ(pooled(7), pooled(7));
  EXPECT_NE(pooled(7), pooled(8));
}

TEST(BertPooler, HeadsWithoutPoolerSayWhy) {
  auto model = create_model(fixture("bert_tokcls"));
  NoGradGuard no_grad;
  ModelOutput out = model->forward(inputs_of(read_golden("bert_tokcls"), false));
  EXPECT_THROW(out.pooler_output(), ValueError);
}

// ---- loading ------------------------------------------------------------------------------------

TEST(BertLoad, HeadFromBaseCheckpointAddsPrefixAndReportsNewHead) {
  const json golden = read_golden("bert_base");
  LoadOptions opt;
  opt.architecture = "BertForSequenceClassification";
  LoadReport rep;
  auto model = create_model(fixture("bert_base"), opt, &rep);
  EXPECT_EQ(rep.prefix_change, "added 'bert.'");
  EXPECT_EQ(rep.missing_keys, (std::vector<std::string>{"classifier.bias", "classifier.weight"}));
  EXPECT_TRUE(rep.unexpected_keys.empty()) << rep.summary();
  NoGradGuard no_grad;
  ModelOutput out = model->forward(inputs_of(golden, false));
  EXPECT_LE(max_abs_diff(out.last_hidden_state, golden.at("outputs").at("last_hidden_state")),
            kTol);
}

TEST(BertLoad, MlmDecoderIsTiedToWordEmbeddings) {
  LoadReport rep;
  auto model = create_model(fixture("bert_mlm"), {}, &rep);
  EXPECT_NE(std::find(rep.tied_keys.begin(), rep.tied_keys.end(), "cls.predictions.decoder.weight"),
            rep.tied_keys.end());
  auto sd = model->state_dict();
  EXPECT_TRUE(sd.at("cls.predictions.decoder.weight")
                  .same(sd.at("bert.embeddings.word_embeddings.weight")));
  EXPECT_TRUE(sd.at("cls.predictions.decoder.bias").same(sd.at("cls.predictions.bias")));
  auto electra = create_model(fixture("electra_mlm"));
  auto esd = electra->state_dict();
  EXPECT_TRUE(
      esd.at("generator_lm_head.weight").same(esd.at("electra.embeddings.word_embeddings.weight")));
}

TEST(BertLoad, LegacyGammaBetaNamesAreRenamed) {
  const json golden = read_golden("bert_base");
  auto sd = io::load_checkpoint_dir(fixture("bert_base"));
  nn::StateDict legacy;
  for (auto& [k, t] : sd) {
    std::string key = k;
    if (key.find("LayerNorm.weight") != std::string::npos)
      key.replace(key.rfind("weight"), 6, "gamma");
    else if (key.find("LayerNorm.bias") != std::string::npos)
      key.replace(key.rfind("bias"), 4, "beta");
    legacy[key] = t;
  }
  legacy["embeddings.position_ids"] = Tensor::arange(48).unsqueeze(0);  // old HF buffer
  auto model = create_model(BertConfig::from_file(fixture("bert_base") + "/config.json"));
  LoadReport rep = model->load(legacy);
  EXPECT_FALSE(rep.renamed_keys.empty());
  EXPECT_TRUE(rep.missing_keys.empty()) << rep.summary();
  EXPECT_TRUE(rep.unexpected_keys.empty()) << rep.summary();
  NoGradGuard no_grad;
  EXPECT_LE(max_abs_diff(model->forward(inputs_of(golden, false)).last_hidden_state,
                         golden.at("outputs").at("last_hidden_state")),
            kTol);
}

TEST(BertLoad, ShapeMismatchWithConfigNamesTheKey) {
  BertConfig c = BertConfig::from_file(fixture("bert_base") + "/config.json");
  c.vocab_size = 65;
  auto model = create_model(c);
  try {
    model->load(io::load_checkpoint_dir(fixture("bert_base")), {}, "bert_base");
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("embeddings.word_embeddings.weight"), std::string::npos)
        << e.what();
  }
}

TEST(BertLoad, ZeroCopySharesCheckpointMemoryAndKeepsTies) {
  auto sd = io::load_checkpoint_dir(fixture("bert_mlm"));
  BertConfig c = BertConfig::from_file(fixture("bert_mlm") + "/config.json");
  auto shared = create_model(c);
  shared->load(sd);
  const std::string word = "bert.embeddings.word_embeddings.weight";
  auto own = shared->state_dict();
  EXPECT_EQ(own.at(word).data_ptr(), sd.at(word).data_ptr());
  EXPECT_TRUE(own.at("cls.predictions.decoder.weight").same(own.at(word)));
  EXPECT_TRUE(own.at("cls.predictions.decoder.bias").same(own.at("cls.predictions.bias")));
  LoadOptions copy;
  copy.zero_copy = false;
  auto copied = create_model(c);
  copied->load(sd, copy);
  EXPECT_NE(copied->state_dict().at(word).data_ptr(), sd.at(word).data_ptr());
  const json golden = read_golden("bert_mlm");
  NoGradGuard no_grad;
  EXPECT_EQ(shared->forward(inputs_of(golden, false)).logits.to_vector<float>(),
            copied->forward(inputs_of(golden, false)).logits.to_vector<float>());
}

TEST(BertLoad, StrictLoadRefusesMissingKeys) {
  LoadOptions opt;
  opt.architecture = "BertModel";
  opt.strict = true;
  EXPECT_THROW(create_model(fixture("bert_mlm"), opt), ValueError);
}

TEST(BertLoad, MissingFolderOrBrokenConfigFileIsAnIoError) {
  EXPECT_THROW(create_model(fixture("no_such_model")), IoError);
  const std::string dir = ::testing::TempDir() + "lmf_bert_broken";
  fs::create_directories(dir);
  std::ofstream(dir + "/config.json") << "{\"model_type\": \"bert\",\n  \"hidden_size\": }";
  try {
    create_model(dir);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json:2:"), std::string::npos) << e.what();
  }
}

// ---- config -------------------------------------------------------------------------------------

TEST(BertConfigJson, ReadsFamilyFieldsAndLabels) {
  BertConfig c = BertConfig::from_file(fixture("albert_seqcls") + "/config.json");
  EXPECT_EQ(c.family, EncoderFamily::albert);
  EXPECT_EQ(c.embedding_size, 16);
  EXPECT_EQ(c.hidden_act, Activation::gelu_tanh);
  EXPECT_EQ(c.num_labels, 3);
  EXPECT_EQ(c.id2label.at(2), "LABEL_2");
  EXPECT_EQ(c.label2id.at("LABEL_1"), 1);
  BertConfig r = BertConfig::from_file(fixture("roberta_base") + "/config.json");
  EXPECT_EQ(r.family, EncoderFamily::roberta);
  EXPECT_EQ(r.pad_token_id, 1);
  EXPECT_EQ(r.type_vocab_size, 1);
  EXPECT_EQ(BertConfig::from_file(fixture("bert_tokcls") + "/config.json").hidden_act,
            Activation::relu);
}

TEST(BertConfigJson, BadConfigsAreValueErrorsNamingTheKey) {
  auto msg = [](const std::string& text) {
    try {
      BertConfig::from_json(text, "cfg.json");
    } catch (const ValueError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("{ not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(msg("[1, 2]").find("JSON object"), std::string::npos);
  EXPECT_NE(msg(R"({"model_type": "bert", "hidden_size": "32"})").find("'hidden_size'"),
            std::string::npos);
  EXPECT_NE(msg(R"({"model_type": "gpt2"})").find("gpt2"), std::string::npos);
  EXPECT_NE(msg(R"({"model_type": "bert", "position_embedding_type": "relative_key"})")
                .find("relative_key"),
            std::string::npos);
  EXPECT_NE(msg(R"({"model_type": "bert", "hidden_act": "mish"})").find("mish"), std::string::npos);
  EXPECT_NE(msg(R"({"model_type": "bert", "hidden_size": 30, "num_attention_heads": 4})")
                .find("multiple"),
            std::string::npos);
  EXPECT_NE(msg(R"({"model_type": "bert", "id2label": {"x": "A"}})").find("id2label"),
            std::string::npos);
  EXPECT_NE(msg("{}").find("model_type"), std::string::npos);
}

TEST(BertRegistry, UnknownArchitectureListsSupported) {
  BertConfig c = BertConfig::defaults(EncoderFamily::bert);
  c.hidden_size = 32;
  c.num_attention_heads = 4;
  c.num_hidden_layers = 1;
  c.intermediate_size = 16;
  c.vocab_size = 50;
  try {
    create_model(c, "BertForCausalLM");
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("BertForCausalLM"), std::string::npos);
    EXPECT_NE(m.find("ElectraForPreTraining"), std::string::npos);
  }
  EXPECT_THROW(create_model(c, "RobertaForMaskedLM"), ValueError);  // family mismatch
  EXPECT_EQ(create_model(c)->architecture(), "BertModel");
  EXPECT_EQ(create_model(c, "BertForMaskedLM")->head(), EncoderHead::masked_lm);
}

// ---- inputs -------------------------------------------------------------------------------------

TEST(BertInputs, LongerThanMaxPositionsIsAShapeError) {
  auto bert = create_model(fixture("bert_base"));
  auto roberta = create_model(fixture("roberta_base"));
  NoGradGuard no_grad;
  EncoderInputs in;
  in.input_ids = Tensor::full({1, 49}, 5, DType::i64);
  EXPECT_THROW(bert->forward(in), ShapeError);
  in.input_ids = Tensor::full({1, 48}, 5, DType::i64);
  EXPECT_NO_THROW(bert->forward(in));
  EXPECT_THROW(roberta->forward(in), ShapeError);  // positions start at pad + 1 = 2
  in.input_ids = Tensor::full({1, 46}, 5, DType::i64);
  EXPECT_NO_THROW(roberta->forward(in));
}

TEST(BertInputs, WrongShapesAndTypesAreErrors) {
  auto bert = create_model(fixture("bert_base"));
  NoGradGuard no_grad;
  EncoderInputs in;
  in.input_ids = Tensor::full({2, 5}, 5, DType::i64);
  in.attention_mask = Tensor::ones({2, 4}, DType::i64);
  EXPECT_THROW(bert->forward(in), ShapeError);
  in.attention_mask = Tensor();
  in.input_ids = Tensor::full({2, 5}, 5, DType::f32);
  EXPECT_THROW(bert->forward(in), DTypeError);
  in.input_ids = Tensor::full({5}, 5, DType::i64);
  EXPECT_THROW(bert->forward(in), ShapeError);
  in.input_ids = Tensor::full({1, 5}, 64, DType::i64);  // vocab_size 64
  EXPECT_THROW(bert->forward(in), IndexError);
  auto mc = create_model(fixture("bert_mc"));
  in.input_ids = Tensor::full({2, 5}, 5, DType::i64);
  EXPECT_THROW(mc->forward(in), ShapeError);  // needs [batch, choices, seq]
}

TEST(BertInputs, RobertaPositionIdsSkipPadding) {
  Tensor ids = Tensor::from_vector<int64_t>({0, 5, 6, 2, 1, 1}, {1, 6});
  EXPECT_EQ(create_position_ids_from_input_ids(ids, 1).to_vector<int64_t>(),
            (std::vector<int64_t>{2, 3, 4, 5, 1, 1}));
}

}  // namespace
}  // namespace lmf::models
