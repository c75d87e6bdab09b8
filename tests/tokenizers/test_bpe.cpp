// BPE model: HF semantics on hand-made vocabularies, and zero differences against HF `tokenizers`
// on every pre-tokenized piece of the golden texts (bpe_goldens.json, byte-level GPT-2 style).
#include <gtest/gtest.h>

#include "tokenizers/fixture_json.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/bpe.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::tok {
namespace {

std::vector<std::string> values(const std::vector<Token>& ts) {
  std::vector<std::string> v;
  for (auto& t : ts) v.push_back(t.value);
  return v;
}

Vocab small_vocab() {
  return {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"c", 3}, {"ab", 4}, {"abc", 5}, {"bc", 6}};
}

TEST(BpeModel, MergesByRankNotByPosition) {
  // "bc" has a better rank than "ab": "abc" -> a + bc (no "abc" merge from a+bc).
  BPE m(small_vocab(), {{"b", "c"}, {"a", "b"}});
  auto t = m.tokenize("abc");
  EXPECT_EQ(values(t), (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(t[1].begin, 1u);
  EXPECT_EQ(t[1].end, 3u);
  BPE m2(small_vocab(), {{"a", "b"}, {"ab", "c"}});
  EXPECT_EQ(values(m2.tokenize("abcab")), (std::vector<std::string>{"abc", "ab"}));
}

TEST(BpeModel, UnknownCharsUnkFuseAndDrop) {
  BpeOptions o;
  o.unk_token = "<unk>";
  BPE m(small_vocab(), {{"a", "b"}}, o);
  auto t = m.tokenize("axyb");
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[1].id, 0u);
  EXPECT_EQ(t[1].begin, 1u);
  EXPECT_EQ(t[1].end, 2u);
  o.fuse_unk = true;
  BPE f(small_vocab(), {{"a", "b"}}, o);
  t = f.tokenize("axéb");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[1].id, 0u);
  EXPECT_EQ(t[1].begin, 1u);
  EXPECT_EQ(t[1].end, 4u);  // 'x' + 2-byte 'é'
  BPE none(small_vocab(), {{"a", "b"}});
  EXPECT_EQ(values(none.tokenize("axb")), (std::vector<std::string>{"ab"}));  // x dropped
}

TEST(BpeModel, ByteFallbackUsesHexTokens) {
  Vocab v = small_vocab();
  v["<0xC3>"] = 10;
  v["<0xA9>"] = 11;
  BpeOptions o;
  o.byte_fallback = true;
  o.unk_token = "<unk>";
  BPE m(v, {}, o);
  auto t = m.tokenize("aéz");
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[1].value, "<0xC3>");
  EXPECT_EQ(t[2].value, "<0xA9>");
  EXPECT_EQ(t[2].begin, 2u);
  EXPECT_EQ(t[3].id, 0u);  // 'z' has no byte tokens: unk
}

TEST(BpeModel, PrefixSuffixAndIgnoreMerges) {
  Vocab v{{"a", 0},  {"##b", 1},       {"##c</w>", 2}, {"a##b", 9},
          {"ab", 3}, {"ab##c</w>", 4}, {"abc</w>", 5}, {"abc", 6}};
  BpeOptions o;
  o.continuing_subword_prefix = "##";
  o.end_of_word_suffix = "</w>";
  BPE m(v, {{"a", "##b"}, {"ab", "##c</w>"}}, o);
  EXPECT_EQ(values(m.tokenize("abc")), (std::vector<std::string>{"abc</w>"}));
  BpeOptions g;
  g.ignore_merges = true;
  BPE im(small_vocab(), {}, g);
  EXPECT_EQ(values(im.tokenize("abc")), (std::vector<std::string>{"abc"}));
  EXPECT_EQ(values(im.tokenize("cab")), (std::vector<std::string>{"c", "a", "b"}));
}

