// Attention heatmaps as a PNG image (no image library): a minimal PNG encoder (RGB, one
// fixed-Huffman deflate block with run matches, CRC-32 and Adler-32) and a 3x5 bitmap font, used
// by `lmforge translate --attention-heatmap OUT.png`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lmforge/tasks/seq2seq.h"

namespace lmf::tasks {

// An RGB image, rows top to bottom, 3 bytes per pixel.
struct RgbImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;
};

// A PNG file (8-bit RGB, no interlace) of `image`, with optional text chunks: tEXt for Latin-1
// keywords/values, iTXt (UTF-8) for each `utf8_text` entry (keyword, text). ValueError for an
// empty image or a pixel buffer of the wrong size.
std::string encode_png(const RgbImage& image,
                       const std::vector<std::pair<std::string, std::string>>& utf8_text = {});

// PNG's CRC-32 (ISO 3309) and zlib's Adler-32, exposed for tests.
uint32_t png_crc32(const uint8_t* data, size_t n, uint32_t crc = 0);
uint32_t adler32(const uint8_t* data, size_t n);

// The heatmap image: for encoder self-, decoder self- and cross-attention one grid (a row of
// panels per layer, one panel per head), each panel titled "ENC L0 H1" / "DEC ..." / "CROSS ...",
// its rows (queries) and columns (keys) labelled by token index, white (0) to dark blue (1); then
// a colour bar and a legend listing the source and target tokens by index (ASCII capitals in the
// bitmap font; other characters as '?'). The exact tokens and the layout are also stored as JSON
// in an iTXt chunk "attention-tokens". ValueError as attention_heatmap_html.
std::string attention_heatmap_png(const Seq2SeqAttention& att,
                                  const std::vector<std::string>& source_tokens,
                                  const std::vector<std::string>& target_tokens,
                                  const std::string& title = "attention");

}  // namespace lmf::tasks
