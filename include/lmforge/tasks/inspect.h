// What a model folder holds (for `lmforge inspect`): config, architecture, parameter count,
// checkpoint files and dtypes, the load report (missing/unexpected keys, pooler status).
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
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
  // The BERT family (bert, roberta, albert, electra) fills `config`; any other model type the
  // registry builds (encoder-decoders: Marian, BART, T5; decoders: GPT-2, LLaMA) fills `shape`
  // instead: the config.json values that describe it, in a fixed order (e.g. d_model,
  // encoder_layers, ...).
  bool bert_family = true;
  std::string model_type;  // config.json "model_type"
  std::vector<std::pair<std::string, nlohmann::json>> shape;
  models::BertConfig config;
  std::string architecture;  // the HF class lmforge built (config.architectures[0] or the base)
  int64_t parameters = 0;    // each shared (tied) tensor counted once
  std::vector<std::string> weight_files;  // relative to dir
  std::string weight_format;  // "safetensors", "safetensors (sharded)", "pytorch .bin", ...
  std::map<std::string, DTypeCount> dtypes;  // stored dtype name ("F32", "BF16", ...) -> count
  models::LoadReport report;
  std::string pooler;     // one line: present and loaded / absent and refused / no pooler ("" when
                          // the model has none by design: not the BERT family)
  std::string tokenizer;  // one line: which files, vocabulary size, or why it failed to load
  std::vector<std::string> st_modules;  // sentence-transformers modules.json types, if any
};

// Loads config, weights and tokenizer of `dir` (IoError / ValueError as create_model).
ModelInfo inspect_model(const std::string& dir);

}  // namespace lmf::tasks
