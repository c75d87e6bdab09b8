// A T5 tokenizer in both forms transformers 5.25 reads: tokenizer.json (Precompiled normalizer,
// WhitespaceSplit + Metaspace, Unigram, "$A </s>", <extra_id_N> added tokens) and a legacy folder
// with spiece.model + tokenizer_config.json (extra_ids). Ids, tokens and decode against
// T5Tokenizer (goldens: scripts/reference/gen_t5_goldens.py -> tests/fixtures/t5/tokenizer/).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::tok {
namespace {

const std::string kDir = std::string(LMF_FIXTURES_DIR) + "/t5/tokenizer/";

nlohmann::json t5_tokenizer_golden() {
  std::ifstream f(kDir + "golden.json");
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

class T5Tokenizer : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Folders, T5Tokenizer, ::testing::Values("fast", "slow"));

TEST_P(T5Tokenizer, EncodesAndDecodesAsTransformers) {
  const nlohmann::json g = t5_tokenizer_golden();
  const Tokenizer tok = Tokenizer::from_pretrained(kDir + GetParam());
  EXPECT_EQ(tok.vocab_size(), g.at("vocab_size").get<size_t>());
  EXPECT_EQ(tok.token_to_id("<extra_id_0>"), g.at("extra_id_0").get<uint32_t>());
  EXPECT_EQ(tok.token_to_id("</s>"), 1u);
  EXPECT_EQ(tok.token_to_id("<pad>"), 0u);
  ASSERT_GE(g.at("cases").size(), 8u);
  for (const auto& c : g.at("cases")) {
    const std::string text = c.at("text");
    const Encoding e = tok.encode(text);
    const auto ids = c.at("ids").get<std::vector<uint32_t>>();
    EXPECT_EQ(e.ids, ids) << text;
    std::vector<std::string> tokens;  // convert_ids_to_tokens (an unknown piece is <unk>)
    for (uint32_t id : e.ids) tokens.push_back(tok.id_to_token(id).value_or("?"));
    EXPECT_EQ(tokens, c.at("tokens").get<std::vector<std::string>>()) << text;
    EXPECT_EQ(tok.decode(ids, false), c.at("decoded").get<std::string>()) << text;
    EXPECT_EQ(tok.decode(ids, true), c.at("decoded_skip").get<std::string>()) << text;
  }
}

}  // namespace
}  // namespace lmf::tok
