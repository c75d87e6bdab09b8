// GGUF <-> Hugging Face folder conversion for LLaMA-architecture models: what transformers'
// GGUF loading (`from_pretrained(dir, gguf_file=...)`) builds, in memory or written as a folder,
// and the reverse (an HF LLaMA folder to a GGUF that llama.cpp loads), as convert_hf_to_gguf.py.
#pragma once
#include <map>
#include <string>

#include "lmforge/core/tensor.h"
#include "lmforge/io/gguf.h"

namespace lmf::tasks {

// An HF model folder built from a GGUF file, in memory.
struct HfFromGguf {
  std::string config_json;                   // LlamaConfig as transformers 5.x saves it
  std::map<std::string, Tensor> state_dict;  // f32, HF names (model.layers.N.self_attn.q_proj...)
  std::string tokenizer_json;          // tokenizers' serialization (byte-level BPE for "gpt2")
  std::string tokenizer_config_json;   // special tokens, add_bos_token, chat_template
  std::string generation_config_json;  // bos/eos/pad ids, as GenerationConfig.from_model_config
  std::string chat_template;           // tokenizer.chat_template, empty when the file has none
  // attn_q / attn_k rows left in llama.cpp's rotary order (keep_rotary_layout on a llama file):
  // the model must run them with interleaved rotary pairs (models::set_gguf_rotary_layout).
  bool rotary_layout_kept = false;
};

// Reads a GGUF file and builds the folder transformers would. general.architecture "llama":
// LlamaConfig from the llama.* keys (tie_word_embeddings when there is no output.weight), tensors
// dequantized to f32 and renamed, attn_q / attn_k rows un-permuted (llama.cpp's rotary layout back
// to HF's); "gpt2": GPT2Config from gpt2.*, Conv1D weights transposed back. The tokenizer comes
// from tokenizer.ggml.* (model "gpt2": byte-level BPE; "llama": SentencePiece BPE with byte
// fallback, merges from the scores), control tokens as special added tokens. Where transformers
// would build a model that cannot load or runs differently, this differs on purpose: rope scaling
// (linear, yarn) is kept, GPT-2's n_positions follows position_embd and n_inner a non-4x
// feed_forward_length. IoError naming the key or tensor for anything missing or unsupported
// (other architectures or tokenizer models, tensor types lmforge cannot dequantize).
// keep_rotary_layout: leave attn_q / attn_k in the file's row order (a zero-copy view for f32)
// instead of permuted copies, for running the model in place (see rotary_layout_kept).
HfFromGguf gguf_to_hf(const std::string& gguf_path);
HfFromGguf gguf_to_hf(const io::GgufFile& file, bool keep_rotary_layout = false);
// Only the tokenizer.json text (what `--model file.gguf` needs to tokenize).
std::string gguf_tokenizer_json(const io::GgufFile& file);

// Writes config.json, generation_config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json and (when there is one) chat_template.jinja into `dir` (created).
void write_hf_folder(const HfFromGguf& hf, const std::string& dir);

// Converts an HF LLaMA folder (config.json with model_type "llama", model.safetensors or any
// checkpoint io::load_checkpoint_dir reads, tokenizer.json with a byte-level BPE model,
// tokenizer_config.json) to a GGUF v3 file: llama.* metadata, tokenizer.ggml.*, chat template,
// tensors renamed and q/k rows permuted as llama.cpp's convert_hf_to_gguf.py does. `type` is F32,
// F16 or Q8_0 for the 2-D weights (norms stay F32, as llama.cpp's converter keeps them).
// ValueError / IoError naming the file and key for unsupported input.
void hf_to_gguf(const std::string& hf_dir, const std::string& out_path,
                io::GgmlType type = io::GgmlType::F32);

}  // namespace lmf::tasks