TEST(BpeModel, RejectsDropoutAndBadMerges) {
  auto j = nlohmann::json::parse(
      R"({"type":"BPE","dropout":0.1,"vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]})");
  EXPECT_THROW(BPE::from_json(j), ValueError);
  j["dropout"] = nullptr;
  EXPECT_EQ(BPE::from_json(j)->tokenize("ab").size(), 1u);
  j["merges"] = nlohmann::json::array({nlohmann::json::array({"a", "b"})});
  EXPECT_EQ(BPE::from_json(j)->tokenize("ab").size(), 1u);
  j["merges"] = {"a c"};
  EXPECT_THROW(BPE::from_json(j), ValueError);
  j["merges"] = {"a b c"};
  EXPECT_THROW(BPE::from_json(j), ValueError);
  j.erase("merges");
  EXPECT_THROW(BPE::from_json(j), ValueError);
}

TEST(BpeModel, LegacyVocabAndMergesFiles) {
  std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/vocab.json") << R"({"a":0,"b":1,"ab":2,"c":3})";
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\na b\r\n";
  auto m = BPE::from_files(dir + "/vocab.json", dir + "/merges.txt");
  EXPECT_EQ(values(m->tokenize("abc")), (std::vector<std::string>{"ab", "c"}));
  EXPECT_THROW(BPE::from_files(dir + "/missing.json", dir + "/merges.txt"), IoError);
}

TEST(BpeModel, MatchesHfOnEveryGoldenPiece) {
  auto tj = read_fixture("bpe_tokenizer.json");
  auto gj = read_fixture("bpe_goldens.json");
  auto m = BPE::from_json(tj["model"]);
  size_t n = 0, diffs = 0;
  for (int round = 0; round < 2; ++round) {  // the second round is served by the word cache
    for (const auto& g : gj["model_pieces"]) {
      std::string piece = g["piece"];
      auto toks = m->tokenize(piece);
      std::vector<uint32_t> ids;
      std::vector<std::vector<size_t>> offs;
      for (auto& t : toks) {
        ids.push_back(t.id);
        offs.push_back({t.begin, t.end});
      }
      bool same = ids == g["ids"].get<std::vector<uint32_t>>() &&
                  offs == g["offsets"].get<std::vector<std::vector<size_t>>>() &&
                  values(toks) == g["values"].get<std::vector<std::string>>();
      if (!same && diffs++ < 5) ADD_FAILURE() << "piece '" << piece << "' differs from HF";
      ++n;
    }
  }
  EXPECT_GT(n, 1000u);
  EXPECT_EQ(diffs, 0u);
  EXPECT_EQ(m->token_to_id("<s>"), 0u);
  EXPECT_EQ(m->id_to_token(0), "<s>");
  EXPECT_FALSE(m->id_to_token(1u << 30).has_value());
}

// A RoBERTa folder with only vocab.json + merges.txt (+ configs) encodes like the tokenizer.json
// with RobertaProcessing that produced the RoBERTa goldens.
TEST(BpeModel, LegacyRobertaFolderMatchesHfGoldens) {
  auto tj = read_fixture("bpe_tokenizer.json");
  auto gj = read_fixture("bpe_goldens.json");
  auto dir = std::filesystem::path(::testing::TempDir()) / "lmf_roberta_folder";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "vocab.json") << tj["model"]["vocab"].dump();
  {
    std::ofstream m(dir / "merges.txt");
    m << "#version: 0.2\n";
    for (const auto& e : tj["model"]["merges"])
      m << (e.is_string() ? e.get<std::string>()
                          : e[0].get<std::string>() + " " + e[1].get<std::string>())
        << "\n";
  }
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"tokenizer_class": "RobertaTokenizer", "add_prefix_space": true})";
  std::ofstream(dir / "special_tokens_map.json")
      << R"({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
            "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"})";
  auto tok = Tokenizer::from_pretrained(dir);
  size_t n = 0;
  for (const auto& g : gj["roberta"]["single"]) {
    auto e = tok.encode(g["text"].get<std::string>());
    EXPECT_EQ(e.ids, g["ids"].get<std::vector<uint32_t>>()) << g["text"];
    std::vector<std::vector<size_t>> offs;
    for (auto& o : e.offsets) offs.push_back({o.first, o.second});
    EXPECT_EQ(offs, g["offsets"].get<std::vector<std::vector<size_t>>>()) << g["text"];
    EXPECT_EQ(tok.decode(e.ids, true), g["decoded"].get<std::string>());
    ++n;
  }
  EXPECT_GT(n, 100u);
}

}  // namespace
}  // namespace lmf::tok
