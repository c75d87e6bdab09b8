// Reading JSON files (config.json, tokenizer.json, checkpoint indexes) with errors that name the
// file, line and column.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace lmf::io {

// Parses the whole file. IoError when it cannot be read, or "<path>:<line>:<column>: ..." when it
// is not valid JSON.
nlohmann::json read_json_file(const std::string& path);

}  // namespace lmf::io
