// GPT-2 byte level: the byte map, the split pattern (hand scanner and PCRE2) against HF's
// pre_tokenize_str on the golden texts, and pattern corner cases.
#include <gtest/gtest.h>

#include "tokenizers/fixture_json.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/tokenizers/byte_level.h"

namespace lmf::tok {
namespace {

std::vector<std::string> split_strings(std::string_view s, bool pcre = false) {
  std::vector<Match> m;
  pcre ? gpt2_split_pcre2(s, m) : gpt2_split(s, m);
  std::vector<std::string> out;
  for (auto& x : m) out.emplace_back(s.substr(x.begin, x.end - x.begin));
  return out;
}

size_t chars_before(std::string_view s, size_t byte) {
  size_t n = 0;
  for (size_t i = 0; i < byte; ++i) n += (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
  return n;
}

TEST(ByteLevel, ByteMapIsGpt2s) {
  EXPECT_EQ(byte_level_char(' '), "Ġ");
  EXPECT_EQ(byte_level_char('\n'), "Ċ");
  EXPECT_EQ(byte_level_char('a'), "a");
  EXPECT_EQ(byte_level_char(0xAD), "Ń");
  EXPECT_EQ(byte_level_char(0), "Ā");
  for (int b = 0; b < 256; ++b) EXPECT_EQ(byte_level_byte(byte_level_cp(b)), b);
  EXPECT_EQ(byte_level_byte(U'€'), -1);
  EXPECT_EQ(to_byte_level("é"), "Ã©");
}

TEST(ByteLevel, PatternCornerCases) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split_strings("Hello  world"), (V{"Hello", " ", " world"}));
  EXPECT_EQ(split_strings("a   \n"), (V{"a", "   \n"}));
  EXPECT_EQ(split_strings("it's we're 'x''s"), (V{"it", "'s", " we", "'re", " '", "x", "''", "s"}));
  EXPECT_EQ(split_strings(" 123abc!!? ?"), (V{" 123", "abc", "!!?", " ?"}));
  EXPECT_EQ(split_strings("\tx"), (V{"\t", "x"}));
  EXPECT_EQ(split_strings("x\x85y"), (V{"x", "\x85", "y"}));  // NEL is \s for Oniguruma
  EXPECT_EQ(split_strings(std::string("a\xff\xfe b")), (V{"a", "\xff\xfe", " b"}));
  EXPECT_TRUE(split_strings("").empty());
}

TEST(ByteLevel, ScannerMatchesHfPreTokenizer) {
  auto g = read_fixture("bpe_goldens.json");
  size_t pieces = 0, pcre_diffs = 0;
  for (const auto& t : g["pretok"]) {
    std::string text = t["text"];
    std::vector<Match> m;
    gpt2_split(text, m);
    ASSERT_EQ(m.size(), t["pieces"].size()) << text;
    for (size_t i = 0; i < m.size(); ++i) {
      const auto& p = t["pieces"][i];
      std::string sub = text.substr(m[i].begin, m[i].end - m[i].begin);
      EXPECT_EQ(to_byte_level(sub), p[0].get<std::string>()) << text;
      EXPECT_EQ(chars_before(text, m[i].begin), p[1][0].get<size_t>()) << text;
      EXPECT_EQ(chars_before(text, m[i].end), p[1][1].get<size_t>()) << text;
      ++pieces;
    }
    std::vector<Match> m2;
    gpt2_split_pcre2(text, m2);
    bool same = m2.size() == m.size();
    for (size_t i = 0; same && i < m.size(); ++i)
      same = m[i].begin == m2[i].begin && m[i].end == m2[i].end;
    pcre_diffs += !same;
  }
  EXPECT_GT(pieces, 2000u);
  // PCRE2's \s lacks U+0085 and has U+001C..U+001F: only texts with those may differ.
  EXPECT_LE(pcre_diffs, 20u);
}

}  // namespace
}  // namespace lmf::tok
