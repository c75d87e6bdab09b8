// Unit tests of the tokenizer framework: alignments, invalid UTF-8, errors, batch encoding,
// truncation limits, decode clean-up.
#include <gtest/gtest.h>

#include <filesystem>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/normalized_string.h"
#include "lmforge/tokenizers/pattern.h"
#include "lmforge/tokenizers/tokenizer.h"
#include "lmforge/tokenizers/unicode.h"

namespace {

using namespace lmf::tok;
const std::filesystem::path kDir = std::filesystem::path(LMF_FIXTURES_DIR) / "tokenizers";

Tokenizer trained() {
  return Tokenizer::from_file(kDir / "wp_trained_a.json");
}

TEST(TokNormalizedString, AlignmentsSurviveNfdFilterAndLowercase) {
  NormalizedString s("Éa İb");
  s.nfd();
  s.filter([](char32_t c) { return !is_nonspacing_mark(c); });
  s.lowercase();
  EXPECT_EQ(s.get(), "ea ib");
  // 'e' came from the two bytes of 'É', 'i' from the two bytes of 'İ'.
  EXPECT_EQ(s.convert_normalized(0, 1), (Offsets{0, 2}));
  EXPECT_EQ(s.convert_normalized(3, 4), (Offsets{4, 6}));
  auto parts = s.split(find_matches(s.get(), std::string_view(" ")), SplitBehavior::Removed);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[1].get(), "ib");
  EXPECT_EQ(parts[1].offsets_original(), (Offsets{4, 7}));
  NormalizedString t("\u0130x");  // lowercase of U+0130 is two chars, both aligned to it
  t.lowercase();
  EXPECT_EQ(t.get(), "i\u0307x");
  EXPECT_EQ(t.convert_normalized(0, 3), (Offsets{0, 2}));
}

