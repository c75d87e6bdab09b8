// Reads a JSON fixture from tests/fixtures/tokenizers/ (shared by the tokenizer tests).
#pragma once
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace lmf::tok {

inline nlohmann::json read_fixture(const std::string& name) {
  std::ifstream f(std::string(LMF_FIXTURES_DIR) + "/tokenizers/" + name);
  EXPECT_TRUE(f.good()) << name;
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

}  // namespace lmf::tok
