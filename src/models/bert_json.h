// config.json keys shared by BertConfig::from_json (bert.cpp) and to_json (bert_save.cpp): what
// transformers writes for each family beyond lmforge's fields, and what is kept as "extra".
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "lmforge/models/bert.h"

namespace lmf::models::detail {

// Keys transformers' config class of the family always writes although lmforge does not model
// them (bos/eos_token_id, add_cross_attention, is_decoder, use_cache), at their defaults.
nlohmann::json family_fixed_keys(EncoderFamily f);

// The keys of `j` that from_json does not read, kept raw for to_json as transformers keeps
// unknown attributes. Left out like transformers: _name_or_path, the version and dtype it
// rewrites, num_labels (id2label stands for it), base-config keys at their default value, and
// family_fixed_keys at their default value.
std::map<std::string, std::string> config_extra_keys(const nlohmann::json& j, EncoderFamily fam);

}  // namespace lmf::models::detail
