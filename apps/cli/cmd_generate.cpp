// lmforge generate / chat / perplexity / convert: decoder language models (GPT-2, LLaMA, Qwen2,
// Mistral) from Hugging Face folders or GGUF files.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "lmforge/core/error.h"
#include "lmforge/core/runtime.h"
#include "lmforge/tasks/causal_lm.h"
#include "sampling_flags.h"

namespace lmf::cli {

const char* const kSamplingHelp =
    "\nDecoding follows transformers' generate(): the model's generation_config.json (or GGUF\n"
    "metadata) gives the defaults, the flags override them. Greedy unless sampling is on:\n"
    "--do-sample, or a --temperature above 0 (lmforge turns sampling on for it, as llama.cpp\n"
    "does; --temperature 0 means greedy). Processors run in transformers' order: repetition\n"
    "penalty, no-repeat n-gram, bad words, min length, forced BOS/EOS, then temperature, top-k,\n"
    "top-p, min-p. Beam search with --num-beams > 1 (length_penalty, early_stopping as\n"
    "transformers). A sampled run is reproducible with --seed.\n";

std::atomic<bool> g_cancel{false};
namespace {
void on_sigint(int) {
  g_cancel.store(true);
}
}  // namespace

SigintScope::SigintScope() {
  g_cancel.store(false);
  prev_ = std::signal(SIGINT, on_sigint);
}
SigintScope::~SigintScope() {
  std::signal(SIGINT, prev_);
}

void add_sampling_flags(CLI::App* sub, SamplingFlags& f) {
  sub->add_option("--max-new-tokens", f.max_new_tokens,
                  "tokens to generate at most (default: the model's, else 256)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub->add_option("--min-new-tokens", f.min_new_tokens,
                  "end-of-sequence is suppressed until this many tokens were generated")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  sub->add_flag("--do-sample", f.do_sample, "sample the next token instead of taking the best");
  sub->add_flag("--greedy", f.greedy, "greedy decoding even when the model's defaults sample");
  sub->add_option("--temperature", f.temperature,
                  "softmax temperature (> 0 turns sampling on; 0 means greedy)");
  sub->add_option("--top-k", f.top_k, "keep the k most likely tokens (0: off)");
  sub->add_option("--top-p", f.top_p, "nucleus sampling: smallest set with this mass, in (0, 1]");
  sub->add_option("--min-p", f.min_p, "drop tokens below min_p x the top probability, in [0, 1]");
  sub->add_option("--repetition-penalty", f.repetition_penalty,
                  "divide (multiply, when negative) seen tokens' scores by this (1: off)");
  sub->add_option("--no-repeat-ngram-size", f.no_repeat_ngram_size,
                  "never repeat an n-gram of this size (0: off)");
  sub->add_option("--num-beams", f.num_beams, "beam search with this many beams (1: off)");
  sub->add_option("--length-penalty", f.length_penalty,
                  "beam search: score / length^length_penalty (default 1)");
  sub->add_option("--early-stopping", f.early_stopping,
                  "beam search: true | false | never (transformers' early_stopping)")
      ->check(CLI::IsMember({"true", "false", "never"}));
  sub->add_option("--num-return-sequences", f.num_return_sequences,
                  "sequences returned per prompt (at most --num-beams with beam search)");
  sub->add_option("--seed", f.seed, "random seed: the same seed gives the same sampled text");
  sub->add_option("--stop", f.stop, "stop when the text ends with this string (repeatable)");
}

tasks::GenerationConfig apply_flags(tasks::GenerationConfig g, const SamplingFlags& f) {
  if (f.max_new_tokens) g.max_new_tokens = *f.max_new_tokens;
  if (!g.max_new_tokens && g.max_length <= 20) g.max_new_tokens = 256;  // HF's 20 is too short
  if (f.min_new_tokens) g.min_new_tokens = *f.min_new_tokens;
  if (f.do_sample) g.do_sample = true;
  if (f.temperature) {
    g.temperature = *f.temperature;
    LMF_CHECK(*f.temperature >= 0, ValueError, "--temperature {} must be >= 0 (0: greedy)",
              *f.temperature);
    g.do_sample = *f.temperature > 0;
  }
  if (f.greedy) g.do_sample = false;
  if (f.top_k) g.top_k = *f.top_k;
  if (f.top_p) g.top_p = *f.top_p;
  if (f.min_p) g.min_p = *f.min_p;
  if (f.repetition_penalty) g.repetition_penalty = *f.repetition_penalty;
  if (f.no_repeat_ngram_size) g.no_repeat_ngram_size = *f.no_repeat_ngram_size;
  if (f.num_beams) g.num_beams = *f.num_beams;
  if (f.length_penalty) g.length_penalty = *f.length_penalty;
  if (f.early_stopping)
    g.early_stopping = *f.early_stopping == "true"    ? tasks::EarlyStopping::True
                       : *f.early_stopping == "never" ? tasks::EarlyStopping::Never
                                                      : tasks::EarlyStopping::False;
  if (f.num_return_sequences) g.num_return_sequences = *f.num_return_sequences;
  if (f.seed) g.seed = *f.seed;
  for (const auto& s : f.stop) g.stop_strings.push_back(s);
  g.validate();
  return g;
}

namespace {

constexpr const char* kDefaultDecoder = "./models/SmolLM2-135M-Instruct.Q4_1.gguf";

constexpr const char* kDecoderModelHelp =
    "\nModels: a Hugging Face folder (config.json, model.safetensors or pytorch_model.bin,\n"
    "tokenizer.json; GPT2LMHeadModel, LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM)\n"
    "or a GGUF file (llama.cpp's format: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K tensors,\n"
    "dequantized to f32 at load as transformers' gguf_file= loading does). The default is the\n"
    "real SmolLM2-135M-Instruct (Q4_1 GGUF) that `bash scripts/setup.sh` installs.\n";

// ---- generate ---------------------------------------------------------------------------------

struct GenerateCmd {
  std::string model = kDefaultDecoder;
  std::string lora;  // a LoRA adapter folder merged at load
  InputOptions in;
  SamplingFlags flags;
  bool chat = false, json = false, no_stream = false, truncate = false, show_prompt = false;
  std::string system;
};

int run_generate(const GenerateCmd& o) {
  tasks::CausalLM lm = tasks::load_causal_lm(o.model, o.lora);
  const tasks::GenerationConfig cfg = apply_flags(lm.generation, o.flags);
  const std::vector<std::string> prompts = read_inputs(o.in, "prompt");
  SigintScope sigint;
  const bool stream =
      !o.json && !o.no_stream && cfg.num_beams == 1 && cfg.num_return_sequences == 1;
  int status = 0;
  for (size_t p = 0; p < prompts.size(); ++p) {
    check_utf8(prompts[p], fmt::format("prompt {}", p + 1));
    std::vector<int64_t> ids;
    if (o.chat) {
      nlohmann::ordered_json messages = nlohmann::ordered_json::array();
      if (!o.system.empty()) messages.push_back({{"role", "system"}, {"content", o.system}});
      messages.push_back({{"role", "user"}, {"content", prompts[p]}});
      ids = tasks::encode_chat(lm, messages, true);
    } else {
      ids = tasks::encode_text(lm, prompts[p]);
    }
    tasks::GenerateOptions go;
    go.tokenizer = lm.tokenizer.get();
    go.cancel = &g_cancel;
    go.truncate_left = o.truncate;
    if (stream) {
      if (!o.chat || o.show_prompt)
        fmt::print("{}", o.chat ? lm.tokenizer->decode(
                                      std::vector<uint32_t>(ids.begin(), ids.end()), false)
                                : prompts[p]);
      std::fflush(stdout);
      go.on_text = [](int64_t, const std::string& piece) {
        fmt::print("{}", piece);
        std::fflush(stdout);
      };
    }
    const tasks::GenerationResult r = tasks::generate(*lm.model, {ids}, cfg, go);
    if (o.json) {
      for (const auto& s : r.sequences) {
        nlohmann::json j;
        j["prompt"] = prompts[p];
        j["prompt_ids"] = s.prompt_ids;
        j["output_ids"] = s.output_ids;
        j["text"] = s.text;
        j["finish_reason"] = s.finish_reason;
        if (s.score) j["score"] = *s.score;
        j["prompt_tokens"] = s.prompt_ids.size();
        j["generated_tokens"] = s.output_ids.size();
        j["prefill_tokens_per_s"] = r.stats.prefill_tokens_per_second();
        j["decode_tokens_per_s"] = r.stats.decode_tokens_per_second();
        fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
    } else if (stream) {
      fmt::print("\n");
      fmt::print(stderr,
                 "[{} prompt tokens, {} generated ({}), prefill {:.1f} tok/s, decode "
                 "{:.1f} tok/s]\n",
                 r.stats.prompt_tokens, r.stats.generated_tokens,
                 r.sequences.empty() ? "" : r.sequences[0].finish_reason,
                 r.stats.prefill_tokens_per_second(), r.stats.decode_tokens_per_second());
    } else {
      for (size_t i = 0; i < r.sequences.size(); ++i) {
        const auto& s = r.sequences[i];
        if (r.sequences.size() > 1)
          fmt::print("--- sequence {}{}\n", i + 1,
                     s.score ? fmt::format(" (score {:.4f})", *s.score) : "");
        fmt::print("{}{}\n", o.chat ? "" : prompts[p], s.text);
      }
    }
    if (g_cancel.load()) {
      status = 130;
      break;
    }
  }
  return status;
}

// ---- chat -------------------------------------------------------------------------------------

struct ChatCmd {
  std::string model = kDefaultDecoder;
  std::string lora;  // a LoRA adapter folder merged at load
  std::string system;
  SamplingFlags flags;
};

int run_chat(const ChatCmd& o) {
  tasks::CausalLM lm = tasks::load_causal_lm(o.model, o.lora);
  const tasks::GenerationConfig cfg = apply_flags(lm.generation, o.flags);
  LMF_CHECK(cfg.num_beams == 1, ValueError, "chat streams its answers: --num-beams must be 1");
  (void)tasks::render_chat(lm,
                           nlohmann::ordered_json::array({{{"role", "user"}, {"content", "hi"}}}),
                           true);  // no template: fail now, not after the first question
  const bool tty = ::isatty(0) != 0;
  fmt::print(stderr,
             "lmforge chat with {} ({}, context {} tokens). /reset clears the history, /exit "
             "(or Ctrl-D) ends; Ctrl-C stops an answer.\n",
             lm.source, lm.model->architecture(), lm.context_length());
  nlohmann::ordered_json history = nlohmann::ordered_json::array();
  auto reset = [&] {
    history = nlohmann::ordered_json::array();
    if (!o.system.empty()) history.push_back({{"role", "system"}, {"content", o.system}});
  };
  reset();
  std::string line;
  while (true) {
    if (tty) fmt::print("\n> ");
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) {
      if (std::cin.eof()) break;
      std::cin.clear();  // interrupted read: ask again
      continue;
    }
    if (line.empty()) continue;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      reset();
      fmt::print(stderr, "(history cleared)\n");
      continue;
    }
    check_utf8(line, "your message");
    history.push_back({{"role", "user"}, {"content", line}});
    std::vector<int64_t> ids = tasks::encode_chat(lm, history, true);
    // Keep the conversation inside the context: drop the oldest turns (never the system prompt).
    const int64_t budget = lm.context_length() - cfg.max_new_tokens.value_or(256);
    while (static_cast<int64_t>(ids.size()) > budget && history.size() > 1) {
      const size_t first = !o.system.empty() ? 1 : 0;
      if (history.size() <= first + 1) break;
      history.erase(history.begin() + static_cast<long>(first));
      ids = tasks::encode_chat(lm, history, true);
    }
    SigintScope sigint;
    tasks::GenerateOptions go;
    go.tokenizer = lm.tokenizer.get();
    go.cancel = &g_cancel;
    go.truncate_left = true;
    go.on_text = [](int64_t, const std::string& piece) {
      fmt::print("{}", piece);
      std::fflush(stdout);
    };
    const tasks::GenerationResult r = tasks::generate(*lm.model, {ids}, cfg, go);
    fmt::print("\n");
    const auto& s = r.sequences.at(0);
    if (s.finish_reason == "cancelled") fmt::print(stderr, "(stopped)\n");
    history.push_back({{"role", "assistant"}, {"content", s.text}});
  }
  return 0;
}

// ---- perplexity -------------------------------------------------------------------------------

struct PerplexityCmd {
  std::string model = kDefaultDecoder;
  std::string lora;  // a LoRA adapter folder merged at load
  std::string file;
  int64_t stride = 0, max_length = 0;
  bool json = false;
};

int run_perplexity(const PerplexityCmd& o) {
  tasks::CausalLM lm = tasks::load_causal_lm(o.model, o.lora);
  const auto lines = read_text_file(o.file, "text", "text");
  std::string text;
  for (const auto& l : lines) text += (text.empty() ? "" : "\n") + l;
  const auto t0 = std::chrono::steady_clock::now();
  const tasks::PerplexityResult r =
      tasks::perplexity(lm, text, o.stride, o.max_length, [&](int64_t done, int64_t total) {
        if (!o.json) fmt::print(stderr, "\rwindow {}/{}", done, total);
      });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.json) {
    nlohmann::json j{{"model", o.model},     {"file", o.file},
                     {"nll", r.nll},         {"perplexity", r.perplexity},
                     {"tokens", r.tokens},   {"text_tokens", r.text_tokens},
                     {"windows", r.windows}, {"seconds", secs}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print(stderr, "\n");
    fmt::print("perplexity {:.4f} (mean NLL {:.4f} nats over {} tokens, {} windows, {:.1f} s)\n",
               r.perplexity, r.nll, r.tokens, r.windows, secs);
  }
  return 0;
}

// ---- convert ----------------------------------------------------------------------------------

struct ConvertCmd {
  std::string input, output, to = "hf", type = "f32";
};

int run_convert(const ConvertCmd& o) {
  LMF_CHECK(!o.output.empty(), ValueError, "give the output with -o (a folder or a .gguf file)");
  if (o.to == "gguf") {
    tasks::convert_hf_to_gguf(o.input, o.output, o.type);
    fmt::print("wrote {} ({})\n", o.output, o.type);
  } else {
    tasks::convert_gguf_to_hf(o.input, o.output);
    fmt::print("wrote the Hugging Face folder {}\n", o.output);
  }
  return 0;
}

}  // namespace

