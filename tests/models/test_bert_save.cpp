// save_pretrained / BertConfig::to_json: every HF fixture of tests/fixtures/bert round-trips
// byte-identically (config.json and model.safetensors as transformers 5.24 wrote them), models
// built and perturbed here are saved to the bytes HF loaded when tests/fixtures/save was made
// (scripts/reference/gen_save_goldens.py), and their reloads give HF's recorded outputs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <set>
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
// or HF, see Tiny/BertSaveFixtures/*_seeded_pooler) gives the same pooler_output.
TEST(BertSave, SeededPoolerIsSavedAndReloadsDeterministically) {
  const json golden = json::parse(read_text(bert_fixture("bert_mlm") + "/golden.json"));
  for (const char* arch : {"BertModel", "BertForPreTraining"}) {
    LoadOptions opt;
    opt.architecture = arch;
    opt.pooler_init_seed = 7;
    LoadReport first;
    auto model = create_model(bert_fixture("bert_mlm"), opt, &first);
    EXPECT_TRUE(first.pooler_initialized) << arch;
    TempDir tmp;
    save_pretrained(*model, tmp.str());
    const auto sd = io::load_safetensors(tmp.str() + "/model.safetensors");
    const std::string p = std::string(arch) == "BertModel" ? "" : "bert.";
    EXPECT_TRUE(sd.count(p + "pooler.dense.weight")) << arch;
    EXPECT_TRUE(sd.count(p + "pooler.dense.bias")) << arch;
    LoadReport rep;
    auto again = create_model(tmp.str(), {}, &rep);
    EXPECT_FALSE(rep.pooler_missing) << arch;
    EXPECT_TRUE(rep.missing_keys.empty()) << arch << ": " << rep.summary();
    NoGradGuard no_grad;
    const auto in = inputs_of(golden.at("inputs"), false);
    const ModelOutput a = model->forward(in), b = again->forward(in);
    EXPECT_EQ(a.pooler_output().to_vector<float>(), b.pooler_output().to_vector<float>()) << arch;
    if (a.seq_relationship_logits.defined())
      EXPECT_EQ(a.seq_relationship_logits.to_vector<float>(),
                b.seq_relationship_logits.to_vector<float>());
  }
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


// ---- models built here, loaded by transformers ---------------------------------------------------

// Minimal SHA-256 (FIPS 180-4) of the saved files, compared with what gen_save_goldens.py hashed.
std::string sha256_hex(const std::string& data) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
      0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
      0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
      0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
      0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
      0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
      0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
      0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::string m = data;
  const uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  m += static_cast<char>(0x80);
  while (m.size() % 64 != 56) m += '\0';
  for (int i = 7; i >= 0; --i) m += static_cast<char>((bits >> (8 * i)) & 0xff);
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  for (size_t off = 0; off < m.size(); off += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = (uint32_t(uint8_t(m[off + 4 * i])) << 24) |
             (uint32_t(uint8_t(m[off + 4 * i + 1])) << 16) |
             (uint32_t(uint8_t(m[off + 4 * i + 2])) << 8) | uint32_t(uint8_t(m[off + 4 * i + 3]));
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                          k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    const uint32_t add[8] = {a, b, c, d, e, f, g, hh};
    for (int i = 0; i < 8; ++i) h[i] += add[i];
  }
  return fmt::format("{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}", h[0], h[1], h[2], h[3],
                     h[4], h[5], h[6], h[7]);
}

