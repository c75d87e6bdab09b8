// SentenceEmbedder on tiny random BERT folders (tests/fixtures/bert) given a small vocab.txt:
// folder layouts, pooling/normalize overrides, the pooler refusal, truncation and bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "lmforge/core/autograd.h"
#include "lmforge/ops/ops.h"
#include "lmforge/tasks/embed.h"

using namespace lmf;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A model folder: a tiny HF checkpoint (bert_base has a pooler, bert_mlm none) plus a 64-token
// WordPiece vocabulary matching its vocab_size.
fs::path make_folder(const std::string& name, const std::string& fixture) {
  const fs::path dir =
      fs::temp_directory_path() / ("lmf_embed_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path src = fs::path(LMF_FIXTURES_DIR) / "bert" / fixture;
  fs::copy_file(src / "config.json", dir / "config.json");
  fs::copy_file(src / "model.safetensors", dir / "model.safetensors");
  std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  for (char c = 'a'; c <= 'z'; ++c) vocab += std::string(1, c) + "\n";
  for (char c = 'a'; c <= 'z'; ++c) vocab += "##" + std::string(1, c) + "\n";
  for (const char* w : {"the", "cat", "dog", "sat", "on", "mat", "."})
    vocab += std::string(w) + "\n";
  write(dir / "vocab.txt", vocab);
  return dir;
}

// The same tokens through the model directly: hidden states [1, T, H] of one sentence.
Tensor hidden_of(const tasks::SentenceEmbedder& e, const std::string& text) {
  const auto enc = e.tokenize({text})[0];
  std::vector<int64_t> ids(enc.ids.begin(), enc.ids.end());
  auto m = models::create_model((fs::path(LMF_FIXTURES_DIR) / "bert" / "bert_base").string(), {});
  NoGradGuard g;
  return dynamic_cast<models::BertModel&>(*m).forward(
      Tensor::from_vector(ids, {1, static_cast<int64_t>(ids.size())}));
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.contiguous().to_vector<float>(), y = b.contiguous().to_vector<float>();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(double(x[i]) - y[i]));
  return m;
}

const std::vector<std::string> kTexts = {"the cat sat on the mat.", "dog", "a dog sat",
                                         "the the the cat cat dog", "zzz"};

}  // namespace

TEST(Embed, PlainFolderDefaultsToMeanPoolingWithoutNormalization) {
  const fs::path dir = make_folder("plain", "bert_base");
  auto e = tasks::SentenceEmbedder::from_pretrained(dir.string());
  EXPECT_FALSE(e.sentence_transformers_layout());
  EXPECT_FALSE(e.normalize());
  EXPECT_EQ(e.max_length(), 48);  // max_position_embeddings; no tokenizer_config.json
  Tensor v = e.encode(kTexts);
  ASSERT_EQ(v.shape(), (Shape{5, 32}));
  for (size_t i = 0; i < kTexts.size(); ++i) {
    Tensor h = hidden_of(e, kTexts[i]);
    Tensor expect = mean(h, {1});
    EXPECT_LE(max_abs_diff(v.narrow(0, static_cast<int64_t>(i), 1), expect), 1e-5) << kTexts[i];
  }
  fs::remove_all(dir);
}

TEST(Embed, BatchedEqualsSingleAndBatchSizeDoesNotMatter) {
  const fs::path dir = make_folder("batch", "bert_base");
  tasks::EmbedderOptions o;
  o.batch_size = 2;
  auto e2 = tasks::SentenceEmbedder::from_pretrained(dir.string(), o);
  auto e32 = tasks::SentenceEmbedder::from_pretrained(dir.string());
  Tensor a = e2.encode(kTexts), b = e32.encode(kTexts);
  EXPECT_LE(max_abs_diff(a, b), 1e-5);
  for (size_t i = 0; i < kTexts.size(); ++i)
    EXPECT_LE(max_abs_diff(a.narrow(0, static_cast<int64_t>(i), 1), e32.encode({kTexts[i]})), 1e-5);
  fs::remove_all(dir);
}