void register_generate_commands(CLI::App& app, Commands& out) {
  {
    auto o = std::make_shared<GenerateCmd>();
    auto* sub = app.add_subcommand(
        "generate",
        "Continue prompts with a decoder language model (GPT-2, LLaMA, Qwen2, Mistral), as\n"
        "transformers' generate() does, with a KV cache; tokens stream to the terminal as they\n"
        "come. --chat wraps each prompt as one user message in the model's chat template.\n"
        "Examples:\n"
        "  lmforge generate --chat \"What is the capital of France?\"\n"
        "  lmforge generate --model gpt2-folder --max-new-tokens 40 \"Once upon a time\"\n"
        "  lmforge generate --json --temperature 0.7 --seed 1 --file prompts.txt");
    sub->add_option("--model", o->model, "model folder or .gguf file")->capture_default_str();
    sub->add_option("--lora", o->lora,
                    "a LoRA adapter folder (PEFT's adapter_config.json + "
                    "adapter_model.safetensors, e.g. from finetune --task sft --use-peft) merged "
                    "into --model (a folder) at load");
    sub->add_option("prompts", o->in.args, "prompts (else --file or standard input)");
    add_input_options(sub, o->in);
    sub->add_flag("--chat", o->chat, "wrap each prompt in the model's chat template");
    sub->add_option("--system", o->system, "with --chat: a system message before each prompt");
    sub->add_flag("--json", o->json,
                  "one JSON object per sequence: prompt_ids, output_ids (generated only), text, "
                  "finish_reason, token counts and speeds");
    sub->add_flag("--no-stream", o->no_stream, "print each answer when it is complete");
    sub->add_flag("--show-prompt", o->show_prompt, "with --chat: echo the rendered prompt");
    sub->add_flag("--truncate", o->truncate,
                  "drop the oldest prompt tokens when the prompt does not fit the context "
                  "(default: an error)");
    add_sampling_flags(sub, o->flags);
    sub->footer(std::string(kDecoderModelHelp) + kSamplingHelp +
                "\nExit status: 0 done, 2 bad input or model, 130 interrupted (Ctrl-C).\n");
    out.push_back({sub, [o] { return run_generate(*o); }});
  }
  {
    auto o = std::make_shared<ChatCmd>();
    auto* sub = app.add_subcommand(
        "chat",
        "Talk with a chat model in the terminal: each line you type is a user message, the\n"
        "model's answer streams back; the conversation is kept (oldest turns dropped when it\n"
        "outgrows the context). /reset clears it, /exit or Ctrl-D ends, Ctrl-C stops the\n"
        "current answer (not the program).\n"
        "Example: lmforge chat --system \"You are a concise assistant.\"");
    sub->add_option("--model", o->model, "model folder or .gguf file")->capture_default_str();
    sub->add_option("--lora", o->lora,
                    "a LoRA adapter folder (PEFT's adapter_config.json + "
                    "adapter_model.safetensors, e.g. from finetune --task sft --use-peft) merged "
                    "into --model (a folder) at load");
    sub->add_option("--system", o->system, "system message at the start of the conversation");
    add_sampling_flags(sub, o->flags);
    sub->footer(std::string(kDecoderModelHelp) + kSamplingHelp);
    out.push_back({sub, [o] { return run_chat(*o); }});
  }
  {
    auto o = std::make_shared<PerplexityCmd>();
    auto* sub = app.add_subcommand(
        "perplexity",
        "Token-level negative log-likelihood and perplexity of a text file, with transformers'\n"
        "sliding-window method (its perplexity guide): windows of --max-length tokens every\n"
        "--stride tokens, each token scored once with as much left context as the window gives.\n"
        "Example: lmforge perplexity --file wiki.test.raw --stride 512 --json");
    sub->add_option("--model", o->model, "model folder or .gguf file")->capture_default_str();
    sub->add_option("--lora", o->lora,
                    "a LoRA adapter folder (PEFT's adapter_config.json + "
                    "adapter_model.safetensors, e.g. from finetune --task sft --use-peft) merged "
                    "into --model (a folder) at load");
    sub->add_option("--file", o->file, "the text (one file; '-' for standard input)")->required();
    sub->add_option("--stride", o->stride, "tokens between windows (default: the window)")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
    sub->add_option("--max-length", o->max_length, "window length (default: the model's context)")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
    sub->add_flag("--json", o->json, "print {nll, perplexity, tokens, ...} as one JSON object");
    sub->footer(kDecoderModelHelp);
    out.push_back({sub, [o] { return run_perplexity(*o); }});
  }
  {
    auto o = std::make_shared<ConvertCmd>();
    auto* sub = app.add_subcommand(
        "convert",
        "Convert between GGUF and Hugging Face folders.\n"
        "  lmforge convert MODEL.gguf -o DIR        a folder transformers loads (config.json,\n"
        "      model.safetensors in f32, tokenizer.json, tokenizer_config.json with the chat\n"
        "      template, generation_config.json), the same logits as gguf_file= loading\n"
        "  lmforge convert DIR --to gguf --type f32|f16|q8_0 -o MODEL.gguf   a GGUF file\n"
        "      llama.cpp loads (LLaMA-architecture folders)");
    sub->add_option("input", o->input, "a .gguf file, or a model folder with --to gguf")
        ->required();
    sub->add_option("-o,--output", o->output, "output folder (to hf) or file (to gguf)")
        ->required();
    sub->add_option("--to", o->to, "hf | gguf")
        ->check(CLI::IsMember({"hf", "gguf"}))
        ->capture_default_str();
    sub->add_option("--type", o->type, "GGUF tensor type: f32 | f16 | q8_0")
        ->check(CLI::IsMember({"f32", "f16", "q8_0"}))
        ->capture_default_str();
    out.push_back({sub, [o] { return run_convert(*o); }});
  }
}

}  // namespace lmf::cli
