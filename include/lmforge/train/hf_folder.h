// What the training objectives share: copying a model folder's tokenizer files next to the saved
// weights, reloading saved weights into live parameters, reading data and config files.
#pragma once
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>

#include "lmforge/models/model.h"

namespace lmf::train {

// Copies each of `names` that exists in `from` into `to` (overwriting); IoError naming the file
// when a copy fails. `from` empty: nothing.
void copy_existing_files(const std::string& from, const std::string& to,
                         std::initializer_list<const char*> names);

// The whole file as bytes; IoError naming it when it cannot be opened or read.
std::string read_file_bytes(const std::string& path);

// config.json text's "model_type" ("" when absent or not an object); ValueError naming `origin`
// when the text is not JSON.
std::string config_model_type(const std::string& config_text, const std::string& origin);

// Calls fn(record, where) for every record of a JSON file: one array of records ("file: record N")
// or JSON Lines ("file:line"; blank lines skipped). ValueError for invalid UTF-8 or JSON (naming
// file:line for JSON Lines); IoError when unreadable.
void for_each_json_record(
    const std::string& path,
    const std::function<void(const nlohmann::ordered_json&, const std::string&)>& fn);

// Loads dir/model.safetensors into `model` strictly, copying into the existing parameter tensors
// (the optimizer holds them), as Objective::load_pretrained needs for --resume and the best model.
void load_saved_weights(models::PretrainedModel& model, const std::string& dir);

}  // namespace lmf::train
