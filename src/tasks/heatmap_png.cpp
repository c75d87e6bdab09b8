// attention_heatmap_png: layout of the heatmap grid, a 3x5 bitmap font for labels, and a small
// PNG writer (zlib stream of one fixed-Huffman block; matches only at the pixel and row distances,
// which is where a heatmap repeats itself).
#include "lmforge/tasks/heatmap_png.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <nlohmann/json.hpp>

#include "lmforge/core/error.h"

namespace lmf::tasks {

namespace {

// ---- PNG / zlib -------------------------------------------------------------------------------

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> t = [] {
    std::array<uint32_t, 256> a{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      a[n] = c;
    }
    return a;
  }();
  return t;
}

// Deflate's bit order: values LSB first, Huffman codes MSB first.
struct BitWriter {
  std::string out;
  uint32_t acc = 0;
  int n = 0;
  void bits(uint32_t v, int count) {
    acc |= v << n;
    n += count;
    while (n >= 8) {
      out.push_back(static_cast<char>(acc & 0xFF));
      acc >>= 8;
      n -= 8;
    }
  }
  void code(uint32_t c, int len) {
    uint32_t r = 0;
    for (int i = 0; i < len; ++i) r |= ((c >> i) & 1u) << (len - 1 - i);
    bits(r, len);
  }
  void flush() {
    if (n > 0) out.push_back(static_cast<char>(acc & 0xFF));
    acc = 0;
    n = 0;
  }
};

// RFC 1951 fixed literal/length code of symbol 0..287.
void fixed_symbol(BitWriter& w, int v) {
  if (v < 144)
    w.code(0x30 + v, 8);
  else if (v < 256)
    w.code(0x190 + (v - 144), 9);
  else if (v < 280)
    w.code(v - 256, 7);
  else
    w.code(0xC0 + (v - 280), 8);
}

constexpr int kLenBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                              31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr int kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                               2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr int kDistBase[30] = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                               33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                               1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr int kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

void write_match(BitWriter& w, int len, int dist) {
  int i = 28;
  while (kLenBase[i] > len) --i;
  fixed_symbol(w, 257 + i);
  w.bits(static_cast<uint32_t>(len - kLenBase[i]), kLenExtra[i]);
  int j = 29;
  while (kDistBase[j] > dist) --j;
  w.code(static_cast<uint32_t>(j), 5);
  w.bits(static_cast<uint32_t>(dist - kDistBase[j]), kDistExtra[j]);
}

// A zlib stream of `data`: one final fixed-Huffman block; matches at distances `dists`.
std::string zlib_compress(const std::vector<uint8_t>& data, std::initializer_list<size_t> dists) {
  BitWriter w;
  w.out.push_back('\x78');  // zlib header: deflate, 32K window, no dictionary
  w.out.push_back('\x01');
  w.bits(1, 1);  // BFINAL
  w.bits(1, 2);  // BTYPE 01: fixed Huffman codes
  const size_t n = data.size();
  for (size_t i = 0; i < n;) {
    size_t best = 0, best_d = 0;
    for (size_t d : dists) {
      if (d == 0 || d > i || d > 32768) continue;
      size_t k = 0;
      while (k < 258 && i + k < n && data[i + k] == data[i + k - d]) ++k;
      if (k > best) best = k, best_d = d;
    }
    if (best >= 3) {
      write_match(w, static_cast<int>(best), static_cast<int>(best_d));
      i += best;
    } else {
      fixed_symbol(w, data[i]);
      ++i;
    }
  }
  fixed_symbol(w, 256);  // end of block
  w.flush();
  const uint32_t a = adler32(data.data(), data.size());
  for (int s = 24; s >= 0; s -= 8) w.out.push_back(static_cast<char>((a >> s) & 0xFF));
  return w.out;
}

void put_u32(std::string& s, uint32_t v) {
  for (int k = 24; k >= 0; k -= 8) s.push_back(static_cast<char>((v >> k) & 0xFF));
}

void chunk(std::string& png, const char* type, const std::string& body) {
  put_u32(png, static_cast<uint32_t>(body.size()));
  std::string typed(type, 4);
  typed += body;
  png += typed;
  put_u32(png, png_crc32(reinterpret_cast<const uint8_t*>(typed.data()), typed.size()));
}

// ---- 3x5 bitmap font --------------------------------------------------------------------------

struct Glyph {
  char c;
  const char* rows;  // 15 of '0'/'1', row by row
};
constexpr Glyph kFont[] = {
    {'0', "111101101101111"}, {'1', "010110010010111"}, {'2', "111001111100111"},
    {'3', "111001111001111"}, {'4', "101101111001001"}, {'5', "111100111001111"},
    {'6', "111100111101111"}, {'7', "111001001010010"}, {'8', "111101111101111"},
    {'9', "111101111001111"}, {'A', "010101111101101"}, {'B', "110101110101110"},
    {'C', "011100100100011"}, {'D', "110101101101110"}, {'E', "111100110100111"},
    {'F', "111100110100100"}, {'G', "011100101101011"}, {'H', "101101111101101"},
    {'I', "111010010010111"}, {'J', "001001001101010"}, {'K', "101101110101101"},
    {'L', "100100100100111"}, {'M', "101111111101101"}, {'N', "110101101101101"},
    {'O', "010101101101010"}, {'P', "110101110100100"}, {'Q', "010101101110011"},
    {'R', "110101110101101"}, {'S', "011100010001110"}, {'T', "111010010010010"},
    {'U', "101101101101111"}, {'V', "101101101101010"}, {'W', "101101111111101"},
    {'X', "101101010101101"}, {'Y', "101101010010010"}, {'Z', "111001010100111"},
    {' ', "000000000000000"}, {'.', "000000000000010"}, {',', "000000000010100"},
    {'-', "000000111000000"}, {'_', "000000000000111"}, {':', "000010000010000"},
    {'?', "111001010000010"}, {'/', "001001010100100"}, {'<', "001010100010001"},
    {'>', "100010001010100"}, {'=', "000111000111000"}, {'\'', "010010000000000"},
    {'!', "010010010000010"}, {'(', "010100100100010"}, {')', "010001001001010"},
    {'#', "101111101111101"}, {'"', "101101000000000"}, {'+', "000010111010000"},
    {'*', "101010101000000"}, {'%', "101001010100101"}, {'&', "010101010101011"},
    {';', "000010000010100"}, {'[', "110100100100110"}, {']', "011001001001011"}};

const char* glyph(char c) {
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  for (const Glyph& g : kFont)
    if (g.c == c) return g.rows;
  return glyph('?');
}

// A UTF-8 string in the font's characters: ASCII as is, SentencePiece's word marker U+2581 as
// '_', anything else '?' (one per code point).
std::string font_text(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
    if (b < 0x80)
      out.push_back(b >= 0x20 && b < 0x7F ? static_cast<char>(b) : '?');
    else if (s.compare(i, 3, "\xE2\x96\x81") == 0)
      out.push_back('_');
    else
      out.push_back('?');
    i += std::min(len, s.size() - i);
  }
  return out;
}

