// `lmforge tokenizer train` underneath: libsentencepiece's trainer with the Python trainer's
// options gives the Python trainer's pieces, scores and types (spm_goldens.json, sentencepiece
// 0.1.97 as linked), and the Marian folder is what transformers' save_pretrained writes and
// encodes as transformers does (marian_goldens.json);
// scripts/reference/gen_tokenizer_train_goldens.py.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tasks/tokenizer_train.h"
#include "lmforge/tokenizers/marian.h"
#include "lmforge/tokenizers/train_sentencepiece.h"

namespace lmf::tok {
namespace {

namespace fs = std::filesystem;
const fs::path kDir = fs::path(LMF_FIXTURES_DIR) / "tokenizer_train";
const fs::path kCorpus = fs::path(LMF_FIXTURES_DIR) / "marian_tokenizer";

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  EXPECT_TRUE(f.good()) << p;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("lmf_tok_train_" + name);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// The Python keyword arguments of a golden case as SentencePieceTrainOptions.
SentencePieceTrainOptions options_from(const nlohmann::json& kw) {
  SentencePieceTrainOptions o;
  for (auto it = kw.begin(); it != kw.end(); ++it) {
    const std::string& k = it.key();
    const auto& v = it.value();
    if (k == "model_type")
      o.model_type = v;
    else if (k == "vocab_size")
      o.vocab_size = v;
    else if (k == "character_coverage")
      o.character_coverage = v;
    else if (k == "num_threads")
      o.num_threads = v;
    else if (k == "user_defined_symbols")
      o.user_defined_symbols = v;
    else if (k == "pad_id")
      o.pad_id = v;
    else if (k == "normalization_rule_name")
      o.normalization_rule_name = v;
    else if (k == "byte_fallback")
      o.byte_fallback = v;
    else if (k == "split_digits")
      o.split_digits = v;
    else
      ADD_FAILURE() << "option " << k << " not mapped";
  }
  return o;
}

TEST(SentencePieceTrain, MatchesPythonTrainer) {
  auto g = nlohmann::json::parse(read(kDir / "spm_goldens.json"));
  size_t n = 0;
  for (const auto& c : g["cases"]) {
    const std::string name = c["name"];
    TempDir tmp(name);
    std::vector<std::string> files;
    for (const auto& f : c["files"]) files.push_back((kCorpus / f.get<std::string>()).string());
    auto opt = options_from(c["options"]);
    opt.extra.push_back("minloglevel=1");
    const std::string model = (tmp.path / "m.spm").string();
    train_sentencepiece(files, model, opt);
    sentencepiece::SentencePieceProcessor sp;
    ASSERT_TRUE(sp.Load(model).ok()) << name;
    const auto pieces = c["pieces"].get<std::vector<std::string>>();
    const auto scores = c["scores"].get<std::vector<float>>();
    const auto types = c["types"].get<std::vector<std::string>>();
    ASSERT_EQ(sp.GetPieceSize(), static_cast<int>(pieces.size())) << name;
    for (int i = 0; i < sp.GetPieceSize(); ++i) {
      EXPECT_EQ(sp.IdToPiece(i), pieces[i]) << name << " id " << i;
      EXPECT_EQ(sp.GetScore(i), scores[i]) << name << " id " << i;  // bit-identical
      std::string t = sp.IsControl(i)   ? "control"
                      : sp.IsUnknown(i) ? "unknown"
                      : sp.IsByte(i)    ? "byte"
                      : sp.IsUnused(i)  ? "unused"
                                        : "normal";
      EXPECT_EQ(t, types[i]) << name << " id " << i;
    }
    EXPECT_EQ(sp.unk_id(), c["ids"]["unk"].get<int>());
    EXPECT_EQ(sp.pad_id(), c["ids"]["pad"].get<int>());
    EXPECT_EQ(fs::exists(tmp.path / "m.spm.lmf-train.vocab"), false);
    ++n;
  }
  EXPECT_EQ(n, 3u);
}

TEST(SentencePieceTrain, MarianFolderAsTransformersSavesIt) {
  auto g = nlohmann::json::parse(read(kDir / "marian_goldens.json"));
  TempDir tmp("marian");
  // The command of gen_tokenizer_train_goldens.py's docstring, through the tasks API.
  tasks::TokenizerTrainRequest r;
  r.marian = true;
  r.files = {(kCorpus / "corpus.en").string()};
  r.target_files = {(kCorpus / "corpus.fr").string()};
  r.out_dir = tmp.path.string();
  r.spm.vocab_size = 300;
  r.spm.num_threads = 1;
  r.spm.normalization_rule_name = "identity";
  r.spm.extra = {"minloglevel=1"};
  r.marian_folder.language_codes = {">>fr<<"};
  r.marian_folder.source_lang = "en";
  r.marian_folder.target_lang = "fr";
  auto res = tasks::train_tokenizer(r);
  EXPECT_EQ(res.marian_vocab, g["vocab_size"].get<size_t>());
  EXPECT_EQ(read(tmp.path / "vocab.json"), g["saved_vocab_json"].get<std::string>());
  EXPECT_EQ(read(tmp.path / "tokenizer_config.json"),
            g["saved_tokenizer_config_json"].get<std::string>());
  for (const char* f : {"source.spm", "target.spm"}) {
    sentencepiece::SentencePieceProcessor a, b;
    ASSERT_TRUE(a.Load((tmp.path / f).string()).ok());
    ASSERT_TRUE(b.Load((kDir / "marian" / f).string()).ok());
    ASSERT_EQ(a.GetPieceSize(), b.GetPieceSize()) << f;
    for (int i = 0; i < a.GetPieceSize(); ++i) {
      EXPECT_EQ(a.IdToPiece(i), b.IdToPiece(i)) << f << " " << i;
      EXPECT_EQ(a.GetScore(i), b.GetScore(i)) << f << " " << i;
    }
  }
  for (const auto& dir : {tmp.path, kDir / "marian"}) {
    auto tok = MarianTokenizer::from_folder(dir.string());
    EXPECT_EQ(tok.pad_token_id(), g["pad_token_id"].get<int64_t>());
    EXPECT_EQ(tok.eos_token_id(), g["eos_token_id"].get<int64_t>());
    EXPECT_EQ(tok.unk_token_id(), g["unk_token_id"].get<int64_t>());
    for (const auto& e : g["encodings"]) {
      const std::string text = e["text"];
      EXPECT_EQ(tok.encode_source(text), e["source_ids"].get<std::vector<int64_t>>()) << text;
      auto tgt = tok.encode_target(text);
      EXPECT_EQ(tgt, e["target_ids"].get<std::vector<int64_t>>()) << text;
      EXPECT_EQ(tok.decode(tgt), e["decoded"].get<std::string>()) << text;
      EXPECT_EQ(tok.decode(tgt, false), e["decoded_special"].get<std::string>()) << text;
    }
  }
}

TEST(SentencePieceTrain, BadInput) {
  TempDir tmp("bad");
  SentencePieceTrainOptions o;
  o.extra = {"minloglevel=2"};
  o.vocab_size = 100;
  const std::string en = (kCorpus / "corpus.en").string(), model = (tmp.path / "m.model").string();
  EXPECT_THROW(train_sentencepiece({}, model, o), ValueError);
  EXPECT_THROW(train_sentencepiece({(tmp.path / "missing.txt").string()}, model, o), IoError);
  std::ofstream(tmp.path / "empty.txt").close();
  EXPECT_THROW(train_sentencepiece({(tmp.path / "empty.txt").string()}, model, o), ValueError);
  std::ofstream(tmp.path / "a,b.txt") << "a comma in the file name\n";
  EXPECT_THROW(train_sentencepiece({(tmp.path / "a,b.txt").string()}, model, o), ValueError);
  auto bad = o;
  bad.model_type = "wordpiece";
  EXPECT_THROW(train_sentencepiece({en}, model, bad), ValueError);
  bad = o;
  bad.character_coverage = 1.5;
  EXPECT_THROW(train_sentencepiece({en}, model, bad), ValueError);
  bad = o;
  bad.vocab_size = 1000000;  // more pieces than the corpus has: the trainer's own error
  EXPECT_THROW(train_sentencepiece({en}, model, bad), ValueError);
  bad = o;
  bad.extra.push_back("no_equals_sign");
  EXPECT_THROW(train_sentencepiece({en}, model, bad), ValueError);

  tasks::TokenizerTrainRequest r;
  r.files = {en};
  r.out_dir = tmp.path.string();
  r.type = "wordpiece-ish";  // unknown kind
  EXPECT_THROW(tasks::train_tokenizer(r), ValueError);
  r.type = "sentencepiece";
  r.marian = true;  // no target files
  EXPECT_THROW(tasks::train_tokenizer(r), ValueError);
  r.marian = false;
  r.target_files = {en};
  EXPECT_THROW(tasks::train_tokenizer(r), ValueError);
  MarianFolderOptions mo;
  mo.language_codes = {"fr"};
  EXPECT_THROW(write_marian_folder(tmp.path.string(), en, en, mo), ValueError);
}

}  // namespace
}  // namespace lmf::tok
