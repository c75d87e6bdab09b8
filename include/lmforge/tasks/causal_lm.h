// A decoder ready to use: the model (from a Hugging Face folder or a .gguf file), its tokenizer,
// generation defaults and chat template, plus the jobs built on it that are not generate()
// itself: chat prompts as transformers' apply_chat_template tokenizes them, and perplexity as
// transformers' perplexity guide computes it.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/models/decoder.h"
#include "lmforge/tasks/generate.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::tasks {

struct CausalLM {
  std::unique_ptr<models::DecoderModel> model;  // eval mode, prepared for inference
  std::unique_ptr<tok::Tokenizer> tokenizer;
  GenerationConfig generation;               // the model's defaults (generation_config.json)
  std::optional<std::string> chat_template;  // tokenizer_config.json / GGUF metadata
  nlohmann::json tokenizer_config;           // special tokens for the template
  std::string source;                        // the path it was loaded from
  std::string format;                        // "hf" or "gguf (Q4_1)" etc.
  // The model's context: its hard position limit, else (scaled RoPE) its trained length.
  int64_t context_length() const;
};

// PATH: a Hugging Face folder (config.json, weights, tokenizer.json) or a GGUF file, dequantized
// to f32 as transformers' gguf_file= loading does. ValueError when the folder holds no decoder
// (naming what it holds); IoError for missing/corrupt files.
CausalLM load_causal_lm(const std::string& path);
// The same with a LoRA adapter folder (PEFT's adapter_config.json + adapter_model.safetensors)
// merged into the weights before inference (models::merge_lora); "" : none. ValueError for a GGUF
// model (convert it to a folder first) or an adapter that does not fit the model.
CausalLM load_causal_lm(const std::string& path, const std::string& lora_dir);

// The prompt ids of a plain text: tokenizer(text) with the tokenizer's special tokens (what
// transformers' pipelines feed generate). ValueError for invalid UTF-8 or an empty text.
std::vector<int64_t> encode_text(const CausalLM& lm, const std::string& text);
// apply_chat_template(messages, add_generation_prompt) rendered (ValueError when the model has no
// chat template, naming what to do) ...
std::string render_chat(const CausalLM& lm, const nlohmann::ordered_json& messages,
                        bool add_generation_prompt = true);
// ... and tokenized as apply_chat_template(tokenize=True) does (no special tokens added).
std::vector<int64_t> encode_chat(const CausalLM& lm, const nlohmann::ordered_json& messages,
                                 bool add_generation_prompt = true);

struct PerplexityResult {
  double nll = 0;         // mean negative log-likelihood per scored token (nats)
  double perplexity = 0;  // exp(nll)
  int64_t tokens = 0;     // tokens scored
  int64_t windows = 0;    // forward passes
  int64_t text_tokens = 0;
};
// transformers' perplexity guide (sliding window): windows of `max_length` tokens (0: the
// model's context) every `stride` tokens (0: max_length); in each window only the tokens not
// scored before count; nll_sum += window_loss * (scored - 1), as the guide does.
// `on_window(done, total)` reports progress. ValueError for fewer than 2 tokens or stride >
// max_length.
PerplexityResult perplexity(const CausalLM& lm, const std::string& text, int64_t stride = 0,
                            int64_t max_length = 0,
                            const std::function<void(int64_t, int64_t)>& on_window = nullptr);

// `lmforge convert`: a GGUF file to a Hugging Face folder (config.json, model.safetensors in
// f32, tokenizer.json, tokenizer_config.json with the chat template, generation_config.json),
// or a LLaMA-architecture folder to a GGUF file of type f32, f16 or q8_0.
void convert_gguf_to_hf(const std::string& gguf_path, const std::string& out_dir);
void convert_hf_to_gguf(const std::string& model_dir, const std::string& out_path,
                        const std::string& type);

}  // namespace lmf::tasks