struct Rgb {
  uint8_t r, g, b;
};

// Draws into an image, or (img == nullptr) only measures.
struct Canvas {
  RgbImage* img = nullptr;
  void fill(int64_t x, int64_t y, int64_t w, int64_t h, Rgb c) {
    if (!img) return;
    for (int64_t yy = std::max<int64_t>(0, y); yy < std::min(img->height, y + h); ++yy)
      for (int64_t xx = std::max<int64_t>(0, x); xx < std::min(img->width, x + w); ++xx) {
        uint8_t* p = &img->pixels[(yy * img->width + xx) * 3];
        p[0] = c.r, p[1] = c.g, p[2] = c.b;
      }
  }
  void text(int64_t x, int64_t y, const std::string& s, int scale, Rgb c = {0, 0, 0}) {
    for (size_t k = 0; k < s.size(); ++k) {
      const char* g = glyph(s[k]);
      for (int r = 0; r < 5; ++r)
        for (int q = 0; q < 3; ++q)
          if (g[r * 3 + q] == '1')
            fill(x + (static_cast<int64_t>(k) * 4 + q) * scale, y + r * scale, scale, scale, c);
    }
  }
};

int64_t text_width(const std::string& s, int scale) {
  return static_cast<int64_t>(s.size()) * 4 * scale;
}

Rgb heat(float v) {
  const float t = std::clamp(std::isfinite(v) ? v : 0.0f, 0.0f, 1.0f);
  auto mix = [t](int hi, int lo) { return static_cast<uint8_t>(std::lround(hi + (lo - hi) * t)); };
  return {mix(255, 8), mix(255, 48), mix(255, 107)};
}

struct Kind {
  const char* key;
  const char* label;   // panel titles
  const char* header;  // section title
  const std::vector<Tensor>* maps;
  int64_t rows, cols;
};

constexpr int kMargin = 10, kGap = 14, kTitle = 2;

