// Decoders ready to use (tasks/causal_lm.h): loading from a folder or a GGUF file, chat prompts,
// perplexity, conversion.
#include "lmforge/tasks/causal_lm.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "lmforge/core/autograd.h"
#include "lmforge/core/error.h"
#include "lmforge/io/gguf.h"
#include "lmforge/io/json.h"
#include "lmforge/models/llama.h"
#include "lmforge/models/lora.h"
#include "lmforge/models/registry.h"
#include "lmforge/tasks/gguf_convert.h"
#include "lmforge/tokenizers/chat_template.h"
#include "lmforge/tokenizers/unicode.h"

namespace lmf::tasks {

namespace fs = std::filesystem;

namespace {

bool is_gguf_file(const std::string& path) {
  if (!fs::is_regular_file(path)) return false;
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  f.read(magic, 4);
  return f.gcount() == 4 && std::string(magic, 4) == "GGUF";
}

std::unique_ptr<models::DecoderModel> as_decoder(std::unique_ptr<models::PretrainedModel> m,
                                                 const std::string& path) {
  if (auto* d = dynamic_cast<models::DecoderModel*>(m.get())) {
    m.release();
    return std::unique_ptr<models::DecoderModel>(d);
  }
  models::throw_not_a(path, *m, "a decoder language model (GPT-2, LLaMA, Qwen2, Mistral)");
}

void finish(CausalLM& lm) {
  LMF_CHECK(lm.model->is_causal_lm(), ValueError,
            "{} holds a {} (no language-model head): generation needs a *LMHeadModel / "
            "*ForCausalLM checkpoint",
            lm.source, lm.model->architecture());
  lm.model->prepare_inference();
  const models::DecoderSpec spec = lm.model->spec();
  // transformers fills generation's special ids from the model config when the generation
  // config has none.
  if (lm.generation.eos_token_id.empty()) lm.generation.eos_token_id = spec.eos_token_ids;
  if (!lm.generation.bos_token_id && spec.bos_token_id >= 0)
    lm.generation.bos_token_id = spec.bos_token_id;
  if (!lm.generation.pad_token_id && spec.pad_token_id >= 0)
    lm.generation.pad_token_id = spec.pad_token_id;
}

CausalLM load_folder(const std::string& dir) {
  CausalLM lm;
  lm.source = dir;
  lm.format = "hf";
  lm.model = as_decoder(models::load_pretrained(dir), dir);
  LMF_CHECK(fs::exists(fs::path(dir) / "tokenizer.json"), IoError,
            "{} has no tokenizer.json: lmforge needs the fast-tokenizer file next to the model "
            "(save it with transformers' tokenizer.save_pretrained)",
            dir);
  lm.tokenizer = std::make_unique<tok::Tokenizer>(tok::Tokenizer::from_pretrained(dir));
  lm.generation = GenerationConfig::from_pretrained(dir);
  if (fs::exists(fs::path(dir) / "tokenizer_config.json"))
    lm.tokenizer_config = io::read_json_file((fs::path(dir) / "tokenizer_config.json").string());
  lm.chat_template = tok::load_chat_template(dir);
  finish(lm);
  return lm;
}

CausalLM load_gguf(const std::string& path) {
  const io::GgufFile file = io::GgufFile::open(path);
  // LLaMA q/k weights stay in the file's rotary row order (read in place, no permuted copies:
  // 51 MB less resident for SmolLM2); the model rotates interleaved pairs instead.
  HfFromGguf hf = gguf_to_hf(file, /*keep_rotary_layout=*/true);
  CausalLM lm;
  lm.source = path;
  const io::GgufTensorInfo* t = file.find_tensor("blk.0.attn_q.weight");
  lm.format = fmt::format("gguf v{} ({}, dequantized to f32)", file.version(),
                          t ? io::ggml_type_name(t->type) : std::string("?"));
  std::unique_ptr<models::PretrainedModel> loaded =
      models::load_pretrained(hf.config_json, hf.state_dict, {}, nullptr, path);
  if (hf.rotary_layout_kept) {
    models::LlamaModel* base = models::llama_base_model(*loaded);
    LMF_CHECK(base != nullptr, IoError, "{}: a llama GGUF file did not build a LLaMA model", path);
    base->set_gguf_rotary_layout(true);
  }
  lm.model = as_decoder(std::move(loaded), path);
  lm.tokenizer = std::make_unique<tok::Tokenizer>(tok::Tokenizer::from_json(hf.tokenizer_json));
  lm.tokenizer_config = nlohmann::json::parse(hf.tokenizer_config_json);
  lm.generation = GenerationConfig::from_json(nlohmann::json::parse(hf.generation_config_json));
  lm.chat_template = tok::chat_template_from_config(lm.tokenizer_config);
  if (!lm.chat_template && !hf.chat_template.empty()) lm.chat_template = hf.chat_template;
  finish(lm);
  return lm;
}

}  // namespace

int64_t CausalLM::context_length() const {
  const models::DecoderSpec s = model->spec();
  return s.max_positions > 0 ? s.max_positions : s.trained_positions;
}

CausalLM load_causal_lm(const std::string& path) {
  LMF_CHECK(!path.empty(), ValueError, "no model given: pass --model DIR or --model FILE.gguf");
  LMF_CHECK(fs::exists(path), IoError,
            "'{}' does not exist: pass a Hugging Face model folder or a .gguf file{}", path,
            path.find("SmolLM2") != std::string::npos
                ? " (the default SmolLM2 is installed by `bash scripts/setup.sh`)"
                : "");
  if (fs::is_directory(path)) return load_folder(path);
  LMF_CHECK(is_gguf_file(path), IoError,
            "'{}' is neither a model folder nor a GGUF file (it does not start with \"GGUF\")",
            path);
  return load_gguf(path);
}

CausalLM load_causal_lm(const std::string& path, const std::string& lora_dir) {
  if (lora_dir.empty()) return load_causal_lm(path);
  LMF_CHECK(fs::is_directory(path), ValueError,
            "--lora needs the base model as a Hugging Face folder, not '{}'; convert a GGUF file "
            "first (lmforge convert MODEL.gguf -o DIR)",
            path);
  CausalLM lm = load_causal_lm(path);
  lm.model->release_inference();
  models::merge_lora(*lm.model, lora_dir);
  lm.model->prepare_inference();
  lm.source += " + LoRA " + lora_dir;
  return lm;
}

std::vector<int64_t> encode_text(const CausalLM& lm, const std::string& text) {
  LMF_CHECK(!text.empty(), ValueError, "empty prompt: give some text to continue");
  const auto enc = lm.tokenizer->encode(text, true);
  std::vector<int64_t> ids(enc.ids.begin(), enc.ids.end());
  LMF_CHECK(!ids.empty(), ValueError, "the prompt tokenizes to no tokens");
  return ids;
}

std::string render_chat(const CausalLM& lm, const nlohmann::ordered_json& messages,
                        bool add_generation_prompt) {
  LMF_CHECK(lm.chat_template.has_value(), ValueError,
            "{} has no chat template (tokenizer_config.json \"chat_template\", "
            "chat_template.jinja or GGUF tokenizer.chat_template): use plain prompts "
            "(without --chat) or a chat/instruct model",
            lm.source);
  return tok::apply_chat_template(*lm.chat_template, messages, add_generation_prompt,
                                  tok::special_tokens_from_config(lm.tokenizer_config));
}

std::vector<int64_t> encode_chat(const CausalLM& lm, const nlohmann::ordered_json& messages,
                                 bool add_generation_prompt) {
  const std::string text = render_chat(lm, messages, add_generation_prompt);
  const auto enc = lm.tokenizer->encode(text, false);
  return std::vector<int64_t>(enc.ids.begin(), enc.ids.end());
}

PerplexityResult perplexity(const CausalLM& lm, const std::string& text, int64_t stride,
                            int64_t max_length,
                            const std::function<void(int64_t, int64_t)>& on_window) {
  const auto enc = lm.tokenizer->encode(text, true);
  const std::vector<int64_t> ids(enc.ids.begin(), enc.ids.end());
  const int64_t n = static_cast<int64_t>(ids.size());
  LMF_CHECK(n >= 2, ValueError,
            "perplexity needs at least 2 tokens; the text has {} (give a longer --file)", n);
  if (max_length <= 0) max_length = lm.context_length();
  LMF_CHECK(max_length >= 2 && max_length <= lm.context_length(), ValueError,
            "--max-length {} must be in [2, {}] (the model's context)", max_length,
            lm.context_length());
  if (stride <= 0) stride = max_length;
  LMF_CHECK(stride <= max_length, ValueError, "--stride {} must not exceed the window ({})", stride,
            max_length);
  NoGradGuard no_grad;
  PerplexityResult r;
  r.text_tokens = n;
  double nll_sum = 0;
  int64_t prev_end = 0;
  const int64_t total = (n + stride - 1) / stride;
  for (int64_t begin = 0; begin < n; begin += stride) {
    const int64_t end = std::min(begin + max_length, n);
    const int64_t trg_len = end - prev_end;
    const int64_t len = end - begin;
    Tensor input = Tensor::empty({1, len}, DType::i64);
    Tensor labels = Tensor::empty({1, len}, DType::i64);
    for (int64_t i = 0; i < len; ++i) {
      input.data<int64_t>()[i] = ids[begin + i];
      labels.data<int64_t>()[i] = i < len - trg_len ? -100 : ids[begin + i];
    }
    models::DecoderInputs in;
    in.input_ids = input;
    models::DecoderLabels lab;
    lab.labels = labels;
    const models::DecoderOutput out = lm.model->forward(in, lab);
    const int64_t loss_tokens = trg_len - 1;  // the guide's num_valid_tokens - batch_size
    nll_sum += out.loss.item() * loss_tokens;
    r.tokens += loss_tokens;
    ++r.windows;
    if (on_window) on_window(r.windows, total);
    prev_end = end;
    if (end == n) break;
  }
  LMF_CHECK(r.tokens > 0, ValueError, "perplexity: no token was scored (text too short)");
  r.nll = nll_sum / static_cast<double>(r.tokens);
  r.perplexity = std::exp(r.nll);
  return r;
}

void convert_gguf_to_hf(const std::string& gguf_path, const std::string& out_dir) {
  write_hf_folder(gguf_to_hf(gguf_path), out_dir);
}

void convert_hf_to_gguf(const std::string& model_dir, const std::string& out_path,
                        const std::string& type) {
  io::GgmlType t = io::GgmlType::F32;
  if (type == "f16")
    t = io::GgmlType::F16;
  else if (type == "q8_0")
    t = io::GgmlType::Q8_0;
  else
    LMF_CHECK(type == "f32", ValueError, "--type {}: use f32, f16 or q8_0", type);
  hf_to_gguf(model_dir, out_path, t);
}

}  // namespace lmf::tasks
