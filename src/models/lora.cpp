// LoRA adapters, PEFT-compatible (models/lora.h).
#include "lmforge/models/lora.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/nn/layers.h"
#include "lmforge/ops/ops.h"

namespace lmf::models {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "base_model.model.";

std::string last_component(const std::string& path) {
  const size_t dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  LMF_CHECK(f.good(), IoError, "cannot read '{}'", p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

double LoraConfig::scaling() const {
  return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r))
                    : lora_alpha / static_cast<double>(r);
}

std::vector<std::string> default_lora_targets(const std::string& model_type) {
  if (model_type == "llama" || model_type == "qwen2" || model_type == "mistral")
    return {"q_proj", "v_proj"};
  if (model_type == "gpt2") return {"c_attn"};
  fail<ValueError>("LoRA: no default target modules for model_type '{}'; give --lora-target",
                   model_type);
}

std::vector<std::string> add_lora(PretrainedModel& model, LoraConfig& c) {
  LMF_CHECK(c.r > 0, ValueError, "LoRA: r must be positive, got {}", c.r);
  if (c.target_modules.empty()) c.target_modules = default_lora_targets(model.model_type());
  const std::set<std::string> targets(c.target_modules.begin(), c.target_modules.end());
  model.requires_grad_(false);
  std::vector<std::string> adapted;
  std::set<std::string> linear_names;
  for (auto& [path, m] : model.named_modules()) {
    const std::string name = last_component(path);
    if (auto* lin = dynamic_cast<nn::Linear*>(m)) {
      linear_names.insert(name);
      if (!targets.count(name)) continue;
      lin->attach_lora(c.r, c.scaling(), c.lora_dropout);
      adapted.push_back(path);
    } else if (auto* conv = dynamic_cast<nn::Conv1D*>(m)) {
      linear_names.insert(name);
      if (!targets.count(name)) continue;
      conv->attach_lora(c.r, c.scaling(), c.lora_dropout);
      adapted.push_back(path);
    }
  }
  linear_names.erase("lora_A");
  linear_names.erase("lora_B");
  LMF_CHECK(!adapted.empty(), ValueError,
            "LoRA: no layer of the model is named {}; its linear layers are: {}",
            fmt::join(c.target_modules, ", "), fmt::join(linear_names, ", "));
  return adapted;
}

void save_lora_adapter(const PretrainedModel& model, const LoraConfig& c, const std::string& dir,
                       const std::string& base_model_name_or_path) {
  fs::create_directories(dir);
  io::StateDict tensors;
  bool conv = false;
  for (const auto& [name, t] : model.named_parameters()) {
    if (name.find(".lora_A.") == std::string::npos && name.find(".lora_B.") == std::string::npos)
      continue;
    tensors[kPrefix + name] = t.detach().contiguous();
  }
  LMF_CHECK(!tensors.empty(), ValueError, "LoRA: the model has no adapter to save");
  for (auto& [path, m] : const_cast<PretrainedModel&>(model).named_modules())
    if (auto* cv = dynamic_cast<nn::Conv1D*>(m); cv && cv->has_lora()) conv = true;
  nlohmann::ordered_json j;
  j["base_model_name_or_path"] = base_model_name_or_path;
  j["bias"] = "none";
  j["fan_in_fan_out"] = conv;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["lora_alpha"] = c.lora_alpha;
  j["lora_dropout"] = c.lora_dropout;
  j["modules_to_save"] = nullptr;
  j["peft_type"] = "LORA";
  j["r"] = c.r;
  j["target_modules"] = c.target_modules;
  j["task_type"] = "CAUSAL_LM";
  j["use_dora"] = false;
  j["use_rslora"] = c.use_rslora;
  const std::string st = (fs::path(dir) / "adapter_model.safetensors").string();
  io::save_safetensors(st + ".tmp", tensors);
  fs::rename(st + ".tmp", st);
  write_file_atomically((fs::path(dir) / "adapter_config.json").string(), j.dump(2) + "\n");
}

LoraConfig read_lora_config(const std::string& dir) {
  const fs::path p = fs::path(dir) / "adapter_config.json";
  LMF_CHECK(fs::is_regular_file(p), ValueError,
            "'{}' is not a LoRA adapter folder (no adapter_config.json)", dir);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(p));
  } catch (const nlohmann::json::exception& e) {
    fail<ValueError>("{}: not valid JSON ({})", p.string(), e.what());
  }
  LMF_CHECK(j.is_object() && j.value("peft_type", "") == "LORA", ValueError,
            "{}: peft_type must be \"LORA\"", p.string());
  LoraConfig c;
  auto num = [&](const char* k, double def) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) return def;
    LMF_CHECK(it->is_number(), ValueError, "{}: '{}' must be a number", p.string(), k);
    return it->get<double>();
  };
  c.r = static_cast<int64_t>(num("r", 8));
  c.lora_alpha = num("lora_alpha", 8);
  c.lora_dropout = num("lora_dropout", 0);
  c.use_rslora = j.value("use_rslora", false);
  LMF_CHECK(c.r > 0, ValueError, "{}: r must be positive", p.string());
  LMF_CHECK(!j.value("use_dora", false), ValueError, "{}: DoRA adapters are not supported",
            p.string());
  LMF_CHECK(j.value("bias", "none") == "none", ValueError,
            "{}: adapters with trained biases (bias '{}') are not supported", p.string(),
            j.value("bias", ""));
  if (auto it = j.find("modules_to_save"); it != j.end() && !it->is_null() && !it->empty())
    fail<ValueError>("{}: modules_to_save is not supported", p.string());
  for (const char* k : {"rank_pattern", "alpha_pattern"})
    if (auto it = j.find(k); it != j.end() && it->is_object() && !it->empty())
      fail<ValueError>("{}: per-module '{}' is not supported", p.string(), k);
  if (auto it = j.find("target_modules"); it != j.end() && it->is_array())
    for (const auto& t : *it) c.target_modules.push_back(t.get<std::string>());
  else if (it != j.end() && it->is_string())
    c.target_modules.push_back(it->get<std::string>());  // a regex in PEFT; used as a name here
  return c;
}

