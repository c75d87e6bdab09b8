// Loading Hugging Face state dicts into any module tree (every family uses it): legacy renames,
// the base-model prefix added or removed as transformers does (a head accepts a base checkpoint
// and a base model a head's), tied weights, missing/unexpected keys, shape checks naming every
// mismatching key, zero-copy f32 parameters.
#pragma once
#include <string>

#include "lmforge/models/model.h"

namespace lmf::models {

// `architecture` names the model in errors ("LlamaForCausalLM"), `origin` the checkpoint.
// ShapeError naming every key whose shape differs; in opt.strict mode ValueError listing missing
// and unexpected keys. Tied targets share their source's tensor after loading.
LoadReport load_hf_state_dict(nn::Module& model, const nn::StateDict& state, const LoadSpec& spec,
                              const LoadOptions& opt, const std::string& architecture,
                              const std::string& origin);

// The state dict transformers' save_pretrained writes: every key except tied targets.
nn::StateDict state_dict_for_save(const nn::Module& model, const LoadSpec& spec);

}  // namespace lmf::models