TEST(BertSaveSha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

// One saved model: its HF class, config changes from a tiny config of its family, and the seed of
// lmforge's initialisation.
struct SaveCase {
  std::string name, architecture;
  EncoderFamily family;
  uint64_t seed;
  std::function<void(BertConfig&)> edit = [](BertConfig&) {};
};

const std::vector<SaveCase>& save_cases() {
  using F = EncoderFamily;
  static const std::vector<SaveCase> kCases = {
      {"bert_pretraining", "BertForPreTraining", F::bert, 11},
      {"bert_seqcls_labels", "BertForSequenceClassification", F::bert, 12,
       [](BertConfig& c) {
         c.id2label = {{0, "n\xc3\xa9gatif"}, {1, "positif"}, {2, "neutre"}};
         c.label2id = {{"n\xc3\xa9gatif", 0}, {"positif", 1}, {"neutre", 2}};
         c.num_labels = 3;
         c.problem_type = "single_label_classification";
       }},
      {"bert_mlm_untied", "BertForMaskedLM", F::bert, 13,
       [](BertConfig& c) { c.tie_word_embeddings = false; }},
      {"bert_base_seeded_pooler", "BertModel", F::bert, 14},  // see build_case
      {"bert_pretraining_seeded_pooler", "BertForPreTraining", F::bert, 15},
      {"roberta_mlm", "RobertaForMaskedLM", F::roberta, 21},
      {"roberta_tokcls", "RobertaForTokenClassification", F::roberta, 22,
       [](BertConfig& c) {
         c.num_labels = 5;
         c.classifier_dropout = 0.2;
         c.hidden_act_name = "gelu_new";
         c.hidden_act = Activation::gelu_tanh;
       }},
      {"albert_pretraining", "AlbertForPreTraining", F::albert, 31,
       [](BertConfig& c) { c.num_hidden_layers = 3; }},
      {"albert_qa", "AlbertForQuestionAnswering", F::albert, 32},
      {"electra_mlm", "ElectraForMaskedLM", F::electra, 41},
      {"electra_pretraining", "ElectraForPreTraining", F::electra, 42},
      {"electra_mc", "ElectraForMultipleChoice", F::electra, 43,
       [](BertConfig& c) { c.summary_first_dropout = 0.1; }},
  };
  return kCases;
}

BertConfig tiny_config(const SaveCase& sc) {
  BertConfig c = BertConfig::defaults(sc.family);
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.intermediate_size = 37;
  c.max_position_embeddings = 48;
  c.initializer_range = 0.1;
  if (c.embedding_size > 0) c.embedding_size = 16;
  sc.edit(c);
  return c;
}

// Adds a deterministic integer-hash perturbation (|d| <= 0.05) to every parameter except tied
// copies, so that biases and LayerNorm weights are not trivially 0 / 1.
void perturb(EncoderModel& m) {
  std::set<std::string> tied;
  for (const auto& [target, source] : m.tied_keys()) tied.insert(target);
  NoGradGuard no_grad;
  for (auto& [name, t] : m.state_dict()) {
    if (tied.count(name)) continue;
    uint64_t h = 1469598103934665603ull;
    for (char ch : name) h = (h ^ uint8_t(ch)) * 1099511628211ull;
    auto v = t.to_vector<float>();
    for (size_t i = 0; i < v.size(); ++i) {
      uint64_t x = h + 0x9e3779b97f4a7c15ull * (i + 1);
      x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ull;
      x ^= x >> 29;
      v[i] += static_cast<float>((static_cast<double>(x % 2001) - 1000.0) * 5e-5);
    }
    t.copy_(Tensor::from_vector(v, t.shape()));
  }
}

// Builds a case's model. *_seeded_pooler is the seed-002 rule: a BertForMaskedLM is saved,
// loaded back as the case's class with pooler_init_seed (BertForPreTraining: the NSP head is
// initialised as a missing key), and that model is the one saved, pooler included.
std::unique_ptr<EncoderModel> build_case(const SaveCase& sc) {
  BertConfig c = tiny_config(sc);
  manual_seed(sc.seed);
  if (sc.name.ends_with("_seeded_pooler")) {
    auto mlm = create_model(c, "BertForMaskedLM");
    perturb(*mlm);
    TempDir tmp;
    save_pretrained(*mlm, tmp.str());
    LoadOptions opt;
    opt.architecture = sc.architecture;
    opt.pooler_init_seed = 7;
    opt.zero_copy = false;  // the folder is removed below
    LoadReport rep;
    auto base = create_model(tmp.str(), opt, &rep);
    EXPECT_TRUE(rep.pooler_initialized);
    return base;
  }
  auto m = create_model(c, sc.architecture);
  perturb(*m);
  return m;
}

// Inputs: batch 2 x 7 tokens (x 3 choices), the second row padded, token types on BERT-style
// configs; written next to the saved folder for check_hf_load.py.
EncoderInputs case_inputs(const BertConfig& c, bool multiple_choice) {
  const int64_t b = 2, ch = multiple_choice ? 3 : 1, t = 7, rows = b * ch;
  std::vector<int64_t> ids(rows * t), mask(rows * t, 1), types(rows * t, 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < t; ++j) {
      int64_t id = 3 + (r * 17 + j * 11 + 5) % (c.vocab_size - 3);
      if (id == c.pad_token_id) id = c.pad_token_id + 1;
      const bool pad = r % 2 == 1 && j >= t - 2 - r % 3;
      ids[r * t + j] = pad ? c.pad_token_id : id;
      mask[r * t + j] = pad ? 0 : 1;
      types[r * t + j] = !pad && j >= 3 && c.type_vocab_size > 1 ? 1 : 0;
    }
  const Shape shape = multiple_choice ? Shape{b, ch, t} : Shape{b, t};
  EncoderInputs in;
  in.input_ids = Tensor::from_vector(ids, shape);
  in.attention_mask = Tensor::from_vector(mask, shape);
  if (c.type_vocab_size > 1) in.token_type_ids = Tensor::from_vector(types, shape);
  return in;
}

// The outputs under transformers' names for this model's class.
std::map<std::string, Tensor> named_outputs(const EncoderModel& m, const ModelOutput& o) {
  std::map<std::string, Tensor> r;
  const EncoderFamily f = m.config().family;
  switch (m.head()) {
    case EncoderHead::base:
      r["last_hidden_state"] = o.last_hidden_state;
      if (o.pooler.defined()) r["pooler_output"] = o.pooler;
      break;
    case EncoderHead::pretraining:
      if (f == EncoderFamily::electra) {
        r["logits"] = o.logits;
      } else {
        r["prediction_logits"] = o.logits;
        r[f == EncoderFamily::albert ? "sop_logits" : "seq_relationship_logits"] =
            o.seq_relationship_logits;
      }
      break;
    case EncoderHead::question_answering:
      r["start_logits"] = o.start_logits;
      r["end_logits"] = o.end_logits;
      break;
    default:
      r["logits"] = o.logits;
  }
  return r;
}

json tensor_json(const Tensor& t) {
  json j;
  j["shape"] = t.shape();
  if (is_floating(t.dtype()))
    j["data"] = t.to_vector<float>();
  else
    j["data"] = t.to_vector<int64_t>();
  return j;
}

json inputs_json(const EncoderInputs& in) {
  json j;
  j["input_ids"] = tensor_json(in.input_ids);
  j["attention_mask"] = tensor_json(in.attention_mask);
  if (in.token_type_ids.defined()) j["token_type_ids"] = tensor_json(in.token_type_ids);
  return j;
}

std::string save_fixture_dir(const std::string& name) {
  return std::string(LMF_FIXTURES_DIR) + "/save/" + name;
}

class BertSaveFixtures : public ::testing::TestWithParam<SaveCase> {};

// The model is built, saved and reloaded; the saved bytes are those transformers loaded with no
// missing or unexpected key when the fixture was made, and the reload's outputs equal HF's
// outputs on them (1e-5). With LMF_SAVE_FIXTURES_OUT=DIR the folders are written to DIR/<name>
// with inputs.json and lmforge_outputs.json (for gen_save_goldens.py / check_hf_load.py).
TEST_P(BertSaveFixtures, TransformersLoadsWhatLmforgeSaved) {
  const SaveCase& sc = GetParam();
  auto model = build_case(sc);
  const char* out_root = std::getenv("LMF_SAVE_FIXTURES_OUT");
  TempDir tmp;
  const std::string dir = out_root ? std::string(out_root) + "/" + sc.name : tmp.str();
  save_pretrained(*model, dir);
  LoadReport rep;
  LoadOptions strict;
  strict.strict = true;
  auto again = create_model(dir, strict, &rep);
  EXPECT_FALSE(rep.pooler_missing);
  expect_same_tensors(*model, *again);
  const bool mc = model->head() == EncoderHead::multiple_choice;
  const EncoderInputs in = case_inputs(model->config(), mc);
  NoGradGuard no_grad;
  const auto outputs = named_outputs(*again, again->forward(in));
  if (out_root) {
    json o;
    for (const auto& [k, t] : outputs) o[k] = tensor_json(t);
    std::ofstream(dir + "/inputs.json") << inputs_json(in).dump();
    std::ofstream(dir + "/lmforge_outputs.json") << o.dump();
    return;
  }
  const std::string expected_path = save_fixture_dir(sc.name) + "/expected.json";
  ASSERT_TRUE(fs::exists(expected_path))
      << expected_path << " is missing; run scripts/reference/gen_save_goldens.py";
  const json expected = json::parse(read_text(expected_path));
  EXPECT_EQ(expected.at("architecture"), sc.architecture);
  EXPECT_EQ(read_text(dir + "/config.json"), read_text(save_fixture_dir(sc.name) + "/config.json"));
  EXPECT_EQ(sha256_hex(read_text(dir + "/config.json")), expected.at("sha256").at("config.json"))
      << sc.name << ": config.json differs from the one transformers loaded";
  EXPECT_EQ(sha256_hex(read_text(dir + "/model.safetensors")),
            expected.at("sha256").at("model.safetensors"))
      << sc.name << ": model.safetensors differs from the one transformers loaded (if the "
      << "initialisation changed on purpose, rerun scripts/reference/gen_save_goldens.py)";
  for (const char* k : {"missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"})
    EXPECT_TRUE(expected.at("loading_info").at(k).empty()) << sc.name << ": HF " << k;
  EXPECT_EQ(inputs_json(in), expected.at("inputs"));
  const json& hf = expected.at("hf_outputs");
  EXPECT_EQ(hf.size(), outputs.size()) << hf.dump().substr(0, 200);
  for (const auto& [k, t] : outputs) {
    ASSERT_TRUE(hf.contains(k)) << sc.name << ": HF gave no " << k;
    const Tensor g = to_tensor(hf.at(k));
    ASSERT_EQ(t.shape(), g.shape()) << k;
    const auto x = t.to_vector<float>(), y = g.to_vector<float>();
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(double(x[i]) - y[i]));
    EXPECT_LE(worst, 1e-5) << sc.name << ": " << k << " vs transformers";
  }
}

INSTANTIATE_TEST_SUITE_P(Tiny, BertSaveFixtures, ::testing::ValuesIn(save_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace lmf::models
