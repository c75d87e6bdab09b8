// What a model folder holds (for `lmforge inspect`): config, architecture, parameter count,
// checkpoint files and dtypes, the load report (missing/unexpected keys, pooler status).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lmforge/models/bert.h"

namespace lmf::tasks {

struct DTypeCount {
  int64_t tensors = 0;
  int64_t elements = 0;
  int64_t bytes = 0;  // as stored in the file
};

struct ModelInfo {
  std::string dir;
  std::string model_type;     // config.json's
  bool bert_family = true;    // false: another registered family (GPT-2, LLaMA, Marian, T5, ...)
  models::BertConfig config;  // the BERT family's parsed config (bert_family only)
  // Other families: the config's shape fields present (layers, widths, heads, vocabulary ...) as
  // "key value" pairs, and the whole config.json for --json.
  std::vector<std::pair<std::string, std::string>> shape;
  std::string config_json;
  std::string architecture;  // the HF class lmforge built (config.architectures[0] or the base)
  int64_t parameters = 0;    // each shared (tied) tensor counted once
  std::vector<std::string> weight_files;  // relative to dir
  std::string weight_format;  // "safetensors", "safetensors (sharded)", "pytorch .bin", ...
  std::map<std::string, DTypeCount> dtypes;  // stored dtype name ("F32", "BF16", ...) -> count
  models::LoadReport report;
  std::string pooler;     // one line: present and loaded / absent and refused / no pooler
  std::string tokenizer;  // one line: which files, vocabulary size, or why it failed to load
  std::vector<std::string> st_modules;  // sentence-transformers modules.json types, if any
};

// Loads config, weights and tokenizer of `dir` (IoError / ValueError as create_model).
ModelInfo inspect_model(const std::string& dir);

}  // namespace lmf::tasks
