// lmforge inspect MODEL_DIR: what a model folder holds and how it loads.
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "lmforge/tasks/inspect.h"

namespace lmf::cli {

namespace {

struct InspectOptions {
  std::string dir;
  bool json = false;
};

std::string human_count(int64_t n) {
  if (n >= 1000000000) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1000000) return fmt::format("{:.2f} M", n / 1e6);
  if (n >= 1000) return fmt::format("{:.1f} k", n / 1e3);
  return std::to_string(n);
}

std::string human_bytes(int64_t n) {
  if (n >= (1 << 30)) return fmt::format("{:.2f} GiB", n / double(1 << 30));
  if (n >= (1 << 20)) return fmt::format("{:.1f} MiB", n / double(1 << 20));
  if (n >= (1 << 10)) return fmt::format("{:.1f} KiB", n / double(1 << 10));
  return fmt::format("{} B", n);
}

void print_keys(const char* title, const std::vector<std::string>& keys) {
  fmt::print("{} ({}):\n", title, keys.size());
  const size_t shown = std::min<size_t>(keys.size(), 20);
  for (size_t i = 0; i < shown; ++i) fmt::print("    {}\n", keys[i]);
  if (keys.size() > shown)
    fmt::print("    ... and {} more (--json lists all)\n", keys.size() - shown);
}

void add_common_json(const tasks::ModelInfo& info, nlohmann::json& j) {
  j["parameters"] = info.parameters;
  j["weight_format"] = info.weight_format;
  j["weight_files"] = info.weight_files;
  for (const auto& [name, d] : info.dtypes)
    j["dtypes"][name] = {{"tensors", d.tensors}, {"elements", d.elements}, {"bytes", d.bytes}};
  j["missing_keys"] = info.report.missing_keys;
  j["unexpected_keys"] = info.report.unexpected_keys;
  j["tied_keys"] = info.report.tied_keys;
  j["renamed_keys"] = info.report.renamed_keys;
  j["tokenizer"] = info.tokenizer;
}

void print_common(const tasks::ModelInfo& info) {
  fmt::print("parameters     {} ({})\n", human_count(info.parameters), info.parameters);
  fmt::print("weights        {}: {}\n", info.weight_format, fmt::join(info.weight_files, ", "));
  for (const auto& [name, d] : info.dtypes)
    fmt::print("  dtype {:<6} {} tensors, {} values, {}\n", name, d.tensors,
               human_count(d.elements), human_bytes(d.bytes));
}

void print_report(const tasks::ModelInfo& info) {
  fmt::print("\nload report:\n");
  if (!info.report.prefix_change.empty())
    fmt::print("  checkpoint keys: {}\n", info.report.prefix_change);
  print_keys("  missing keys (newly initialised)", info.report.missing_keys);
  print_keys("  unexpected keys (not used)", info.report.unexpected_keys);
  if (!info.report.tied_keys.empty()) print_keys("  tied keys", info.report.tied_keys);
  if (!info.report.renamed_keys.empty())
    print_keys("  renamed legacy keys", info.report.renamed_keys);
}

// Encoder-decoders (Marian, BART, T5) and decoders: the config's shape keys as they are.
int print_other(const tasks::ModelInfo& info, bool json) {
  if (json) {
    nlohmann::json j;
    j["dir"] = info.dir;
    j["model_type"] = info.model_type;
    j["architecture"] = info.architecture;
    j["config"] = nlohmann::json::object();
    for (const auto& [k, v] : info.shape) j["config"][k] = v;
    add_common_json(info, j);
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("model folder   {}\n", info.dir);
  fmt::print("architecture   {} (model_type {})\n", info.architecture, info.model_type);
  std::vector<std::string> shape;
  for (const auto& [k, v] : info.shape) shape.push_back(fmt::format("{} {}", k, v.dump()));
  fmt::print("config         {}\n", fmt::join(shape, ", "));
  print_common(info);
  fmt::print("tokenizer      {}\n", info.tokenizer);
  print_report(info);
  return 0;
}

int run_inspect(const InspectOptions& o) {
  check_model_dir(o.dir);
  const tasks::ModelInfo info = tasks::inspect_model(o.dir);
  if (!info.bert_family) return print_other(info, o.json);
  const auto& c = info.config;
  if (o.json) {
    nlohmann::json j;
    j["dir"] = info.dir;
    j["model_type"] = models::family_name(c.family);
    j["architectures"] = c.architectures;
    j["architecture"] = info.architecture;
    j["config"] = {{"vocab_size", c.vocab_size},
                   {"hidden_size", c.hidden_size},
                   {"num_hidden_layers", c.num_hidden_layers},
                   {"num_attention_heads", c.num_attention_heads},
                   {"intermediate_size", c.intermediate_size},
                   {"hidden_act", c.hidden_act_name},
                   {"max_position_embeddings", c.max_position_embeddings},
                   {"type_vocab_size", c.type_vocab_size},
                   {"layer_norm_eps", c.layer_norm_eps},
                   {"embedding_size", c.embed_dim()},
                   {"num_labels", c.num_labels}};
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [id, name] : c.id2label) labels[std::to_string(id)] = name;
    j["config"]["id2label"] = labels;
    add_common_json(info, j);
    j["pooler_missing"] = info.report.pooler_missing;
    j["pooler"] = info.pooler;
    j["sentence_transformers_modules"] = info.st_modules;
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("model folder   {}\n", info.dir);
  fmt::print(
      "architecture   {} (model_type {}; config.architectures: {})\n", info.architecture,
      models::family_name(c.family),
      c.architectures.empty() ? "none" : fmt::format("{}", fmt::join(c.architectures, ", ")));
  fmt::print("shape          {} layers, hidden {}, {} heads, intermediate {}, {}\n",
             c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size,
             c.hidden_act_name);
  fmt::print("embeddings     vocab {}, {} positions, {} token types{}\n", c.vocab_size,
             c.max_position_embeddings, c.type_vocab_size,
             c.embed_dim() != c.hidden_size ? fmt::format(", width {}", c.embed_dim()) : "");
  if (c.family == models::EncoderFamily::albert)
    fmt::print("layer sharing  {} group(s) x {} inner layer(s)\n", c.num_hidden_groups,
               c.inner_group_num);
  if (!c.id2label.empty()) {
    std::vector<std::string> l;
    for (const auto& [id, name] : c.id2label) l.push_back(fmt::format("{}={}", id, name));
    fmt::print("labels         {}\n", fmt::join(l, ", "));
  }
  print_common(info);
  fmt::print("pooler         {}\n", info.pooler);
  fmt::print("tokenizer      {}\n", info.tokenizer);
  if (!info.st_modules.empty())
    fmt::print("sentence-transformers modules: {}\n", fmt::join(info.st_modules, ", "));
  print_report(info);
  return 0;
}

}  // namespace

void register_inspect_command(CLI::App& app, Commands& out) {
  auto o = std::make_shared<InspectOptions>();
  auto* sub = app.add_subcommand(
      "inspect",
      "Describe a model folder: config, architecture, parameter count, checkpoint dtypes, the\n"
      "pooler status, the tokenizer, and the weights that did not load (missing/unexpected keys).\n"
      "Encoders (BERT family), encoder-decoders (Marian, BART, T5) and decoders (GPT-2, LLaMA).");
  sub->add_option("model_dir", o->dir, "a Hugging Face model folder")->required();
  sub->add_flag("--json", o->json, "print one JSON object (every key listed)");
  sub->footer(
      "The model is built from config.json's architectures[0] and loaded as transformers would,\n"
      "so the load report shows what HF's from_pretrained warns about. A pooler missing from the\n"
      "checkpoint is reported, never silently initialised at random.\n"
      "EXIT STATUS\n"
      "  0 success; 2 missing folder, malformed config, unknown architecture or bad checkpoint.\n"
      "EXAMPLES\n"
      "  lmforge inspect models/all-MiniLM-L6-v2\n"
      "  lmforge inspect path/to/bert-mlm --json\n"
      "  lmforge inspect runs/marian-en-fr\n");
  out.push_back({sub, [o] { return run_inspect(*o); }});
}

}  // namespace lmf::cli
