// Saving the BERT family as Hugging Face folders: config.json exactly as transformers 5.24's
// save_pretrained writes it, and model.safetensors without the tied copies HF leaves out.
#include <nlohmann/json.hpp>
#include <set>

#include "lmforge/io/checkpoint.h"
#include "lmforge/models/bert.h"
#include "models/bert_json.h"

namespace lmf::models {

namespace {

using nlohmann::json;

// The transformers version whose config.json this file reproduces.
constexpr const char* kTransformersVersion = "5.24.0";

// id2label as HF holds it: num_labels entries "LABEL_i" unless given.
std::map<int64_t, std::string> effective_id2label(const BertConfig& c) {
  if (!c.id2label.empty()) return c.id2label;
  std::map<int64_t, std::string> m;
  for (int64_t i = 0; i < c.num_labels; ++i) m[i] = "LABEL_" + std::to_string(i);
  return m;
}

}  // namespace

namespace detail {

json family_fixed_keys(EncoderFamily f) {
  json j = json::object();
  switch (f) {
    case EncoderFamily::bert:
    case EncoderFamily::electra:
      j["bos_token_id"] = nullptr;
      j["eos_token_id"] = nullptr;
      break;
    case EncoderFamily::roberta:
      j["bos_token_id"] = 0;
      j["eos_token_id"] = 2;
      break;
    case EncoderFamily::albert:
      j["bos_token_id"] = 2;
      j["eos_token_id"] = 3;
      break;
  }
  if (f != EncoderFamily::albert) {
    j["add_cross_attention"] = false;
    j["is_decoder"] = false;
    j["use_cache"] = true;
  }
  return j;
}

std::map<std::string, std::string> config_extra_keys(const json& j, EncoderFamily fam) {
  const json fixed = family_fixed_keys(fam);
  static const std::set<std::string> kRead = {"architectures",
                                              "model_type",
                                              "vocab_size",
                                              "hidden_size",
                                              "num_hidden_layers",
                                              "num_attention_heads",
                                              "intermediate_size",
                                              "hidden_act",
                                              "hidden_dropout_prob",
                                              "attention_probs_dropout_prob",
                                              "max_position_embeddings",
                                              "type_vocab_size",
                                              "initializer_range",
                                              "layer_norm_eps",
                                              "pad_token_id",
                                              "num_hidden_groups",
                                              "inner_group_num",
                                              "classifier_dropout",
                                              "classifier_dropout_prob",
                                              "problem_type",
                                              "tie_word_embeddings",
                                              "summary_type",
                                              "summary_use_proj",
                                              "summary_proj_to_labels",
                                              "summary_activation",
                                              "summary_first_dropout",
                                              "summary_last_dropout",
                                              "id2label",
                                              "label2id",
                                              "num_labels",
                                              "_name_or_path",
                                              "transformers_version",
                                              "dtype",
                                              "torch_dtype"};
  static const json kBaseDefaults = {{"chunk_size_feed_forward", 0},
                                     {"is_encoder_decoder", false},
                                     {"output_attentions", false},
                                     {"output_hidden_states", false},
                                     {"return_dict", true}};
  std::map<std::string, std::string> extra;
  for (const auto& [k, v] : j.items()) {
    if (kRead.count(k)) continue;
    if (k == "embedding_size" && (fam == EncoderFamily::albert || fam == EncoderFamily::electra))
      continue;
    if (kBaseDefaults.contains(k) && kBaseDefaults.at(k) == v) continue;
    if (fixed.contains(k) && fixed.at(k) == v) continue;
    extra[k] = v.dump();
  }
  return extra;
}

}  // namespace detail

std::string BertConfig::to_json() const {
  const BertConfig d = defaults(family);
  const bool albert = family == EncoderFamily::albert, electra = family == EncoderFamily::electra;
  json j = detail::family_fixed_keys(family);
  if (!architectures.empty()) j["architectures"] = architectures;
  j["model_type"] = family_name(family);
  j["transformers_version"] = kTransformersVersion;
  j["dtype"] = "float32";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["hidden_act"] = hidden_act_name;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  j["max_position_embeddings"] = max_position_embeddings;
  j["type_vocab_size"] = type_vocab_size;
  j["initializer_range"] = initializer_range;
  j["layer_norm_eps"] = layer_norm_eps;
  j["pad_token_id"] = pad_token_id;
  j["tie_word_embeddings"] = tie_word_embeddings;
  // Fields of the family's config class are always written; others (kept as extra attributes
  // by HF) only when they differ from the family's default.
  if (albert || electra) j["embedding_size"] = embed_dim();
  if (albert || num_hidden_groups != d.num_hidden_groups)
    j["num_hidden_groups"] = num_hidden_groups;
  if (albert || inner_group_num != d.inner_group_num) j["inner_group_num"] = inner_group_num;
  if (albert || classifier_dropout_prob != d.classifier_dropout_prob)
    j["classifier_dropout_prob"] = classifier_dropout_prob;
  if (!albert || classifier_dropout)
    j["classifier_dropout"] = classifier_dropout ? json(*classifier_dropout) : json(nullptr);
  if (electra || summary_type != d.summary_type) j["summary_type"] = summary_type;
  if (electra || summary_use_proj != d.summary_use_proj) j["summary_use_proj"] = summary_use_proj;
  if (electra || summary_activation != d.summary_activation)
    j["summary_activation"] = summary_activation;
  if (electra || summary_last_dropout != d.summary_last_dropout)
    j["summary_last_dropout"] = summary_last_dropout;
  if (summary_first_dropout != d.summary_first_dropout)
    j["summary_first_dropout"] = summary_first_dropout;
  if (summary_proj_to_labels != d.summary_proj_to_labels)
    j["summary_proj_to_labels"] = summary_proj_to_labels;
  // Labels: HF leaves out its default {0: LABEL_0, 1: LABEL_1} and the matching label2id.
  const auto id2 = effective_id2label(*this);
  std::map<std::string, int64_t> l2i = label2id;
  if (l2i.empty())
    for (const auto& [id, name] : id2) l2i[name] = id;
  const std::map<int64_t, std::string> default_id2 = {{0, "LABEL_0"}, {1, "LABEL_1"}};
  const std::map<std::string, int64_t> default_l2i = {{"LABEL_0", 0}, {"LABEL_1", 1}};
  if (id2 != default_id2) {
    json m = json::object();
    for (const auto& [id, name] : id2) m[std::to_string(id)] = name;
    j["id2label"] = m;
  }
  if (l2i != default_l2i) j["label2id"] = l2i;
  if (!problem_type.empty()) j["problem_type"] = problem_type;
  for (const auto& [k, raw] : extra) {
    if (j.contains(k) && !detail::family_fixed_keys(family).contains(k))
      continue;  // modelled fields win
    j[k] = json::parse(raw);
  }
  // Python's json.dumps(indent=2, sort_keys=True, ensure_ascii=True) + "\n".
  return j.dump(2, ' ', true) + "\n";
}

std::string EncoderModel::config_json() const {
  BertConfig out = cfg_;
  out.architectures = {architecture()};
  return out.to_json();
}

std::vector<std::string> EncoderModel::keys_not_saved() const {
  // A pooler lmforge refuses (no weights were loaded for it) is not saved as if it were trained.
  std::vector<std::string> skip;
  auto& base = const_cast<EncoderModel&>(*this).encoder();
  if (base.has_pooler() && !base.pooler_unavailable().empty()) {
    const std::string prefix = &base == this ? std::string() : prefix_ + ".";
    for (const auto& k : base.pooler_keys()) skip.push_back(prefix + k);
  }
  return skip;
}

}  // namespace lmf::models
