// LoRA adapters as PEFT (0.21) makes, saves and merges them: low-rank branches on a model's
// Linear / Conv1D layers (nn::Linear::attach_lora), adapter folders PEFT's
// PeftModel.from_pretrained loads (adapter_config.json + adapter_model.safetensors with PEFT's key
// names, "base_model.model.<module>.lora_A.weight"), and merging an adapter folder into a model's
// weights (W += scaling * B A; transposed for GPT-2's Conv1D, PEFT's fan_in_fan_out).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lmforge/models/model.h"

namespace lmf::models {

// PEFT LoraConfig's names and defaults.
struct LoraConfig {
  int64_t r = 8;
  double lora_alpha = 8.0;
  double lora_dropout = 0.0;
  // Module names matched against the last component of each layer's path (PEFT's list form);
  // empty: PEFT's default for the model type (LLaMA/Qwen2/Mistral q_proj,v_proj; GPT-2 c_attn).
  std::vector<std::string> target_modules;
  bool use_rslora = false;  // scaling lora_alpha / sqrt(r) instead of lora_alpha / r
  double scaling() const;
};

// PEFT's default target modules for a model_type ("llama" -> {q_proj, v_proj}); ValueError for a
// type without one (naming it: give --lora-target).
std::vector<std::string> default_lora_targets(const std::string& model_type);

// Attaches an adapter to every Linear / Conv1D whose name is a target and freezes every other
// parameter (only lora_A / lora_B train). `config.target_modules` is filled with the defaults
// when empty. Returns the adapted modules' paths. ValueError when nothing matches, naming the
// model's Linear layer names.
std::vector<std::string> add_lora(PretrainedModel& model, LoraConfig& config);

// Writes dir/adapter_config.json and dir/adapter_model.safetensors (the lora_A / lora_B weights
// under PEFT's saved names) for a model adapted by add_lora.
void save_lora_adapter(const PretrainedModel& model, const LoraConfig& config,
                       const std::string& dir, const std::string& base_model_name_or_path);
// dir/adapter_config.json. ValueError for a missing file, another peft_type, DoRA, biases or
// modules_to_save (not supported), naming the field.
LoraConfig read_lora_config(const std::string& dir);
// Loads dir/adapter_model.safetensors into a model adapted by add_lora with the same config
// (every adapter key present, shapes equal; ValueError otherwise).
void load_lora_weights(PretrainedModel& model, const std::string& dir);
// Folds the adapter folder into the model's own weights (the model has no adapters attached):
// W += scaling * B A for Linear, W += scaling * (B A)^T for Conv1D. ValueError when a key names a
// module the model lacks or shapes differ. Returns the number of merged layers.
int64_t merge_lora(PretrainedModel& model, const std::string& adapter_dir);

}  // namespace lmf::models