TEST(TokNormalizedString, SplitBehaviours) {
  NormalizedString s("a-b--c");
  auto m = find_matches(s.get(), std::string_view("-"));
  auto get = [&](SplitBehavior b) {
    std::vector<std::string> v;
    for (auto& p : s.split(m, b)) v.push_back(p.get());
    return v;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(get(SplitBehavior::Removed), (V{"a", "b", "c"}));
  EXPECT_EQ(get(SplitBehavior::Isolated), (V{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(get(SplitBehavior::MergedWithPrevious), (V{"a-", "b-", "-", "c"}));
  EXPECT_EQ(get(SplitBehavior::MergedWithNext), (V{"a", "-b", "-", "-c"}));
  EXPECT_EQ(get(SplitBehavior::Contiguous), (V{"a", "-", "b", "--", "c"}));
}

TEST(TokUtf8, SanitizeReplacesMaximalSubpartsLikePython) {
  // Python: b"...".decode("utf-8", "replace")
  EXPECT_EQ(sanitize_utf8("a\xE2\x82"
                          "b"),
            "a\uFFFDb");
  EXPECT_EQ(sanitize_utf8("\xF0\x80"), "\uFFFD\uFFFD");
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\uFFFD\uFFFD");
  EXPECT_EQ(sanitize_utf8("ok \xC3\xA9"), "ok \xC3\xA9");
  EXPECT_FALSE(is_valid_utf8("\xFF"));
}

TEST(TokTokenizer, InvalidUtf8IsReplacedOrRejected) {
  Tokenizer t = trained();
  const std::string bad = "caf\xC3 au lait \xFF\xFE end";
  const Encoding e = t.encode(bad);
  const Encoding want = t.encode(sanitize_utf8(bad));
  EXPECT_EQ(e.ids, want.ids);
  EXPECT_EQ(e.offsets, want.offsets);
  t.set_invalid_utf8(InvalidUtf8::Throw);
  EXPECT_THROW(t.encode(bad), lmf::ValueError);
  EXPECT_NO_THROW(t.encode("valid"));
}

TEST(TokTokenizer, LoaderErrorsNameTheProblem) {
  EXPECT_THROW(Tokenizer::from_file(kDir / "missing.json"), lmf::IoError);
  EXPECT_THROW(Tokenizer::from_json("{"), lmf::ValueError);
  EXPECT_THROW(Tokenizer::from_json("[]"), lmf::ValueError);
  try {
    Tokenizer::from_json(R"({"model": {"type": "WordPiece", "vocab": {"a": -1}}})");
    FAIL() << "expected ValueError";
  } catch (const lmf::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("model.vocab['a']"), std::string::npos) << e.what();
  }
  try {
    Tokenizer::from_json(R"({"model": {"type": "Mystery"}})");
    FAIL() << "expected ValueError";
  } catch (const lmf::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("Mystery"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tokenizer::from_json(R"({"model": {"type": "WordPiece", "vocab": {}},
      "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}, "behavior": "Removed"}})"),
               lmf::ValueError);
  EXPECT_THROW(Tokenizer::from_pretrained(kDir / "no-such-dir"), lmf::IoError);
}

TEST(TokTokenizer, UnknownTokenMissingFromVocabThrows) {
  Tokenizer t = Tokenizer::from_json(
      R"({"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"a": 0}}})");
  EXPECT_EQ(t.encode("a").ids, std::vector<uint32_t>{0});
  EXPECT_THROW(t.encode("b"), lmf::ValueError);
}

TEST(TokTokenizer, BatchMatchesSequentialAndPadsToLongest) {
  Tokenizer t = trained();
  std::vector<std::string> texts;
  for (int i = 0; i < 64; ++i) texts.push_back("sample number " + std::to_string(i * 7919) + " x");
  texts.push_back("");
  PaddingParams p;
  p.pad_id = *t.token_to_id("[PAD]");
  t.set_padding(p);
  const auto batch = t.encode_batch(texts);
  size_t longest = 0;
  t.set_padding(std::nullopt);
  for (size_t i = 0; i < texts.size(); ++i) {
    const Encoding e = t.encode(texts[i]);
    longest = std::max(longest, e.size());
    ASSERT_GE(batch[i].size(), e.size());
    EXPECT_TRUE(std::equal(e.ids.begin(), e.ids.end(), batch[i].ids.begin())) << i;
  }
  for (const auto& e : batch) EXPECT_EQ(e.size(), longest);
}

TEST(TokTokenizer, StrideMustBeSmallerThanWindow) {
  Tokenizer t = trained();
  t.set_truncation(TruncationParams{4, TruncationStrategy::LongestFirst, 2, Direction::Right});
  EXPECT_THROW(t.encode("one two three four five six seven"), lmf::ValueError);
  t.set_truncation(TruncationParams{1, TruncationStrategy::LongestFirst, 0, Direction::Right});
  EXPECT_THROW(t.encode("one two"), lmf::ValueError);  // fewer than the 2 special tokens
  t.set_truncation(TruncationParams{8, TruncationStrategy::OnlySecond, 0, Direction::Right});
  EXPECT_THROW(t.encode("one two three four five six seven eight nine"), lmf::ValueError);
}

TEST(TokTokenizer, DecodeCleanUpAndSpecialTokens) {
  EXPECT_EQ(clean_up_tokenization("hello , world ! it ' s i do n't"), "hello, world! it's i don't");
  Tokenizer t = trained();
  const Encoding e = t.encode("the world .");
  EXPECT_EQ(t.decode(e.ids, true), "the world.");
  EXPECT_EQ(t.decode(e.ids, false), "[CLS] the world. [SEP]");
  const std::vector<uint32_t> unknown_id{999999};
  EXPECT_EQ(t.decode(unknown_id), "");
}

TEST(TokTokenizer, CharOffsetsCountCodePoints) {
  Tokenizer t = trained();
  const Encoding b = t.encode("日本 world", true, OffsetType::Byte);
  const Encoding c = t.encode("日本 world");
  ASSERT_EQ(b.size(), c.size());
  const auto last = c.size() - 2;  // before [SEP]
  EXPECT_EQ(c.offsets[last].second, 8u);
  EXPECT_EQ(b.offsets[last].second, 12u);
}

}  // namespace
