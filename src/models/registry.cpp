// The architecture registry (models/registry.h). Families register themselves through the one
// list in register_builtin_families(); nothing else here knows a family.
#include "lmforge/models/registry.h"

#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/json.h"
#include "lmforge/models/bart.h"
#include "lmforge/models/bert.h"
#include "lmforge/models/gpt2.h"
#include "lmforge/models/llama.h"
#include "lmforge/models/marian.h"
#include "lmforge/models/t5.h"
#include "lmforge/nn/init.h"

namespace lmf::models {

namespace {

std::vector<FamilyRegistration>& families() {
  static std::vector<FamilyRegistration> all;
  return all;
}

// The families built into lmforge: one line each.
void register_builtin_families() {
  register_bert_family();
  register_gpt2_family();
  register_llama_family();
  register_marian_family();
  register_bart_family();
  register_t5_family();
}

std::once_flag g_builtin_once;

const std::vector<FamilyRegistration>& registered() {
  std::call_once(g_builtin_once, register_builtin_families);
  return families();
}

std::vector<std::string> model_types() {
  std::vector<std::string> out;
  for (const auto& f : registered())
    for (const auto& t : f.model_types) out.push_back(t);
  return out;
}

std::string architecture_of(const nlohmann::json& j, const std::string& architecture) {
  if (!architecture.empty()) return architecture;
  if (j.contains("architectures") && j["architectures"].is_array() &&
      !j["architectures"].empty() && j["architectures"][0].is_string())
    return j["architectures"][0].get<std::string>();
  return "";
}

const FamilyRegistration& family_for(const nlohmann::json& j, const std::string& architecture,
                                     const std::string& origin) {
  const std::string arch = architecture_of(j, architecture);
  const auto has = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  if (!j.contains("model_type") || !j["model_type"].is_string()) {
    // Old configs without model_type: the family that implements the named architecture (as
    // BertConfig always accepted them).
    for (const auto& f : registered())
      if (!arch.empty() && has(f.architectures, arch)) return f;
    fail<ValueError>(
        "{}: no \"model_type\" string{}; lmforge supports model types {} (architectures: {})",
        origin, arch.empty() ? "" : " and architecture '" + arch + "' is not one lmforge has",
        fmt::join(model_types(), ", "), fmt::join(registered_architectures(), ", "));
  }
  const std::string mt = j["model_type"].get<std::string>();
  for (const auto& f : registered()) {
    if (!has(f.model_types, mt)) continue;
    LMF_CHECK(arch.empty() || has(f.architectures, arch), ValueError,
              "{}: architecture '{}' is not one of model type '{}' ({})", origin, arch, mt,
              fmt::join(f.architectures, ", "));
    return f;
  }
  fail<ValueError>("{}: unknown model_type '{}'{}; lmforge supports model types {}", origin, mt,
                   arch.empty() ? "" : " (architecture " + arch + ")",
                   fmt::join(model_types(), ", "));
}

}  // namespace

void register_family(FamilyRegistration reg) {
  LMF_CHECK(reg.create != nullptr && !reg.model_types.empty(), ValueError,
            "register_family: a family needs model types and a create function");
  families().push_back(std::move(reg));
}

std::vector<std::string> registered_architectures() {
  std::vector<std::string> out;
  for (const auto& f : registered())
    for (const auto& a : f.architectures) out.push_back(a);
  return out;
}

std::unique_ptr<PretrainedModel> create_pretrained(const std::string& config_text,
                                                   const std::string& architecture,
                                                   const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(config_text);
  } catch (const nlohmann::json::exception& e) {
    fail<ValueError>("{}: not valid JSON: {}", origin, e.what());
  }
  LMF_CHECK(j.is_object(), ValueError, "{}: a config must be a JSON object", origin);
  const FamilyRegistration& f = family_for(j, architecture, origin);
  std::string arch = architecture_of(j, architecture);
  if (arch.empty()) arch = f.default_architecture;
  std::unique_ptr<PretrainedModel> m = f.create(config_text, arch, origin);
  m->eval();
  return m;
}

std::unique_ptr<PretrainedModel> load_pretrained(const std::string& model_dir,
                                                 const LoadOptions& opt, LoadReport* report) {
  const std::string cfg_path = model_dir + "/config.json";
  const nlohmann::json j = io::read_json_file(cfg_path);
  LMF_CHECK(j.is_object(), ValueError, "{}: a config must be a JSON object", cfg_path);
  const FamilyRegistration& f = family_for(j, opt.architecture, cfg_path);
  if (f.load_dir) return f.load_dir(model_dir, opt, report);
  return load_pretrained(j.dump(), io::load_checkpoint_dir(model_dir), opt, report, model_dir);
}

std::unique_ptr<PretrainedModel> load_pretrained(const std::string& config_text,
                                                 const nn::StateDict& state,
                                                 const LoadOptions& opt, LoadReport* report,
                                                 const std::string& origin) {
  std::unique_ptr<PretrainedModel> m;
  {
    nn::init::NoInitGuard no_draws;  // the state dict replaces these weights
    m = create_pretrained(config_text, opt.architecture, origin);
  }
  LoadReport rep = m->load(state, opt, origin);
  {
    NoGradGuard no_grad;
    m->init_missing(rep.missing_keys);
  }
  m->eval();
  if (report) *report = std::move(rep);
  return m;
}

void throw_not_a(const std::string& model_dir, const PretrainedModel& m,
                 const std::string& wanted) {
  fail<ValueError>("{} holds a {} (model type '{}'), not {}", model_dir, m.architecture(),
                   m.model_type(), wanted);
}

}  // namespace lmf::models
