// The PNG attention heatmap (tasks/heatmap_png.h): CRC-32 / Adler-32 against Python's zlib
// (scripts/reference/gen_png_goldens.py, tests/fixtures/heatmap_png/checksums.json); the file's
// chunk structure, every chunk CRC, the IHDR size and the token metadata; bad input. Decoding the
// image data with an independent inflater (Python's zlib) is in
// tests/cli/test_seq2seq_tools_cli.sh.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/core/error.h"
#include "lmforge/tasks/heatmap_png.h"

namespace {

using namespace lmf;

struct Chunk {
  std::string type, body;
  uint32_t crc = 0;
};

uint32_t be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) |
         (uint32_t(uint8_t(s[at + 2])) << 8) | uint32_t(uint8_t(s[at + 3]));
}

std::vector<Chunk> chunks(const std::string& png) {
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::vector<Chunk> out;
  for (size_t i = 8; i + 12 <= png.size();) {
    const uint32_t n = be32(png, i);
    EXPECT_LE(i + 12 + n, png.size());
    Chunk c{png.substr(i + 4, 4), png.substr(i + 8, n), be32(png, i + 8 + n)};
    const std::string typed = c.type + c.body;
    EXPECT_EQ(c.crc, tasks::png_crc32(reinterpret_cast<const uint8_t*>(typed.data()), typed.size()))
        << c.type;
    out.push_back(std::move(c));
    i += 12 + n;
  }
  return out;
}

std::vector<uint8_t> from_hex(const std::string& h) {
  std::vector<uint8_t> v;
  for (size_t i = 0; i + 1 < h.size(); i += 2) v.push_back(std::stoi(h.substr(i, 2), nullptr, 16));
  return v;
}

TEST(HeatmapPng, ChecksumsMatchZlib) {
  const nlohmann::json cases = nlohmann::json::parse(
      std::ifstream(std::string(LMF_FIXTURES_DIR) + "/heatmap_png/checksums.json"));
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    const std::vector<uint8_t> b = from_hex(c["hex"].get<std::string>());
    EXPECT_EQ(tasks::png_crc32(b.data(), b.size()), c["crc32"].get<uint32_t>()) << b.size();
    EXPECT_EQ(tasks::adler32(b.data(), b.size()), c["adler32"].get<uint32_t>()) << b.size();
  }
}

TEST(HeatmapPng, EncodesChunksAndSize) {
  tasks::RgbImage img;
  img.width = 37;
  img.height = 5;
  for (int64_t i = 0; i < img.width * img.height * 3; ++i) img.pixels.push_back(uint8_t(i / 7));
  const std::string png = tasks::encode_png(img, {{"note", "caf\xc3\xa9"}});
  const std::vector<Chunk> c = chunks(png);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0].type, "IHDR");
  EXPECT_EQ(be32(c[0].body, 0), 37u);
  EXPECT_EQ(be32(c[0].body, 4), 5u);
  EXPECT_EQ(c[0].body.substr(8), std::string("\x08\x02\x00\x00\x00", 5));
  EXPECT_EQ(c[1].type, "iTXt");
  EXPECT_EQ(c[1].body, std::string("note\0\0\0\0\0caf\xc3\xa9", 14));
  EXPECT_EQ(c[2].type, "IDAT");
  EXPECT_EQ(c[3].type, "IEND");
  // The zlib trailer is the Adler-32 of the filtered scanlines (filter byte 0 per row).
  std::vector<uint8_t> raw;
  for (int64_t y = 0; y < img.height; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), img.pixels.begin() + y * img.width * 3,
               img.pixels.begin() + (y + 1) * img.width * 3);
  }
  EXPECT_EQ(be32(c[2].body, c[2].body.size() - 4), tasks::adler32(raw.data(), raw.size()));
  EXPECT_EQ(uint8_t(c[2].body[0]), 0x78);
}

TEST(HeatmapPng, AttentionImageHasEveryPanelAndTheTokens) {
  tasks::Seq2SeqAttention att;
  const std::vector<std::string> src = {
      "\xe2\x96\x81"
      "Two",
      "\xe2\x96\x81"
      "dogs",
      "</s>"};
  const std::vector<std::string> tgt = {"<pad>",
                                        "\xe2\x96\x81"
                                        "Deux",
                                        "\xe2\x96\x81"
                                        "chiens"};
  for (int l = 0; l < 2; ++l) {
    att.encoder.push_back(Tensor::full({4, 3, 3}, 1.0 / 3));
    att.decoder.push_back(Tensor::full({4, 3, 3}, 0.5));
    att.cross.push_back(Tensor::full({4, 3, 3}, 0.25));
  }
  const std::string png = tasks::attention_heatmap_png(att, src, tgt, "Two dogs");
  const std::vector<Chunk> c = chunks(png);
  ASSERT_GE(c.size(), 4u);
  const uint32_t w = be32(c[0].body, 0), h = be32(c[0].body, 4);
  // 4 heads side by side, 3 kinds x 2 layers of panel rows: at least that many 16-pixel cells.
  EXPECT_GE(w, 4u * 3 * 16);
  EXPECT_GE(h, 6u * 3 * 16);
  EXPECT_LT(w, 2000u);
  const std::string& meta = c[1].body;
  ASSERT_EQ(c[1].type, "iTXt");
  const nlohmann::json j = nlohmann::json::parse(meta.substr(meta.find('\0') + 5));
  EXPECT_EQ(j["source_tokens"].get<std::vector<std::string>>(), src);
  EXPECT_EQ(j["target_tokens"].get<std::vector<std::string>>(), tgt);
  EXPECT_EQ(j["title"], "Two dogs");
}

TEST(HeatmapPng, BadInputIsAValueError) {
  tasks::RgbImage img;
  EXPECT_THROW(tasks::encode_png(img), ValueError);
  img.width = 2;
  img.height = 2;
  img.pixels.assign(5, 0);
  EXPECT_THROW(tasks::encode_png(img), ValueError);
  tasks::Seq2SeqAttention att;
  att.encoder.push_back(Tensor::full({1, 2, 2}, 0.5));
  EXPECT_THROW(tasks::attention_heatmap_png(att, {"a"}, {"b"}), ValueError);
}

}  // namespace
