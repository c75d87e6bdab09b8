// Unigram model: HF's documented example, unk fusing, byte fallback, errors, and zero
// differences against HF `tokenizers` on every golden piece (unigram_goldens.json).
#include <gtest/gtest.h>

#include "tokenizers/fixture_json.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/unigram.h"

namespace lmf::tok {
namespace {

std::vector<std::pair<std::string, double>> doc_pieces() {
  return {{"<unk>", 0.0}, {"a", 0.0},  {"b", 0.0},   {"c", 0.0},    {"d", 0.0},
          {"cd", 1.0},    {"ab", 2.0}, {"abc", 5.0}, {"abcd", 10.0}};
}

TEST(UnigramModel, HfDocumentedExample) {
  Unigram m(doc_pieces(), 0);
  EXPECT_EQ(m.encode("abcdacdxx"), (std::vector<std::string>{"abcd", "a", "cd", "xx"}));
  auto t = m.tokenize("abcdacdxx");
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[3].id, 0u);
  EXPECT_EQ(t[3].value, "xx");
  EXPECT_EQ(t[3].begin, 7u);
  EXPECT_EQ(t[3].end, 9u);
  EXPECT_TRUE(m.tokenize("").empty());
}

TEST(UnigramModel, ByteFallbackAndMissingUnk) {
  auto p = doc_pieces();
  p.emplace_back("<0xC3>", -5.0);
  p.emplace_back("<0xA9>", -5.0);
  Unigram m(p, 0, true);
  auto t = m.tokenize("aé");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[1].value, "<0xC3>");
  EXPECT_EQ(t[1].begin, 1u);
  EXPECT_EQ(t[1].end, 3u);  // every byte token spans the whole unknown piece, as HF
  EXPECT_EQ(t[2].value, "<0xA9>");
  EXPECT_EQ(m.tokenize("ax")[1].id, 0u);  // no byte piece for 'x': unk
  Unigram no_unk({{"a", -1.0}}, std::nullopt);
  EXPECT_EQ(no_unk.tokenize("aa").size(), 2u);
  EXPECT_THROW(no_unk.tokenize("ab"), ValueError);
  EXPECT_THROW(Unigram({{"a", -1.0}}, 3), ValueError);
}

TEST(UnigramModel, JsonLoading) {
  auto j = nlohmann::json::parse(
      R"({"type":"Unigram","unk_id":0,"vocab":[["<unk>",0],["a",-1.5],["ab",-1.0]]})");
  auto m = Unigram::from_json(j);
  EXPECT_EQ(m->vocab_size(), 3u);
  EXPECT_EQ(m->encode("aab"), (std::vector<std::string>{"a", "ab"}));
  EXPECT_EQ(m->token_to_id("ab"), 2u);
  EXPECT_EQ(m->id_to_token(1), "a");
  j["vocab"][1] = "a";
  EXPECT_THROW(Unigram::from_json(j), ValueError);
  j.erase("vocab");
  EXPECT_THROW(Unigram::from_json(j), ValueError);
}

TEST(UnigramModel, MatchesHfOnEveryGoldenPiece) {
  auto tj = read_fixture("unigram_tokenizer.json");
  auto gj = read_fixture("unigram_goldens.json");
  auto m = Unigram::from_json(tj["model"]);
  size_t n = 0, diffs = 0;
  for (const auto& g : gj["model_pieces"]) {
    std::string piece = g["piece"];
    auto toks = m->tokenize(piece);
    std::vector<uint32_t> ids;
    std::vector<std::string> vals;
    std::vector<std::vector<size_t>> offs;
    for (auto& t : toks) {
      ids.push_back(t.id);
      vals.push_back(t.value);
      offs.push_back({t.begin, t.end});
    }
    bool same = ids == g["ids"].get<std::vector<uint32_t>>() &&
                offs == g["offsets"].get<std::vector<std::vector<size_t>>>() &&
                vals == g["values"].get<std::vector<std::string>>();
    if (!same && diffs++ < 5) ADD_FAILURE() << "piece '" << piece << "' differs from HF";
    ++n;
  }
  EXPECT_GT(n, 500u);
  EXPECT_EQ(diffs, 0u);
}

}  // namespace
}  // namespace lmf::tok