int digits(int64_t n) {
  return n < 10 ? 1 : 1 + digits(n / 10);
}

}  // namespace

uint32_t png_crc32(const uint8_t* data, size_t n, uint32_t crc) {
  uint32_t c = crc ^ 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = crc_table()[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t adler32(const uint8_t* data, size_t n) {
  uint32_t a = 1, b = 0;
  for (size_t i = 0; i < n; ++i) {
    a = (a + data[i]) % 65521u;
    b = (b + a) % 65521u;
  }
  return (b << 16) | a;
}

std::string encode_png(const RgbImage& image,
                       const std::vector<std::pair<std::string, std::string>>& utf8_text) {
  LMF_CHECK(
      image.width > 0 && image.height > 0 && image.width < (1 << 24) && image.height < (1 << 24),
      ValueError, "encode_png: image size {}x{} must be positive (and below 2^24)", image.width,
      image.height);
  LMF_CHECK(image.pixels.size() == static_cast<size_t>(image.width * image.height * 3), ValueError,
            "encode_png: {} pixel bytes for a {}x{} RGB image (expected {})", image.pixels.size(),
            image.width, image.height, image.width * image.height * 3);
  std::string png("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr;
  put_u32(ihdr, static_cast<uint32_t>(image.width));
  put_u32(ihdr, static_cast<uint32_t>(image.height));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, filter 0, no interlace
  chunk(png, "IHDR", ihdr);
  for (const auto& [key, text] : utf8_text) {
    LMF_CHECK(!key.empty() && key.size() < 80 && key.find('\0') == std::string::npos, ValueError,
              "encode_png: text keyword '{}' must have 1-79 characters", key);
    // keyword, NUL, no compression (2 bytes), empty language tag and translated keyword.
    std::string body = key;
    body.append(5, '\0');
    body += text;
    chunk(png, "iTXt", body);
  }
  // Scanlines with filter type 0 (none).
  const size_t stride = static_cast<size_t>(image.width) * 3 + 1;
  std::vector<uint8_t> raw(stride * image.height);
  for (int64_t y = 0; y < image.height; ++y) {
    raw[y * stride] = 0;
    std::copy_n(image.pixels.begin() + y * (stride - 1), stride - 1, raw.begin() + y * stride + 1);
  }
  chunk(png, "IDAT", zlib_compress(raw, {3, stride}));
  chunk(png, "IEND", "");
  return png;
}

std::string attention_heatmap_png(const Seq2SeqAttention& att,
                                  const std::vector<std::string>& source_tokens,
                                  const std::vector<std::string>& target_tokens,
                                  const std::string& title) {
  const auto S = static_cast<int64_t>(source_tokens.size());
  const auto T = static_cast<int64_t>(target_tokens.size());
  const Kind kinds[] = {
      {"encoder", "ENC", "ENCODER SELF-ATTENTION", &att.encoder, S, S},
      {"decoder", "DEC", "DECODER SELF-ATTENTION", &att.decoder, T, T},
      {"cross", "CROSS", "CROSS-ATTENTION (DECODER TO SOURCE)", &att.cross, T, S}};
  for (const Kind& k : kinds)
    for (size_t l = 0; l < k.maps->size(); ++l) {
      const Tensor& t = (*k.maps)[l];
      LMF_CHECK(t.dim() == 3 && t.size(1) == k.rows && t.size(2) == k.cols, ValueError,
                "attention_heatmap_png: {} layer {} attention is {} but there are {} row and {} "
                "column labels",
                k.key, l, t.describe(), k.rows, k.cols);
    }
  const int64_t cell = std::clamp<int64_t>(240 / std::max<int64_t>({S, T, 1}), 3, 16);
  // One panel: title (scale 2), column indices, then the grid with row indices on its left.
  auto panel_w = [&](const Kind& k) {
    return std::max(digits(std::max<int64_t>(k.rows - 1, 0)) * 4 + 3 + k.cols * cell,
                    text_width(std::string(k.label) + " L00 H00", kTitle));
  };
  const std::string head_line = font_text(title);
  int64_t width = std::max<int64_t>(480, text_width(head_line, kTitle));
  for (const Kind& k : kinds) {
    int64_t w = 0;
    for (const Tensor& t : *k.maps) w = std::max(w, t.size(0) * (panel_w(k) + kGap) - kGap);
    width = std::max({width, w, text_width(k.header, kTitle)});
  }
  const std::string bar_text = "1  ATTENTION PROBABILITY (ROWS: QUERIES, COLUMNS: KEYS)";
  width = std::max(width, 12 + 204 + text_width(bar_text, kTitle));
  width += 2 * kMargin;

  // Lays everything out; draws when cv.img is set. Returns the height used.
  auto layout = [&](Canvas& cv) {
    int64_t y = kMargin;
    cv.text(kMargin, y, head_line, kTitle);
    y += 5 * kTitle + 10;
    for (const Kind& k : kinds) {
      if (k.maps->empty()) continue;
      cv.text(kMargin, y, k.header, kTitle, {120, 0, 0});
      y += 5 * kTitle + 8;
      const int64_t lw = digits(std::max<int64_t>(k.rows - 1, 0)) * 4 + 3;
      const int64_t step_r = std::max<int64_t>(1, (6 + cell - 1) / cell);
      const int64_t step_c =
          std::max<int64_t>(1, (digits(std::max<int64_t>(k.cols - 1, 0)) * 4 + cell) / cell);
      for (size_t l = 0; l < k.maps->size(); ++l) {
        const Tensor c = (*k.maps)[l].to(DType::f32).contiguous();
        const float* p = c.data<float>();
        int64_t x = kMargin;
        for (int64_t h = 0; h < c.size(0); ++h) {
          cv.text(x, y, fmt::format("{} L{} H{}", k.label, l, h), kTitle);
          const int64_t top = y + 5 * kTitle + 4, gy = top + 7, gx = x + lw;
          for (int64_t j = 0; j < k.cols; j += step_c) {
            const std::string s = std::to_string(j);
            cv.text(gx + j * cell + cell / 2 - text_width(s, 1) / 2 + 1, top, s, 1, {90, 90, 90});
          }
          for (int64_t r = 0; r < k.rows; r += step_r) {
            const std::string s = std::to_string(r);
            cv.text(gx - 2 - text_width(s, 1), gy + r * cell + std::max<int64_t>(0, (cell - 5) / 2),
                    s, 1, {90, 90, 90});
          }
          cv.fill(gx - 1, gy - 1, k.cols * cell + 2, k.rows * cell + 2, {170, 170, 170});
          const float* m = p + h * k.rows * k.cols;
          for (int64_t r = 0; r < k.rows; ++r)
            for (int64_t q = 0; q < k.cols; ++q)
              cv.fill(gx + q * cell, gy + r * cell, cell, cell, heat(m[r * k.cols + q]));
          x += panel_w(k) + kGap;
        }
        y += 5 * kTitle + 4 + 7 + k.rows * cell + kGap;
      }
    }
    // Colour bar.
    cv.text(kMargin, y, "0", kTitle);
    for (int64_t i = 0; i < 200; ++i)
      cv.fill(kMargin + 12 + i, y, 1, 5 * kTitle, heat(static_cast<float>(i) / 199.0f));
    cv.text(kMargin + 12 + 204, y, bar_text, kTitle);
    y += 5 * kTitle + 12;
    // Legend: the tokens by index, wrapped.
    for (const auto& [name, toks] :
         {std::pair{"SOURCE TOKENS (ENC ROWS/COLUMNS, CROSS COLUMNS):", &source_tokens},
          std::pair{"TARGET TOKENS (DEC ROWS/COLUMNS, CROSS ROWS):", &target_tokens}}) {
      cv.text(kMargin, y, name, kTitle, {120, 0, 0});
      y += 5 * kTitle + 6;
      int64_t x = kMargin;
      for (size_t i = 0; i < toks->size(); ++i) {
        const std::string item = fmt::format("{}:{}", i, font_text((*toks)[i]));
        const int64_t w = text_width(item, kTitle);
        if (x > kMargin && x + w > width - kMargin) {
          x = kMargin;
          y += 5 * kTitle + 6;
        }
        cv.text(x, y, item, kTitle);
        x += w + 3 * 4 * kTitle;
      }
      y += 5 * kTitle + 14;
    }
    return y + kMargin;
  };
  Canvas measure;
  RgbImage img;
  img.width = width;
  img.height = layout(measure);
  img.pixels.assign(static_cast<size_t>(img.width * img.height * 3), 255);
  Canvas draw{&img};
  layout(draw);
  const nlohmann::json meta = {{"title", title},
                               {"source_tokens", source_tokens},
                               {"target_tokens", target_tokens},
                               {"cell_pixels", cell}};
  return encode_png(img, {{"attention-tokens",
                           meta.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)}});
}

}  // namespace lmf::tasks
