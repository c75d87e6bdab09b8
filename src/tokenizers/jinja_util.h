// Internal: Python-compatible formatting helpers shared by the Jinja renderer's files.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "tokenizers/jinja.h"

namespace lmf::tok::jinja {

std::string type_name(const Value& v);  // Python's type name: str, int, dict, NoneType, ...
std::string float_repr(double f);       // Python repr(float)
std::string str_repr(const std::string& s);
std::string to_str(const Value& v);   // Python str(); Undefined prints as ""
std::string to_repr(const Value& v);  // Python repr()

struct JsonFormat {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt: one line
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
std::string json_dumps(const Value& v, const JsonFormat& f);  // Python json.dumps

uint32_t decode_utf8(const std::string& s, size_t pos, size_t& len);  // bad bytes: U+FFFD, len 1
std::vector<std::string> split_chars(const std::string& s);           // one string per code point

}  // namespace lmf::tok::jinja
