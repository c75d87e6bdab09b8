// The architecture registry: config.json's model_type / architectures -> a model. Each family
// registers itself with one call listed in registry.cpp (register_builtin_families), so adding a
// family touches its own files and that one line.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/models/model.h"

namespace lmf::models {

struct FamilyRegistration {
  std::vector<std::string> model_types;    // config.json "model_type" values, e.g. {"llama"}
  std::vector<std::string> architectures;  // HF class names, e.g. {"LlamaModel", ...}
  std::string default_architecture;        // when config.json names none, e.g. "LlamaModel"
  // Builds an untrained model of `architecture` from config.json text (`origin` names the file in
  // errors); ValueError for a wrong field.
  std::function<std::unique_ptr<PretrainedModel>(
      const std::string& config_text, const std::string& architecture, const std::string& origin)>
      create;
  // Optional: loads a folder when the family has its own rules (BERT's pooler); empty: the
  // generic path (create under nn::init::NoInitGuard, load the checkpoint, init_missing()).
  std::function<std::unique_ptr<PretrainedModel>(const std::string& model_dir,
                                                 const LoadOptions& opt, LoadReport* report)>
      load_dir;
};

void register_family(FamilyRegistration reg);
// Every registered architecture, for --help and error messages.
std::vector<std::string> registered_architectures();

// From config.json text. `architecture` empty: config.architectures[0], else the family's default.
// ValueError naming the supported model types / architectures for an unknown one.
std::unique_ptr<PretrainedModel> create_pretrained(const std::string& config_text,
                                                   const std::string& architecture = "",
                                                   const std::string& origin = "config.json");
// A Hugging Face folder: config.json + weights (safetensors, sharded, or pytorch_model.bin). In
// eval mode; `report` receives the load report.
std::unique_ptr<PretrainedModel> load_pretrained(const std::string& model_dir,
                                                 const LoadOptions& opt = {},
                                                 LoadReport* report = nullptr);

// load_pretrained as a T (e.g. DecoderModel, wanted = "a decoder (causal LM)"); ValueError
// saying what the folder holds otherwise.
// From config.json text and a state dict already in memory (e.g. converted from a GGUF file);
// `origin` names the source in errors and the report.
std::unique_ptr<PretrainedModel> load_pretrained(const std::string& config_text,
                                                 const nn::StateDict& state,
                                                 const LoadOptions& opt, LoadReport* report,
                                                 const std::string& origin);

[[noreturn]] void throw_not_a(const std::string& model_dir, const PretrainedModel& m,
                              const std::string& wanted);
template <class T>
std::unique_ptr<T> load_pretrained_as(const std::string& model_dir, const std::string& wanted,
                                      const LoadOptions& opt = {}, LoadReport* report = nullptr) {
  std::unique_ptr<PretrainedModel> m = load_pretrained(model_dir, opt, report);
  if (auto* p = dynamic_cast<T*>(m.get())) {
    m.release();
    return std::unique_ptr<T>(p);
  }
  throw_not_a(model_dir, *m, wanted);
}

}  // namespace lmf::models
