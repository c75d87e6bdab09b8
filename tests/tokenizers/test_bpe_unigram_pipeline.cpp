// Full tokenizers (tokenizer.json -> encode/decode) against HF `tokenizers` goldens: byte-level
// BPE (GPT-2 style and RoBERTa-style), Unigram with Metaspace/NFKC (prepend schemes, split off,
// byte fallback). Zero differences in ids, type ids, offsets, masks, word ids and decoded text.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::tok {
namespace {

using json = nlohmann::json;

json read_fixture(const std::string& name) {
  std::ifstream f(std::string(LMF_FIXTURES_DIR) + "/tokenizers/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  return json::parse(ss.str());
}

// First difference between an encoding and its golden, or "" when identical.
std::string diff(const Tokenizer& tok, const Encoding& e, const json& g, bool with_special_decode) {
  if (e.ids != g["ids"].get<std::vector<uint32_t>>()) return "ids";
  if (e.type_ids != g["type_ids"].get<std::vector<uint32_t>>()) return "type_ids";
  std::vector<std::vector<size_t>> offs;
  for (auto& o : e.offsets) offs.push_back({o.first, o.second});
  if (offs != g["offsets"].get<std::vector<std::vector<size_t>>>()) return "offsets";
  if (e.special_tokens_mask != g["special_tokens_mask"].get<std::vector<uint32_t>>())
    return "special_tokens_mask";
  std::vector<int64_t> words;
  for (auto& w : e.word_ids) words.push_back(w ? int64_t(*w) : -1);
  if (words != g["word_ids"].get<std::vector<int64_t>>()) return "word_ids";
  if (tok.decode(e.ids, true) != g["decoded"].get<std::string>()) return "decoded";
  if (with_special_decode &&
      tok.decode(e.ids, false) != g["decoded_with_special"].get<std::string>())
    return "decoded_with_special";
  return "";
}

size_t check_all(const Tokenizer& tok, const json& single, const json& pair, const char* what) {
  size_t diffs = 0, n = 0;
  for (const auto& g : single) {
    std::string text = g["text"];
    std::string d = diff(tok, tok.encode(text), g, g.contains("decoded_with_special"));
    if (!d.empty() && diffs++ < 5)
      ADD_FAILURE() << what << ": " << d << " differ for '" << text << "'";
    ++n;
  }
  for (const auto& g : pair) {
    std::string a = g["text"], b = g["pair"];
    std::string d = diff(tok, tok.encode(a, b), g, false);
    if (!d.empty() && diffs++ < 5)
      ADD_FAILURE() << what << " pair: " << d << " differ for '" << a << "' / '" << b << "'";
    ++n;
  }
  EXPECT_EQ(diffs, 0u) << what << ": " << diffs << " of " << n << " inputs differ";
  return n;
}

TEST(BpePipeline, ByteLevelGpt2MatchesHf) {
  auto g = read_fixture("bpe_goldens.json");
  auto tok = Tokenizer::from_file(std::string(LMF_FIXTURES_DIR) + "/tokenizers/bpe_tokenizer.json");
  EXPECT_GT(check_all(tok, g["single"], g["pair"], "bpe"), 500u);
}

TEST(BpePipeline, RobertaStyleMatchesHf) {
  auto g = read_fixture("bpe_goldens.json");
  auto j = read_fixture("bpe_tokenizer.json");
  j["pre_tokenizer"] = g["roberta"]["pre_tokenizer"];
  j["post_processor"] = g["roberta"]["post_processor"];
  auto tok = Tokenizer::from_json(j.dump());
  EXPECT_GT(check_all(tok, g["roberta"]["single"], g["roberta"]["pair"], "roberta"), 150u);
}

TEST(BpePipeline, BatchEqualsSingleAndDecodeRoundTrips) {
  auto g = read_fixture("bpe_goldens.json");
  auto tok = Tokenizer::from_file(std::string(LMF_FIXTURES_DIR) + "/tokenizers/bpe_tokenizer.json");
  std::vector<std::string> texts;
  for (const auto& s : g["single"]) texts.push_back(s["text"]);
  auto batch = tok.encode_batch(texts, false);
  ASSERT_EQ(batch.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(batch[i].ids, tok.encode(texts[i], false).ids);
    EXPECT_EQ(tok.decode(batch[i].ids, false), texts[i]);  // byte level is lossless on UTF-8
  }
}

TEST(UnigramPipeline, MetaspaceNfkcMatchesHf) {
  auto g = read_fixture("unigram_goldens.json");
  auto tok =
      Tokenizer::from_file(std::string(LMF_FIXTURES_DIR) + "/tokenizers/unigram_tokenizer.json");
  EXPECT_GT(check_all(tok, g["single"], g["pair"], "unigram"), 400u);
}

TEST(UnigramPipeline, ByteFallbackMatchesHf) {
  auto g = read_fixture("unigram_goldens.json");
  auto j = read_fixture("unigram_tokenizer.json");
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    j["model"]["vocab"].push_back({name, -30.0});
  }
  j["model"]["byte_fallback"] = true;
  auto tok = Tokenizer::from_json(j.dump());
  check_all(tok, g["byte_fallback"]["single"], json::array(), "unigram byte_fallback");
}

TEST(UnigramPipeline, MetaspaceVariantsMatchHf) {
  auto g = read_fixture("unigram_goldens.json");
  for (const auto& v : g["metaspace_variants"]) {
    auto j = read_fixture("unigram_tokenizer.json");
    j["pre_tokenizer"] = v["pre_tokenizer"];
    j["decoder"] = v["decoder"];
    auto tok = Tokenizer::from_json(j.dump());
    check_all(tok, v["single"], v["pair"], v["pre_tokenizer"].dump().c_str());
  }
}

}  // namespace
}  // namespace lmf::tok