TEST(Embed, SentenceTransformersLayoutPoolingNormalizeAndOverrides) {
  const fs::path dir = make_folder("st", "bert_base");
  write(dir / "modules.json",
        R"([{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
            {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}])");
  write(dir / "1_Pooling" / "config.json",
        R"({"word_embedding_dimension":32,"pooling_mode_cls_token":true,
            "pooling_mode_mean_tokens":false,"pooling_mode_max_tokens":true})");
  write(dir / "sentence_bert_config.json", R"({"max_seq_length": 6, "do_lower_case": true})");
  auto e = tasks::SentenceEmbedder::from_pretrained(dir.string());
  EXPECT_TRUE(e.sentence_transformers_layout());
  EXPECT_TRUE(e.normalize());
  EXPECT_EQ(e.max_length(), 6);
  ASSERT_EQ(e.pooling(), (std::vector<tasks::Pooling>{tasks::Pooling::cls, tasks::Pooling::max}));
  EXPECT_EQ(e.dimension(), 64);
  // do_lower_case lower-cases before tokenizing; truncation keeps 6 tokens with [CLS] and [SEP].
  const auto enc = e.tokenize({"THE CAT SAT ON THE MAT."})[0];
  EXPECT_EQ(enc.size(), 6u);
  EXPECT_EQ(enc.tokens.front(), "[CLS]");
  EXPECT_EQ(enc.tokens[1], "the");
  EXPECT_EQ(enc.tokens.back(), "[SEP]");

  Tensor v = e.encode({"the cat sat"});
  Tensor h = hidden_of(e, "the cat sat");
  Tensor expect = tasks::l2_normalize(concat({h.select(1, 0), max(h, 1)}, 1));
  EXPECT_LE(max_abs_diff(v, expect), 1e-5);
  const auto row = v.to_vector<float>();
  double n = 0;
  for (float x : row) n += double(x) * x;
  EXPECT_NEAR(n, 1.0, 1e-5);

  tasks::EmbedderOptions o;
  o.pooling = tasks::Pooling::mean;
  o.normalize = false;
  o.max_length = 20;
  auto m = tasks::SentenceEmbedder::from_pretrained(dir.string(), o);
  EXPECT_EQ(m.dimension(), 32);
  EXPECT_EQ(m.max_length(), 20);
  EXPECT_LE(max_abs_diff(m.encode({"the cat sat"}), mean(h, {1})), 1e-5);
  fs::remove_all(dir);
}

TEST(Embed, PoolerPoolingUsesPoolerOutputAndRefusesAMissingPooler) {
  const fs::path with = make_folder("pooler", "bert_base");
  tasks::EmbedderOptions o;
  o.pooling = tasks::Pooling::pooler;
  auto e = tasks::SentenceEmbedder::from_pretrained(with.string(), o);
  Tensor v = e.encode({"the cat sat"});
  EXPECT_EQ(v.shape(), (Shape{1, 32}));
  for (float x : v.to_vector<float>()) EXPECT_LE(std::abs(x), 1.0f);  // tanh output

  // An MLM checkpoint has no pooler: pooler_output is refused with the reason and a way out.
  const fs::path mlm = make_folder("mlm", "bert_mlm");
  auto m = tasks::SentenceEmbedder::from_pretrained(mlm.string(), o);
  EXPECT_TRUE(m.load_report().pooler_missing);
  try {
    m.encode({"the cat sat"});
    FAIL() << "pooler pooling on a checkpoint without a pooler must be refused";
  } catch (const ValueError& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("pooler"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cls"), std::string::npos) << msg;
  }
  o.pooling = tasks::Pooling::cls;
  EXPECT_EQ(tasks::SentenceEmbedder::from_pretrained(mlm.string(), o).encode({"dog"}).size(1), 32);
  fs::remove_all(with);
  fs::remove_all(mlm);
}

TEST(Embed, ClearErrorsForBadFoldersAndInput) {
  EXPECT_THROW(tasks::SentenceEmbedder::from_pretrained("/nonexistent/model"), IoError);
  const fs::path dir = make_folder("errors", "bert_base");
  tasks::EmbedderOptions o;
  o.truncate = false;
  auto e = tasks::SentenceEmbedder::from_pretrained(dir.string(), o);
  std::string longer;
  for (int i = 0; i < 60; ++i) longer += "cat ";
  try {
    e.encode({"dog", longer});
    FAIL() << "over-long input without truncation must be refused";
  } catch (const ValueError& err) {
    EXPECT_NE(std::string(err.what()).find("text 2"), std::string::npos) << err.what();
  }
  EXPECT_THROW(e.encode({}), ValueError);
  EXPECT_THROW(e.encode({std::string("bad \xff utf8")}), Error);
  o.max_length = 1000;
  EXPECT_THROW(tasks::SentenceEmbedder::from_pretrained(dir.string(), o), ValueError);

  write(dir / "modules.json",
        R"([{"idx":0,"path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"path":"2_Dense","type":"sentence_transformers.models.Dense"}])");
  EXPECT_THROW(tasks::SentenceEmbedder::from_pretrained(dir.string()), ValueError);
  write(dir / "modules.json", "[{");
  EXPECT_THROW(tasks::SentenceEmbedder::from_pretrained(dir.string()), IoError);
  fs::remove_all(dir);
}
