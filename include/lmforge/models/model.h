// The family-neutral model interface: every Hugging Face architecture lmforge implements (the
// BERT encoder family, GPT-2, LLaMA, ...) is a PretrainedModel; what loading and saving a Hugging
// Face folder needs (model_type, class name, config.json text, how checkpoint keys map onto the
// module tree) is asked of the model, never of a family-specific config type.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lmforge/nn/module.h"

namespace lmf::models {

struct LoadOptions {
  // Overrides config.architectures[0], e.g. "BertModel" to load an MLM checkpoint as an encoder.
  std::string architecture;
  // A checkpoint without pooler weights normally leaves pooler_output refused (never silently
  // random, unlike HF); with a seed the pooler is initialised N(0, initializer_range) from it.
  // Encoder family only.
  std::optional<uint64_t> pooler_init_seed;
  bool strict = false;  // ValueError when any key is missing or unexpected
  // f32 parameters become the checkpoint's tensors (views of its private, copy-on-write mmap)
  // instead of copies, so loading does not double the memory; other dtypes are converted copies.
  bool zero_copy = true;
};

struct LoadReport {
  std::vector<std::string> missing_keys;     // model keys the checkpoint lacks (left initialised)
  std::vector<std::string> unexpected_keys;  // checkpoint keys the model does not have
  std::vector<std::string> tied_keys;        // shared with another key (e.g. MLM decoder)
  std::vector<std::string> renamed_keys;     // legacy "old -> new" (gamma/beta)
  std::string prefix_change;                 // "" or e.g. "added 'bert.'" / "removed 'bert.'"
  bool pooler_missing = false;               // the model has a pooler the checkpoint lacks
  bool pooler_initialized = false;           // ... and it was initialised from pooler_init_seed
  std::string summary() const;               // human-readable, like HF's load warnings
};

// How a family's checkpoints map onto its module tree: HF's base_model_prefix, whether this
// model's own keys carry it (a head) or not (the base model), _tied_weights_keys, legacy renames
// and keys that are never parameters (old non-persistent buffers).
struct LoadSpec {
  std::string base_prefix;        // "bert", "roberta", "transformer" (GPT-2), "model" (LLaMA)
  bool keys_have_prefix = false;  // true for heads ("bert.encoder..."), false for XModel
  std::vector<std::pair<std::string, std::string>> tied;  // (target, source): target shares
  // Legacy key -> current key (identity when empty), e.g. "LayerNorm.gamma" -> "LayerNorm.weight".
  std::function<std::string(const std::string&)> rename;
  // Checkpoint keys ending in one of these are dropped silently (e.g. "attn.masked_bias").
  std::vector<std::string> ignored_suffixes;
};

// Any Hugging Face model lmforge implements. forward() is family-specific (EncoderModel,
// DecoderModel); this is what registry, loader, saver and inspect need.
class PretrainedModel : public nn::Module {
 public:
  virtual std::string model_type() const = 0;    // config.json "model_type", e.g. "llama"
  virtual std::string architecture() const = 0;  // HF class name, e.g. "LlamaForCausalLM"
  // config.json as transformers' save_pretrained writes it for this model (architectures =
  // [architecture()]).
  virtual std::string config_json() const = 0;
  virtual LoadSpec load_spec() const = 0;
  // Loads HF state-dict keys through load_hf_state_dict (models/hf_loader.h); families with
  // extra rules (BERT's refused pooler) extend it.
  virtual LoadReport load(const nn::StateDict& state, const LoadOptions& opt = {},
                          const std::string& origin = "checkpoint");
  // Initialises parameters a checkpoint did not provide as the family's HF _init_weights does
  // (called by the registry's generic load path).
  virtual void init_missing(const std::vector<std::string>& keys) { (void)keys; }
  // State-dict keys save_pretrained leaves out besides tied targets (BERT: a refused pooler).
  virtual std::vector<std::string> keys_not_saved() const { return {}; }
  // Brings tensors a model keeps in a run-time layout back to the checkpoint's before saving
  // (e.g. LLaMA q/k rows read in place from a GGUF file); `tensors` is what will be written.
  virtual void to_saved_layout(nn::StateDict& tensors) const { (void)tensors; }
};

// Writes `dir` (created if needed) as transformers' save_pretrained does: config.json
// (config_json()) and model.safetensors (f32) with every state-dict key except tied targets and
// keys_not_saved(); HF re-ties on load. Files are written to a temporary name and renamed
// (model.safetensors first, config.json last).
void save_pretrained(const PretrainedModel& model, const std::string& dir);
// `bytes` written to `path`.tmp, fsynced and renamed; IoError naming the file on failure.
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace lmf::models
