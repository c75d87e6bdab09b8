// SentencePiece .model files through libsentencepiece: ids, pieces and decode identical to the
// Python sentencepiece package (unigram_spm_goldens.json); the legacy folder loader ("A </s>")
// and the HF-style Unigram conversion.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/sentencepiece.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/tokenizers/unigram.h"
#include "tokenizers/fixture_json.h"

namespace lmf::tok {
namespace {

const std::string kDir = std::string(LMF_FIXTURES_DIR) + "/tokenizers/";

TEST(UnigramSentencePiece, MatchesPythonSentencePiece) {
  auto g = read_fixture("unigram_spm_goldens.json");
  auto sp = SentencePiece::from_file(kDir + "unigram_spm.model");
  EXPECT_EQ(sp->vocab_size(), g["vocab_size"].get<size_t>());
  EXPECT_EQ(sp->unk_id(), g["unk_id"].get<uint32_t>());
  size_t n = 0;
  for (const auto& e : g["encodings"]) {
    std::string text = e["text"];
    auto toks = sp->encode(text);
    std::vector<uint32_t> ids;
    std::vector<std::string> pieces;
    for (auto& t : toks) {
      ids.push_back(t.id);
      pieces.push_back(t.value);
      EXPECT_LE(t.begin, t.end);
      EXPECT_LE(t.end, text.size());
    }
    EXPECT_EQ(ids, e["ids"].get<std::vector<uint32_t>>()) << text;
    EXPECT_EQ(pieces, e["pieces"].get<std::vector<std::string>>()) << text;
    EXPECT_EQ(sp->decode(ids), e["decoded"].get<std::string>()) << text;
    ++n;
  }
  EXPECT_GT(n, 100u);
  EXPECT_THROW(SentencePiece::from_file(kDir + "missing.model"), IoError);
  EXPECT_THROW(sp->decode(std::vector<uint32_t>{1u << 30}), IndexError);
}

TEST(UnigramSentencePiece, LegacyFolderAddsEos) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "lmf_spm_folder";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kDir + "unigram_spm.model", dir / "spiece.model",
                             std::filesystem::copy_options::overwrite_existing);
  // No converted class named (a T5Tokenizer folder is converted as transformers 5.25 does, see
  // test_t5_tokenizer.cpp): libsentencepiece runs the model itself and </s> is appended.
  std::ofstream(dir / "tokenizer_config.json") << R"({"eos_token": "</s>", "unk_token": "<unk>"})";
  auto tok = Tokenizer::from_pretrained(dir);
  auto sp = SentencePiece::from_file(kDir + "unigram_spm.model");
  auto g = read_fixture("unigram_spm_goldens.json");
  for (size_t i = 0; i < 30; ++i) {
    const auto& e = g["encodings"][i];
    // Special tokens written in the text are matched as added tokens (as transformers does).
    std::string text = e["text"];
    if (text.find("</s>") != std::string::npos || text.find("<unk>") != std::string::npos) {
      continue;
    }
    auto enc = tok.encode(e["text"].get<std::string>());
    auto want = e["ids"].get<std::vector<uint32_t>>();
    want.push_back(*sp->eos_id());
    EXPECT_EQ(enc.ids, want) << e["text"];
    EXPECT_EQ(tok.decode(enc.ids, true), e["decoded"].get<std::string>()) << e["text"];
  }
}

TEST(UnigramSentencePiece, ConvertsToUnigramPieces) {
  auto sp = SentencePiece::from_file(kDir + "unigram_spm.model");
  auto u = sp->to_unigram();
  EXPECT_EQ(u->vocab_size(), sp->vocab_size());
  EXPECT_TRUE(u->byte_fallback());
  EXPECT_EQ(u->token_to_id("<0x41>"), sp->token_to_id("<0x41>"));
  // Pieces of a pre-split word agree with libsentencepiece on the same "▁word" input.
  auto via_u = u->tokenize("\u2581the");
  ASSERT_FALSE(via_u.empty());
  EXPECT_EQ(via_u[0].value.substr(0, 3), "\u2581");
}

}  // namespace
}  // namespace lmf::tok
