// What every Objective's save_pretrained / load_pretrained shares: copying a model folder's
// tokenizer files next to the saved weights, and reloading saved weights into live parameters.
#pragma once
#include <initializer_list>
#include <string>

#include "lmforge/models/model.h"

namespace lmf::train {

// Copies each of `names` that exists in `from` into `to` (overwriting); IoError naming the file
// when a copy fails. `from` empty: nothing.
void copy_existing_files(const std::string& from, const std::string& to,
                         std::initializer_list<const char*> names);

// Loads dir/model.safetensors into `model` strictly, copying into the existing parameter tensors
// (the optimizer holds them), as Objective::load_pretrained needs for --resume and the best model.
void load_saved_weights(models::PretrainedModel& model, const std::string& dir);

}  // namespace lmf::train
