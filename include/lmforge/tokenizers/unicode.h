// UTF-8 and Unicode property helpers shared by normalizers, pre-tokenizers and models.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lmf::tok {

// Decodes the char at s[i] (valid UTF-8 assumed) and advances i past it.
char32_t next_char(std::string_view s, size_t& i);
// Length in bytes of the char starting with lead byte b (1 for a stray byte).
inline size_t utf8_len(unsigned char b) {
  return b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
}
void append_utf8(std::string& out, char32_t c);
size_t utf8_char_count(std::string_view s);
// Replaces every ill-formed UTF-8 sequence by U+FFFD (maximal subparts, as Python's
// bytes.decode("utf-8", "replace")); returns s unchanged when it is valid.
std::string sanitize_utf8(std::string_view s);
bool is_valid_utf8(std::string_view s);

// Rust char::is_whitespace (White_Space property).
bool is_whitespace(char32_t c);
// Rust char::is_alphanumeric (Alphabetic or Numeric), and the regex \w class.
bool is_alphanumeric(char32_t c);
bool is_word_char(char32_t c);
// Unicode general category P* (what HF calls punctuation), and Rust's is_ascii_punctuation.
bool is_unicode_punctuation(char32_t c);
// BERT punctuation as HF measures it (ASCII punctuation or P* of its Unicode tables).
bool is_bert_punctuation(char32_t c);
// Rust char::is_numeric (Nd, Nl, No).
bool is_numeric(char32_t c);
// BERT's notion of a control char (Cc/Cf/Cn/Co except \t \n \r) and of whitespace.
bool is_bert_control(char32_t c);
bool is_bert_whitespace(char32_t c);
// CJK ideograph blocks as BERT defines them.
bool is_chinese_char(char32_t c);
// The marks HF's StripAccents normalizer removes (combining marks), and the ones
// BertNormalizer's strip_accents removes (non-spacing marks of an older Unicode).
bool is_nonspacing_mark(char32_t c);
bool is_bert_accent_mark(char32_t c);
// PCRE2 class body (escaped ranges, no brackets) for Oniguruma's \w, \s or \d ('w', 's', 'd'):
// HF runs Split/Replace regexes on Oniguruma, whose classes differ from PCRE2's.
const std::string& onig_class_ranges(char which);

}  // namespace lmf::tok
