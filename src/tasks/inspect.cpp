#include "lmforge/tasks/inspect.h"

#include <filesystem>
#include <set>

#include "lmforge/io/checkpoint.h"
#include "lmforge/io/json.h"
#include "lmforge/models/registry.h"
#include "lmforge/tokenizers/marian.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::tasks {

namespace fs = std::filesystem;

namespace {

void count_safetensors(const fs::path& file, ModelInfo& info) {
  for (const auto& t : io::read_safetensors_header(file.string())) {
    auto& c = info.dtypes[t.stored_dtype];
    ++c.tensors;
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    c.elements += n;
    c.bytes += static_cast<int64_t>(t.end - t.begin);
  }
}

void count_torch_bin(const fs::path& file, ModelInfo& info) {
  for (const auto& [name, t] : io::load_torch_bin(file.string(), std::nullopt)) {
    auto& c = info.dtypes[std::string(dtype_name(t.dtype()))];
    ++c.tensors;
    c.elements += t.numel();
    c.bytes += static_cast<int64_t>(t.nbytes());
  }
}

// The shard files an index lists, in order, each once.
std::vector<std::string> shard_files(const fs::path& index) {
  const nlohmann::json j = io::read_json_file(index.string());
  LMF_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), ValueError,
            "{}: no \"weight_map\" object", index.string());
  std::set<std::string> files;
  for (const auto& [k, v] : j["weight_map"].items())
    if (v.is_string()) files.insert(v.get<std::string>());
  return {files.begin(), files.end()};
}

void read_weights(const fs::path& dir, ModelInfo& info) {
  if (fs::exists(dir / "model.safetensors")) {
    info.weight_format = "safetensors";
    info.weight_files = {"model.safetensors"};
    count_safetensors(dir / "model.safetensors", info);
  } else if (fs::exists(dir / "model.safetensors.index.json")) {
    info.weight_format = "safetensors (sharded)";
    info.weight_files = shard_files(dir / "model.safetensors.index.json");
    for (const auto& f : info.weight_files) count_safetensors(dir / f, info);
  } else if (fs::exists(dir / "pytorch_model.bin")) {
    info.weight_format = "pytorch .bin";
    info.weight_files = {"pytorch_model.bin"};
    count_torch_bin(dir / "pytorch_model.bin", info);
  } else if (fs::exists(dir / "pytorch_model.bin.index.json")) {
    info.weight_format = "pytorch .bin (sharded)";
    info.weight_files = shard_files(dir / "pytorch_model.bin.index.json");
    for (const auto& f : info.weight_files) count_torch_bin(dir / f, info);
  }
}

std::string describe_tokenizer(const fs::path& dir) {
  if (fs::exists(dir / "source.spm") && fs::exists(dir / "target.spm") &&
      fs::exists(dir / "vocab.json")) {
    try {
      const tok::MarianTokenizer t = tok::MarianTokenizer::from_folder(dir.string());
      return fmt::format("Marian (source.spm, target.spm, vocab.json: {} tokens)", t.vocab_size());
    } catch (const Error& e) {
      return fmt::format("Marian (source.spm, target.spm, vocab.json) fails to load: {}", e.what());
    }
  }
  const char* file = fs::exists(dir / "tokenizer.json")    ? "tokenizer.json"
                     : fs::exists(dir / "vocab.txt")       ? "vocab.txt"
                     : fs::exists(dir / "source.spm")      ? "source.spm (Marian)"
                     : fs::exists(dir / "vocab.json")      ? "vocab.json + merges.txt"
                     : fs::exists(dir / "spiece.model")    ? "spiece.model"
                     : fs::exists(dir / "tokenizer.model") ? "tokenizer.model"
                                                           : nullptr;
  if (file == nullptr) return "none (no tokenizer.json or vocab.txt): the folder can't take text";
  try {
    const tok::Tokenizer t = tok::Tokenizer::from_pretrained(dir);
    return fmt::format("{} ({} tokens)", file, t.vocab_size());
  } catch (const Error& e) {
    return fmt::format("{} fails to load: {}", file, e.what());
  }
}

bool is_bert_family(const std::string& model_type) {
  return model_type == "bert" || model_type == "roberta" || model_type == "albert" ||
         model_type == "electra";
}

