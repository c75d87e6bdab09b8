// Decode speed of a SmolLM2-135M-shaped random LLaMA (30 layers, hidden 576, 9 heads / 3 kv heads,
// intermediate 1536, vocab 49152, tied head): batch 1, a prefill of --prompt tokens through the
// preallocated KV cache, then --new one-token decode steps (logits of the last position only).
// Prints prefill and decode tokens/s. Usage: bench_decoder [--prompt 512] [--new 128]
// [--threads N] [--layers 30]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "lmforge/core/autograd.h"
#include "lmforge/core/runtime.h"
#include "lmforge/models/llama.h"
#include "lmforge/nn/init.h"

using namespace lmf;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int64_t prompt = 512, new_tokens = 128, layers = 30;
  int threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int64_t v = std::atoll(argv[i + 1]);
    if (a == "--prompt")
      prompt = v;
    else if (a == "--new")
      new_tokens = v;
    else if (a == "--threads")
      threads = static_cast<int>(v);
    else if (a == "--layers")
      layers = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (threads > 0) set_num_threads(threads);
  models::LlamaConfig c = models::LlamaConfig::defaults(models::LlamaVariant::llama);
  c.vocab_size = 49152;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 9;
  c.num_key_value_heads = 3;
  c.head_dim = 64;
  c.max_position_embeddings = 8192;
  c.rope.rope_theta = 100000.0;
  c.tie_word_embeddings = true;
  manual_seed(0);
  models::LlamaForCausalLM model(c);
  model.prepare_inference();
  NoGradGuard ng;

  std::vector<int64_t> ids(prompt);
  for (int64_t i = 0; i < prompt; ++i) ids[i] = (i * 7919 + 13) % c.vocab_size;
  models::KVCache cache = model.make_cache(1, prompt + new_tokens + 1);
  models::DecoderInputs in;
  in.input_ids = Tensor::from_vector(ids, {1, prompt});
  in.cache = &cache;
  in.logits_to_keep = 1;
  const auto t0 = Clock::now();
  Tensor logits = model.forward(in).logits;
  const double prefill_s = std::chrono::duration<double>(Clock::now() - t0).count();

  int64_t next = static_cast<int64_t>(argmax(logits, -1).item());
  // The first one-row input packs every Linear weight for the small-batch kernel (once per
  // model, prepare_inference); it is timed apart.
  const auto tp = Clock::now();
  {
    models::DecoderInputs step;
    step.input_ids = Tensor::from_vector<int64_t>({next}, {1, 1});
    step.cache = &cache;
    logits = model.forward(step).logits;
    next = static_cast<int64_t>(argmax(logits, -1).item());
  }
  const double pack_s = std::chrono::duration<double>(Clock::now() - tp).count();
  const auto t1 = Clock::now();
  const std::clock_t c1 = std::clock();
  for (int64_t s = 0; s < new_tokens; ++s) {
    models::DecoderInputs step;
    step.input_ids = Tensor::from_vector<int64_t>({next}, {1, 1});
    step.cache = &cache;
    logits = model.forward(step).logits;
    next = static_cast<int64_t>(argmax(logits, -1).item());
  }
  const double decode_s = std::chrono::duration<double>(Clock::now() - t1).count();
  const double decode_cpu_s = static_cast<double>(std::clock() - c1) / CLOCKS_PER_SEC;
  std::printf(
      "bench_decoder: SmolLM2-135M shape (%lld layers), batch 1, %d threads, cache %.1f MB\n"
      "  prefill %lld tokens: %.3f s  %.1f tokens/s\n"
      "  first decode step (packs the weights once): %.3f s\n"
      "  decode %lld tokens:  %.3f s  %.2f tokens/s  (%.2f ms/token; process CPU time %.2f "
      "ms/token: on a machine shared with other work, CPU time / threads bounds the quiet "
      "wall time)\n",
      static_cast<long long>(layers), num_threads(), cache.bytes() / 1e6,
      static_cast<long long>(prompt), prefill_s, prompt / prefill_s, pack_s,
      static_cast<long long>(new_tokens), decode_s, new_tokens / decode_s,
      1e3 * decode_s / new_tokens, 1e3 * decode_cpu_s / new_tokens);
  return 0;
}
