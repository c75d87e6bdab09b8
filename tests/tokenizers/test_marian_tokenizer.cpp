// MarianTokenizer against transformers' MarianTokenizer (tests/fixtures/marian_tokenizer,
// scripts/reference/gen_marian_tokenizer_goldens.py): ids of source and target encodings,
// tokens, padded batches and decoded strings, for a joint and a separate-vocabulary folder.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/marian.h"

namespace lmf::tok {
namespace {

namespace fs = std::filesystem;
const fs::path kDir = fs::path(LMF_FIXTURES_DIR) / "marian_tokenizer";

nlohmann::json goldens() {
  std::ifstream f(kDir / "goldens.json");
  EXPECT_TRUE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// A temporary folder: joint/'s SentencePiece models plus `name`/'s JSON files (as the golden
// script's assemble()).
struct TempFolder {
  fs::path path;
  explicit TempFolder(const std::string& name) {
    path = fs::temp_directory_path() /
           ("lmf_marian_tok_" + name + "_" +
            std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
    fs::remove_all(path);
    fs::create_directories(path);
    for (const char* f : {"source.spm", "target.spm"}) fs::copy_file(kDir / "joint" / f, path / f);
    for (const auto& e : fs::directory_iterator(kDir / name))
      fs::copy_file(e.path(), path / e.path().filename(), fs::copy_options::overwrite_existing);
  }
  ~TempFolder() { fs::remove_all(path); }
};

void check_folder(const MarianTokenizer& tok, const nlohmann::json& g) {
  EXPECT_EQ(tok.pad_token_id(), g["pad_token_id"].get<int64_t>());
  EXPECT_EQ(tok.eos_token_id(), g["eos_token_id"].get<int64_t>());
  EXPECT_EQ(tok.unk_token_id(), g["unk_token_id"].get<int64_t>());
  EXPECT_EQ(tok.vocab_size(), g["vocab_size"].get<size_t>());
  EXPECT_EQ(tok.size(), g["len"].get<size_t>());
  size_t n = 0;
  for (const auto& e : g["encodings"]) {
    const std::string text = e["text"];
    EXPECT_EQ(tok.encode_source(text), e["source_ids"].get<std::vector<int64_t>>()) << text;
    EXPECT_EQ(tok.encode_target(text), e["target_ids"].get<std::vector<int64_t>>()) << text;
    EXPECT_EQ(tok.tokenize_source(text), e["source_tokens"].get<std::vector<std::string>>())
        << text;
    ++n;
  }
  EXPECT_GT(n, 20u);
  n = 0;
  for (const auto& d : g["decodes"]) {
    auto ids = d["ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(tok.decode(ids, d["skip_special_tokens"].get<bool>()), d["text"].get<std::string>())
        << d["ids"].dump() << " skip=" << d["skip_special_tokens"];
    ++n;
  }
  EXPECT_GT(n, 100u);
  const auto& b = g["batch"];
  auto texts = b["texts"].get<std::vector<std::string>>();
  auto src = tok.encode_source_batch(texts);
  EXPECT_EQ(src.input_ids, b["input_ids"].get<std::vector<std::vector<int64_t>>>());
  EXPECT_EQ(src.attention_mask, b["attention_mask"].get<std::vector<std::vector<int64_t>>>());
  EXPECT_EQ(tok.encode_target_batch(texts).input_ids,
            b["labels"].get<std::vector<std::vector<int64_t>>>());
  auto decoded = tok.decode_batch(src.input_ids);
  ASSERT_EQ(decoded.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(decoded[i], tok.decode(src.input_ids[i]));
}

TEST(MarianTokenizer, JointVocabMatchesTransformers) {
  auto tok = MarianTokenizer::from_folder((kDir / "joint").string());
  EXPECT_FALSE(tok.separate_vocabs());
  EXPECT_EQ(tok.supported_language_codes(), (std::vector<std::string>{">>fr<<", ">>de<<"}));
  EXPECT_EQ(tok.source_lang(), "en");
  EXPECT_EQ(tok.target_lang(), "fr");
  check_folder(tok, goldens()["joint"]);
}

TEST(MarianTokenizer, SeparateVocabsMatchTransformers) {
  TempFolder dir("separate");
  auto tok = MarianTokenizer::from_folder(dir.path.string());
  EXPECT_TRUE(tok.separate_vocabs());
  EXPECT_TRUE(tok.supported_language_codes().empty());
  check_folder(tok, goldens()["separate"]);
}

// vocab.json without <pad> (appended after it), extra special tokens (<sep> appended, >>fr<< from
// the vocab, both split out and skipped), clean_up_tokenization_spaces.
TEST(MarianTokenizer, ExtraSpecialTokensMatchTransformers) {
  TempFolder dir("extra");
  auto tok = MarianTokenizer::from_folder(dir.path.string());
  check_folder(tok, goldens()["extra"]);
}

TEST(MarianTokenizer, Lookups) {
  auto tok = MarianTokenizer::from_folder((kDir / "joint").string());
  EXPECT_EQ(tok.token_to_id("</s>"), tok.eos_token_id());
  EXPECT_EQ(tok.token_to_id("<pad>"), tok.pad_token_id());
  EXPECT_EQ(tok.id_to_token(tok.unk_token_id()), "<unk>");
  EXPECT_FALSE(tok.token_to_id("no such piece").has_value());
  EXPECT_FALSE(tok.id_to_token(1 << 30).has_value());
  auto fr = tok.token_to_id(">>fr<<");
  ASSERT_TRUE(fr.has_value());
  EXPECT_EQ(tok.encode_source(">>fr<<"), (std::vector<int64_t>{*fr, tok.eos_token_id()}));
}

// Random texts mixing pieces of special tokens, language codes, accents, emoji and whitespace:
// never an error, always ending in </s>, decodable.
TEST(MarianTokenizer, RandomTextsEncodeAndDecode) {
  auto tok = MarianTokenizer::from_folder((kDir / "joint").string());
  const std::vector<std::string> parts = {
      "<",  ">", ">>",  "<<", ">>fr<<", "</s>", "<pad>",  "<unk",   "s>", " ", "  ", "\t",
      "\n", "a", "man", "é",  "😀",      "日",   "\u00a0", "\u200b", "ﬁ",  ".", ",",  "A"};
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    std::string text;
    const int n = static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) text += parts[rng() % parts.size()];
    for (bool target : {false, true}) {
      auto ids = target ? tok.encode_target(text) : tok.encode_source(text);
      ASSERT_FALSE(ids.empty()) << text;
      EXPECT_EQ(ids.back(), tok.eos_token_id()) << text;
      for (int64_t id : ids) EXPECT_LT(static_cast<size_t>(id), tok.size()) << text;
      EXPECT_NO_THROW(tok.decode(ids, false)) << text;
      EXPECT_NO_THROW(tok.decode(ids, true)) << text;
    }
  }
}

TEST(MarianTokenizer, BadInput) {
  auto tok = MarianTokenizer::from_folder((kDir / "joint").string());
  EXPECT_THROW(tok.encode_source(std::string("caf\xC3", 4)), ValueError);
  EXPECT_THROW(tok.encode_target(std::string("\xFF\xFE")), ValueError);
  EXPECT_THROW(tok.decode({1 << 30}), IndexError);
  EXPECT_THROW(tok.decode({-1}), IndexError);
  EXPECT_THROW(MarianTokenizer::from_folder((kDir / "no_such_folder").string()), IoError);

  // Each required file missing in turn: IoError naming it.
  for (const char* missing : {"source.spm", "target.spm", "vocab.json"}) {
    TempFolder dir("joint");
    fs::remove(dir.path / missing);
    try {
      MarianTokenizer::from_folder(dir.path.string());
      ADD_FAILURE() << "no error without " << missing;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    }
  }
  {
    TempFolder dir("separate");
    fs::remove(dir.path / "target_vocab.json");
    try {
      MarianTokenizer::from_folder(dir.path.string());
      ADD_FAILURE() << "no error without target_vocab.json";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("target_vocab.json"), std::string::npos) << e.what();
    }
  }
  {
    TempFolder dir("joint");
    std::ofstream(dir.path / "vocab.json") << "{\"a\": 1,";
    EXPECT_THROW(MarianTokenizer::from_folder(dir.path.string()), ValueError);
    std::ofstream(dir.path / "vocab.json") << "{\"a\": 0, \"b\": \"x\"}";
    EXPECT_THROW(MarianTokenizer::from_folder(dir.path.string()), ValueError);
    std::ofstream(dir.path / "vocab.json") << "{\"a\": 0}";  // no <unk>
    EXPECT_THROW(MarianTokenizer::from_folder(dir.path.string()), ValueError);
  }
  {
    TempFolder dir("joint");
    std::ofstream(dir.path / "source.spm") << "not a sentencepiece model";
    EXPECT_THROW(MarianTokenizer::from_folder(dir.path.string()), IoError);
  }
}

}  // namespace
}  // namespace lmf::tok
