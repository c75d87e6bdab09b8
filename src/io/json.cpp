#include "lmforge/io/json.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "lmforge/core/error.h"

namespace lmf::io {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>("cannot open JSON file '{}': {}", path, std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail<IoError>("cannot read JSON file '{}'", path);
  const std::string text = ss.str();
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is the 1-based position of the character that failed.
    const size_t pos = e.byte == 0 ? 0 : std::min<size_t>(e.byte - 1, text.size());
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos; ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    fail<IoError>("{}:{}:{}: invalid JSON: {}", path, line, col, e.what());
  }
}

}  // namespace lmf::io
