// Helpers shared by the pretraining and fine-tuning data tests: input files written to a temp
// folder, and the message of the lmf::Error a call throws.
#pragma once
#include <filesystem>
#include <fstream>
#include <string>

#include "lmforge/core/error.h"

namespace lmf::test {

// Writes `content` to <temp dir>/<folder>/<name> (binary) and returns the path.
inline std::string write_temp_file(const std::string& folder, const std::string& name,
                                   const std::string& content) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / folder;
  std::filesystem::create_directories(dir);
  const std::filesystem::path p = dir / name;
  std::ofstream(p, std::ios::binary) << content;
  return p.string();
}

// What f() throws as an lmf::Error, or "" when it throws nothing.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const lmf::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace lmf::test
