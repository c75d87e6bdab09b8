// Shared save/load helpers of the training objectives (hf_folder.h).
#include "lmforge/train/hf_folder.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"

namespace lmf::train {
namespace fs = std::filesystem;

void copy_existing_files(const std::string& from, const std::string& to,
                         std::initializer_list<const char*> names) {
  if (from.empty()) return;
  for (const char* name : names) {
    const fs::path src = fs::path(from) / name;
    if (!fs::is_regular_file(src)) continue;
    std::error_code ec;
    fs::copy_file(src, fs::path(to) / name, fs::copy_options::overwrite_existing, ec);
    LMF_CHECK(!ec, IoError, "cannot copy '{}' to '{}': {}", src.string(), to, ec.message());
  }
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LMF_CHECK(in.good(), IoError, "cannot open '{}' for reading (check the path and permissions)",
            path);
  std::ostringstream ss;
  ss << in.rdbuf();
  LMF_CHECK(!in.bad(), IoError, "error while reading '{}'", path);
  return ss.str();
}

std::string config_model_type(const std::string& config_text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(config_text);
  } catch (const nlohmann::json::exception& e) {
    fail<ValueError>("{}: not valid JSON: {}", origin, e.what());
  }
  if (!j.is_object()) return "";
  const auto it = j.find("model_type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

void load_saved_weights(models::PretrainedModel& model, const std::string& dir) {
  const std::string path = (fs::path(dir) / "model.safetensors").string();
  models::LoadOptions lo;
  lo.zero_copy = false;  // copy into the existing parameters: the optimizer holds them
  lo.strict = true;
  model.load(io::load_safetensors(path), lo, path);
}

}  // namespace lmf::train