void load_lora_weights(PretrainedModel& model, const std::string& dir) {
  const std::string path = (fs::path(dir) / "adapter_model.safetensors").string();
  const io::StateDict s = io::load_safetensors(path);
  NoGradGuard ng;
  int64_t loaded = 0;
  for (auto& [name, t] : model.named_parameters()) {
    if (name.find(".lora_A.") == std::string::npos && name.find(".lora_B.") == std::string::npos)
      continue;
    auto it = s.find(kPrefix + name);
    LMF_CHECK(it != s.end(), ValueError, "{}: no tensor '{}'", path, kPrefix + name);
    LMF_CHECK(it->second.shape() == t.shape(), ShapeError, "{}: '{}' has shape {}, expected {}",
              path, it->first, it->second.describe(), t.describe());
    t.copy_(it->second);
    ++loaded;
  }
  LMF_CHECK(loaded == static_cast<int64_t>(s.size()), ValueError,
            "{}: {} tensors, {} of them match the model's adapters", path, s.size(), loaded);
}

int64_t merge_lora(PretrainedModel& model, const std::string& adapter_dir) {
  const LoraConfig c = read_lora_config(adapter_dir);
  const std::string path = (fs::path(adapter_dir) / "adapter_model.safetensors").string();
  const io::StateDict s = io::load_safetensors(path);
  NoGradGuard ng;
  int64_t merged = 0;
  for (const auto& [key, a] : s) {
    if (!ends_with(key, ".lora_A.weight")) continue;
    LMF_CHECK(key.rfind(kPrefix, 0) == 0, ValueError, "{}: key '{}' does not start with '{}'", path,
              key, kPrefix);
    const std::string module =
        key.substr(std::string(kPrefix).size(),
                   key.size() - std::string(kPrefix).size() - std::string(".lora_A.weight").size());
    auto bit = s.find(kPrefix + module + ".lora_B.weight");
    LMF_CHECK(bit != s.end(), ValueError, "{}: '{}' has no lora_B", path, module);
    const Tensor& b = bit->second;
    LMF_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(0) == b.size(1), ShapeError,
              "{}: '{}': lora_A {} and lora_B {} do not make a rank-r product", path, module,
              a.describe(), b.describe());
    Tensor* w = nullptr;
    bool transposed = false;
    for (auto& [mp, m] : model.named_modules()) {
      if (mp != module) continue;
      if (auto* lin = dynamic_cast<nn::Linear*>(m)) w = &lin->weight();
      if (auto* conv = dynamic_cast<nn::Conv1D*>(m)) {
        w = &conv->weight();
        transposed = true;
      }
    }
    LMF_CHECK(w != nullptr, ValueError, "{}: the model has no Linear / Conv1D '{}'", path, module);
    const Tensor delta = mul(matmul(b, a), c.scaling());  // [out, in]
    const Tensor d = transposed ? delta.transpose(0, 1).contiguous() : delta;
    LMF_CHECK(d.shape() == w->shape(), ShapeError, "{}: '{}': update {} for a weight {}", path,
              module, d.describe(), w->describe());
    // The weight may be a view of a read-only mapping or shared: replace it by the sum.
    w->copy_(add(*w, d));
    ++merged;
  }
  LMF_CHECK(merged > 0, ValueError, "{}: no lora_A/lora_B pair", path);
  return merged;
}

}  // namespace lmf::models