// The config.json keys that describe a non-BERT model's shape, those present, in this order.
std::vector<std::pair<std::string, nlohmann::json>> shape_of(const nlohmann::json& c) {
  static const char* const kKeys[] = {"vocab_size",
                                      "decoder_vocab_size",
                                      "d_model",
                                      "hidden_size",
                                      "n_embd",
                                      "encoder_layers",
                                      "decoder_layers",
                                      "num_layers",
                                      "num_decoder_layers",
                                      "num_hidden_layers",
                                      "n_layer",
                                      "encoder_attention_heads",
                                      "decoder_attention_heads",
                                      "num_heads",
                                      "num_attention_heads",
                                      "n_head",
                                      "num_key_value_heads",
                                      "d_kv",
                                      "encoder_ffn_dim",
                                      "decoder_ffn_dim",
                                      "d_ff",
                                      "intermediate_size",
                                      "feed_forward_proj",
                                      "activation_function",
                                      "hidden_act",
                                      "max_position_embeddings",
                                      "n_positions",
                                      "relative_attention_num_buckets",
                                      "relative_attention_max_distance",
                                      "scale_embedding",
                                      "normalize_before",
                                      "share_encoder_decoder_embeddings",
                                      "tie_word_embeddings",
                                      "pad_token_id",
                                      "eos_token_id",
                                      "bos_token_id",
                                      "decoder_start_token_id",
                                      "forced_eos_token_id",
                                      "is_encoder_decoder",
                                      "num_labels"};
  std::vector<std::pair<std::string, nlohmann::json>> out;
  for (const char* k : kKeys)
    if (c.contains(k) && !c[k].is_null()) out.emplace_back(k, c[k]);
  return out;
}

}  // namespace

ModelInfo inspect_model(const std::string& dir) {
  LMF_CHECK(fs::is_directory(dir), IoError, "model folder '{}' does not exist or is not a folder",
            dir);
  ModelInfo info;
  info.dir = dir;
  const fs::path root(dir);
  if (fs::exists(root / "modules.json")) {
    const nlohmann::json mods = io::read_json_file((root / "modules.json").string());
    if (mods.is_array())
      for (const auto& m : mods)
        if (m.is_object() && m.contains("type") && m["type"].is_string())
          info.st_modules.push_back(m["type"].get<std::string>());
  }
  const nlohmann::json cfg = io::read_json_file((root / "config.json").string());
  info.model_type = cfg.is_object() ? cfg.value("model_type", std::string()) : std::string();
  if (!is_bert_family(info.model_type)) {
    // Encoder-decoders and decoders: built through the registry as load_pretrained does.
    info.bert_family = false;
    auto model = models::load_pretrained(dir, {}, &info.report);
    info.architecture = model->architecture();
    info.parameters = model->num_parameters();
    info.shape = shape_of(cfg);
    read_weights(root, info);
    info.tokenizer = describe_tokenizer(root);
    return info;
  }
  info.config = models::BertConfig::from_file((root / "config.json").string());
  auto model = models::create_model(dir, {}, &info.report);
  info.architecture = model->architecture();
  info.parameters = model->num_parameters();
  read_weights(root, info);
  const models::BertModel& base = model->encoder();
  bool pooler_weights = false;
  for (const auto& k : info.report.unexpected_keys)
    pooler_weights = pooler_weights || k.find("pooler.") != std::string::npos;
  if (!base.has_pooler())
    info.pooler = fmt::format(
        "none: {} is built without a pooler; {}", info.architecture,
        pooler_weights
            ? "the checkpoint's pooler weights load when it is used as an encoder (lmforge embed)"
            : "the checkpoint has no pooler weights either, so as an encoder (lmforge embed) "
              "pooler_output is refused: use --pooling cls or mean");
  else if (info.report.pooler_missing && !info.report.pooler_initialized)
    info.pooler =
        "absent from the checkpoint: pooler_output and --pooling pooler are refused (HF would "
        "initialise it at random on every load); use --pooling cls or mean, or "
        "--pooler-init-seed N for one initialised from seed N (reproducible, untrained)";
  else
    info.pooler = "present, loaded from the checkpoint";
  info.tokenizer = describe_tokenizer(root);
  return info;
}

}  // namespace lmf::tasks
