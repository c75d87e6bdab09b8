// GPT-2 byte-level basics (HF pre_tokenizers/byte_level.rs): the bytes<->unicode map and the
// split pattern as a single-pass scanner (a PCRE2-JIT version is kept for comparison).
#include "lmforge/tokenizers/byte_level.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <array>
#include <memory>

#include "lmforge/core/error.h"

namespace lmf::tok {
namespace {

struct ByteMap {
  std::array<std::string, 256> chars;
  std::array<char32_t, 256> cps;
  std::array<int16_t, 512> bytes;  // code point (< 512) -> byte, -1 when unmapped
  ByteMap() {
    bytes.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      char32_t cp = printable ? char32_t(b) : char32_t(256 + n++);
      cps[b] = cp;
      bytes[cp] = static_cast<int16_t>(b);
      chars[b] = cp < 0x80 ? std::string(1, char(cp))
                           : std::string{char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

// Char classes of the GPT-2 pattern: \p{L}, \p{N}, Oniguruma's Unicode \s, anything else.
enum Cls : uint8_t { kL, kN, kS, kO };

struct AsciiTable {
  std::array<uint8_t, 128> cls;
  AsciiTable() {
    for (int c = 0; c < 128; ++c) {
      bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      bool space = c == ' ' || (c >= 9 && c <= 13);
      cls[c] = alpha ? kL : (c >= '0' && c <= '9') ? kN : space ? kS : kO;
    }
  }
};
const AsciiTable kAscii;

inline Cls unicode_cls(char32_t c) {
  if (c == 0x85) return kS;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return kL;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return kN;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return kS;
    default:
      return kO;
  }
}

// Class and byte length of the char at s[i]; ill-formed bytes are one kO char each.
inline Cls char_at(std::string_view s, size_t i, size_t& len) {
  auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    len = 1;
    return static_cast<Cls>(kAscii.cls[b0]);
  }
  size_t n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC2 ? 2 : 0;
  if (n == 0 || b0 > 0xF4 || i + n > s.size()) {
    len = 1;
    return kO;
  }
  char32_t c = b0 & (0xFF >> (n + 1));
  for (size_t k = 1; k < n; ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      len = 1;
      return kO;
    }
    c = (c << 6) | (b & 0x3F);
  }
  if ((n == 3 && (c < 0x800 || (c >= 0xD800 && c < 0xE000))) ||
      (n == 4 && (c < 0x10000 || c > 0x10FFFF))) {
    len = 1;
    return kO;
  }
  len = n;
  return unicode_cls(c);
}

// End of the run of chars of class `k` starting at i.
inline size_t run_end(std::string_view s, size_t i, Cls k) {
  size_t len;
  while (i < s.size() && char_at(s, i, len) == k) i += len;
  return i;
}

// Length of a contraction ('s 't 're 've 'm 'll 'd) at s[i] == '\'', else 0.
inline size_t contraction(std::string_view s, size_t i) {
  if (i + 1 >= s.size()) return 0;
  char a = s[i + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= s.size()) return 0;
  char b = s[i + 2];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

struct Pcre2Gpt2 {
  pcre2_code* code = nullptr;
  Pcre2Gpt2() {
    const char* pat =
        R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
    int err;
    PCRE2_SIZE off;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat), PCRE2_ZERO_TERMINATED,
                         PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, nullptr);
    if (code) pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }
  ~Pcre2Gpt2() { pcre2_code_free(code); }
};

}  // namespace

const std::string& byte_level_char(uint8_t b) {
  return byte_map().chars[b];
}

char32_t byte_level_cp(uint8_t b) {
  return byte_map().cps[b];
}

int byte_level_byte(char32_t c) {
  return c < 512 ? byte_map().bytes[c] : -1;
}

std::string to_byte_level(std::string_view text) {
  const auto& m = byte_map();
  std::string out;
  out.reserve(text.size() * 2);
  for (unsigned char b : text) out += m.chars[b];
  return out;
}

void gpt2_split(std::string_view s, std::vector<Match>& out) {
  out.clear();
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    size_t len, end;
    Cls k = char_at(s, i, len);
    if (s[i] == '\'') {
      if (size_t c = contraction(s, i)) {
        out.push_back({i, i + c, true});
        i += c;
        continue;
      }
    }
    if (s[i] == ' ' && i + 1 < n) {
      size_t len2;
      Cls k2 = char_at(s, i + 1, len2);
      if (k2 != kS) {  // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' with the space
        end = run_end(s, i + 1, k2);
        out.push_back({i, end, true});
        i = end;
        continue;
      }
    }
    if (k != kS) {
      end = run_end(s, i + len, k);
      out.push_back({i, end, true});
      i = end;
      continue;
    }
    // '\s+(?!\S)': the whitespace run, less its last char when a non-space follows; else '\s+'.
    size_t last = i;
    end = i;
    while (end < n) {
      size_t l;
      if (char_at(s, end, l) != kS) break;
      last = end;
      end += l;
    }
    if (end < n && last > i) end = last;
    out.push_back({i, end, true});
    i = end;
  }
}

void gpt2_split_pcre2(std::string_view s, std::vector<Match>& out) {
  static const Pcre2Gpt2 re;
  LMF_CHECK(re.code != nullptr, ValueError, "the GPT-2 pattern did not compile with PCRE2");
  out.clear();
  thread_local std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
  size_t pos = 0;
  auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  while (pos < s.size()) {
    int rc = pcre2_match(re.code, subject, s.size(), pos, 0, md.get(), nullptr);
    if (rc < 0) break;
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    size_t b = ov[0], e = ov[1];
    if (e == b) {  // cannot happen with this pattern; guard against a loop
      ++pos;
      continue;
    }
    if (b > pos) out.push_back({pos, b, false});
    out.push_back({b, e, true});
    pos = e;
  }
  if (pos < s.size()) out.push_back({pos, s.size(), false});
}

}  // namespace lmf::tok
