// Pieces every decoder family shares (internal to src/models): config.json reading/writing rules
// of transformers 5.x, position ids and attention masks as transformers builds them, the causal LM
// loss and sequence-classification pooling.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/models/bert.h"  // parse_activation (HF activation names)
#include "lmforge/models/decoder.h"
#include "lmforge/ops/ops.h"

namespace lmf::models::detail {

// The transformers version whose save_pretrained output the decoder families reproduce.
inline constexpr const char* kDecoderTransformersVersion = "5.25.0";

// Typed reads of config.json fields: absent or null keeps the default; a wrong type is a
// ValueError naming the file and the key.
struct ConfigReader {
  const nlohmann::json& j;
  const std::string& origin;
  const nlohmann::json* find(const char* key) const;
  [[noreturn]] void bad(const char* key, const char* want) const;
  void get(const char* key, int64_t& v) const;
  void get(const char* key, double& v) const;
  void get(const char* key, bool& v) const;
  void get(const char* key, std::string& v) const;
  void get(const char* key, std::optional<int64_t>& v) const;  // null/absent: none
  // A string naming an HF activation ("gelu_new", "silu", ...); ValueError naming the key and
  // the supported names otherwise.
  void get_activation(const char* key, std::string& v) const;
};

// Labels, eos ids and unmodelled keys that every decoder config carries the same way.
struct CommonConfigFields {
  std::vector<std::string> architectures;
  int64_t num_labels = 2;
  std::map<int64_t, std::string> id2label;
  std::map<std::string, int64_t> label2id;
  std::string problem_type;
  std::vector<int64_t> eos_token_ids;  // "eos_token_id": an int or a list
  bool eos_is_list = false;
  bool eos_set = false;                      // false: null
  std::map<std::string, std::string> extra;  // key -> raw JSON, written back as HF keeps them
};

// Reads architectures, labels and eos_token_id (defaults given), and keeps every key not in
// `modelled` (nor a base-config key at its default) in `extra`.
void read_common(const nlohmann::json& j, const std::string& origin,
                 const std::vector<std::string>& modelled, CommonConfigFields& c);
// Writes architectures, labels, eos, dtype, transformers_version and the extra keys into j, then
// dumps it as transformers' to_json_string (sorted keys, indent 2, a final newline).
std::string finish_config_json(nlohmann::json j, const CommonConfigFields& c,
                               const std::string& architecture);
nlohmann::json optional_json(const std::optional<int64_t>& v);
// A key holding an integer, a list of integers or null (forced_eos_token_id): ids (empty for
// null) and whether it was a list; absent keeps `ids`. id_list_json writes it back.
void read_id_list(const ConfigReader& r, const char* key, std::vector<int64_t>& ids, bool& is_list);
nlohmann::json id_list_json(const std::vector<int64_t>& ids, bool is_list);

// config.json text as a JSON object; ValueError naming `origin` when it is not valid JSON or not an
// object.
nlohmann::json parse_config_object(const std::string& text, const std::string& origin);

// read_common into a family config `C` whose members carry CommonConfigFields' names
// (GPT2Config, LlamaConfig, MarianConfig), and the same fields back out for finish_config_json.
template <class C>
void read_common_into(const nlohmann::json& j, const std::string& origin,
                      const std::vector<std::string>& modelled, C& c) {
  CommonConfigFields cf;
  cf.num_labels = c.num_labels;  // the family's default (BART: 3)
  cf.eos_token_ids = c.eos_token_ids;
  cf.eos_set = c.eos_set;
  read_common(j, origin, modelled, cf);
  c.architectures = cf.architectures;
  c.num_labels = cf.num_labels;
  c.id2label = cf.id2label;
  c.label2id = cf.label2id;
  c.problem_type = cf.problem_type;
  c.eos_token_ids = cf.eos_token_ids;
  c.eos_is_list = cf.eos_is_list;
  c.eos_set = cf.eos_set;
  c.extra = cf.extra;
}
template <class C>
std::string finish_config_json_of(nlohmann::json j, const C& c, const std::string& architecture) {
  CommonConfigFields cf;
  cf.num_labels = c.num_labels;
  cf.id2label = c.id2label;
  cf.label2id = c.label2id;
  cf.problem_type = c.problem_type;
  cf.eos_token_ids = c.eos_token_ids;
  cf.eos_is_list = c.eos_is_list;
  cf.eos_set = c.eos_set;
  cf.extra = c.extra;
  return finish_config_json(std::move(j), cf, architecture);
}

// Position ids as transformers' generate() makes them: cumsum(mask) - 1 with 1 at masked
// positions, the last T columns ([B, T]); without a mask past + arange(T) ([T]).
Tensor default_position_ids(const Tensor& attention_mask, int64_t past, int64_t T);
// Checks input_ids [B, T], attention_mask [B, past + T] and the cache's batch; returns past.
int64_t check_decoder_inputs(const char* who, const DecoderInputs& in);
// Self-attention options of one layer: causal, the key padding mask (when some key is masked) and
// the sliding window (keys with q - k >= window dropped; 0: none), positions being cache indices.
AttentionOptions decoder_attention_options(const Tensor& key_padding, int64_t past, int64_t T,
                                           int64_t sliding_window);
// The attention mask as the bool key padding mask, or undefined when every key is attended.
Tensor key_padding_from(const Tensor& attention_mask);

// HF _init_weights for parameters a checkpoint lacked (a new head, or every key of a model from
// a config): biases 0, norm weights 1, the rest N(0, initializer_range); keys ending in
// "c_proj.weight" N(0, c_proj_std) when c_proj_std > 0 (GPT-2's scaled residual projections,
// initializer_range / sqrt(2 n_layer)); row pad_row of "embed_tokens.weight" zero when >= 0
// (nn.Embedding's padding_idx in the LLaMA family).
void init_missing_decoder_weights(nn::Module& m, const std::vector<std::string>& keys,
                                  double initializer_range, double c_proj_std = 0.0,
                                  int64_t pad_row = -1);

// HF ForCausalLMLoss: labels shifted left inside (the last position predicts nothing), -100
// ignored, mean over the remaining tokens.
Tensor causal_lm_loss(const Tensor& logits, const Tensor& labels);
// HF's sequence classification on a decoder: logits [B, T, L] -> [B, L] at each row's rightmost
// token that is not pad_token_id (the last one without a pad token, batch 1 only).
Tensor pool_last_token(const Tensor& logits, const Tensor& input_ids,
                       std::optional<int64_t> pad_token_id, const std::string& who);
// HF's sequence classification loss (problem_type as given or decided from the labels).
Tensor sequence_classification_loss(const Tensor& logits, const Tensor& labels, int64_t num_labels,
                                    const std::string& problem_type);

}  // namespace lmf::models::detail
