// Metaspace pre-tokenizer (splits and original offsets vs HF pre_tokenize_str for every prepend
// scheme) and decoder.
#include <gtest/gtest.h>

#include "tokenizers/fixture_json.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/tokenizers/metaspace.h"

namespace lmf::tok {
namespace {

size_t chars_before(std::string_view s, size_t byte) {
  size_t n = 0;
  for (size_t i = 0; i < byte && i < s.size(); ++i)
    n += (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
  return n;
}

// (piece, char offsets in the text) as HF's pre_tokenize_str reports them.
nlohmann::json pre_tokenize(const PreTokenizer& p, const std::string& text) {
  PreTokenizedString pts{NormalizedString(text)};
  p.pre_tokenize(pts);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : pts.splits()) {
    auto [b, e] = s.normalized.offsets_original();
    out.push_back({s.normalized.get(), {chars_before(text, b), chars_before(text, e)}});
  }
  return out;
}

PrependScheme scheme_of(const std::string& s) {
  return s == "first"   ? PrependScheme::First
         : s == "never" ? PrependScheme::Never
                        : PrependScheme::Always;
}

TEST(Metaspace, PreTokenizerMatchesHfForEveryScheme) {
  auto g = read_fixture("unigram_goldens.json");
  size_t n = 0;
  MetaspacePreTokenizer always;
  for (const auto& t : g["pretok"]) {
    EXPECT_EQ(pre_tokenize(always, t["text"]), t["pieces"]) << t["text"];
    ++n;
  }
  for (const auto& v : g["metaspace_variants"]) {
    MetaspacePreTokenizer p(U'\u2581', scheme_of(v["pre_tokenizer"]["prepend_scheme"]),
                            v["pre_tokenizer"]["split"].get<bool>());
    for (const auto& t : v["pretok"]) {
      EXPECT_EQ(pre_tokenize(p, t["text"]), t["pieces"]) << v["pre_tokenizer"] << t["text"];
      ++n;
    }
  }
  EXPECT_GT(n, 200u);
}

TEST(Metaspace, HandPickedSplits) {
  MetaspacePreTokenizer p;
  auto r = pre_tokenize(p, "Hey   friend!");
  EXPECT_EQ(
      r, nlohmann::json::parse(R"([["▁Hey",[0,3]],["▁",[3,4]],["▁",[4,5]],["▁friend!",[5,13]]])"));
  MetaspacePreTokenizer nosplit(U'_', PrependScheme::Never, false);
  EXPECT_EQ(pre_tokenize(nosplit, "a b"), nlohmann::json::parse(R"([["a_b",[0,3]]])"));
}

TEST(Metaspace, DecoderDropsOnlyTheFirstPrependedSpace) {
  MetaspaceDecoder d;
  EXPECT_EQ(d.decode({"▁Hey", "▁friend", "!", "▁▁x"}), "Hey friend!  x");
  MetaspaceDecoder never(U'\u2581', PrependScheme::Never);
  EXPECT_EQ(never.decode({"▁Hey", "▁friend"}), " Hey friend");
  EXPECT_EQ(d.decode({}), "");
}

}  // namespace
}  // namespace lmf::tok
