// Text generation with decoder-only models as transformers' generate(): GenerationConfig (read
// from generation_config.json / config.json), the logits processors in generate's order, greedy,
// sampling and beam search over a preallocated KV cache, stop criteria and UTF-8-safe streaming.
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/core/tensor.h"
#include "lmforge/models/decoder.h"

namespace lmf::tok {
class Tokenizer;
}

namespace lmf::tasks {

// transformers' early_stopping: False (heuristic), True (stop when num_beams are done), "never".
enum class EarlyStopping { False, True, Never };

// transformers' GenerationConfig fields (same names and global defaults) that lmforge supports.
struct GenerationConfig {
  // Prompt + new tokens; max_new_tokens wins when set. Unset: 20 new tokens (transformers 5's
  // default max_length of 20 counts from the prompt's end when nobody set it).
  std::optional<int64_t> max_length;
  std::optional<int64_t> max_new_tokens;  // new tokens, not counting the prompt
  int64_t min_length = 0;                 // eos is banned while prompt + new < min_length
  // eos is banned while new < min_new_tokens; when set, min_length becomes prompt +
  // min_new_tokens (transformers' _prepare_generated_length).
  std::optional<int64_t> min_new_tokens;
  bool do_sample = false;
  double temperature = 1.0;     // 0 means greedy in lmforge's API (transformers refuses it)
  int64_t top_k = 50;           // 0: off
  double top_p = 1.0;           // (0, 1]; 1: off
  std::optional<double> min_p;  // [0, 1]
  double repetition_penalty = 1.0;
  int64_t no_repeat_ngram_size = 0;
  int64_t num_beams = 1;
  double length_penalty = 1.0;
  EarlyStopping early_stopping = EarlyStopping::False;
  int64_t num_return_sequences = 1;
  std::vector<int64_t> eos_token_id;  // empty: none
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id;
  std::optional<uint64_t> seed;  // lmforge's: makes sampling reproducible
  std::vector<std::string> stop_strings;
  // Encoder-decoder models: the decoder's first token (unset: the model's config).
  std::optional<int64_t> decoder_start_token_id;
  std::optional<int64_t> forced_bos_token_id;  // forced as the first generated token
  std::vector<int64_t> forced_eos_token_id;    // forced at max_length - 1 (empty: none)
  // Token sequences never generated (Marian's [[pad_token_id]]); eos-only entries are dropped.
  std::vector<std::vector<int64_t>> bad_words_ids;
  bool renormalize_logits = false;  // log_softmax after all processors (Opus-MT configs set it)

  // A model folder's defaults as transformers loads them: generation_config.json when present
  // (missing keys keep the global defaults), else GenerationConfig.from_model_config(config.json)
  // (generation keys of config.json, or of its decoder / generator / text_config).
  static GenerationConfig from_pretrained(const std::filesystem::path& dir);
  // The keys of one JSON object (generation_config.json's format) over `base`; unknown keys are
  // ignored, a wrong type is a ValueError naming the key.
  static GenerationConfig from_json(const nlohmann::json& j);
  static GenerationConfig from_json(const nlohmann::json& j, GenerationConfig base);
  nlohmann::json to_json() const;

  // ValueError naming the flag for values transformers refuses (temperature < 0, top_p outside
  // (0, 1], top_k < 0, num_beams < 1, num_return_sequences > num_beams, ...).
  void validate() const;
  // True when the next token is drawn at random (do_sample with temperature > 0).
  bool sampling() const { return do_sample && temperature > 0.0; }
};

// ---- Logits processors (transformers' semantics on float scores [rows, vocab]) ----

// Token ids seen by each row so far (the padded prompt plus generated tokens), as generate's
// input_ids.
using TokenRows = std::vector<std::vector<int64_t>>;

class LogitsProcessor {
 public:
  virtual ~LogitsProcessor() = default;
  virtual std::string name() const = 0;  // transformers' class name
  // Modifies `scores` (f32, contiguous [rows, vocab]) in place; ids.size() == rows.
  virtual void apply(const TokenRows& ids, Tensor& scores) const = 0;
};

using LogitsProcessorList = std::vector<std::unique_ptr<LogitsProcessor>>;
void apply_processors(const LogitsProcessorList& list, const TokenRows& ids, Tensor& scores);

// Each constructor validates its argument as transformers does (ValueError).
// `prompt_ignore_length`: per row, the leading positions not penalised (left padding); empty:
// none.
std::unique_ptr<LogitsProcessor> make_repetition_penalty(
    double penalty, std::vector<int64_t> prompt_ignore_length = {});
std::unique_ptr<LogitsProcessor> make_no_repeat_ngram(int64_t ngram_size);
std::unique_ptr<LogitsProcessor> make_min_length(int64_t min_length, std::vector<int64_t> eos);
std::unique_ptr<LogitsProcessor> make_min_new_tokens(int64_t prompt_length_to_skip,
                                                     int64_t min_new_tokens,
                                                     std::vector<int64_t> eos);
// NoBadWordsLogitsProcessor: a sequence's last token is banned where the row ends with the rest.
std::unique_ptr<LogitsProcessor> make_no_bad_words(std::vector<std::vector<int64_t>> bad_words_ids,
                                                   const std::vector<int64_t>& eos);
// ForcedBOS: only `token` at the first generated position (row length 1); ForcedEOS: only the
// eos ids when a row has max_length - 1 tokens.
std::unique_ptr<LogitsProcessor> make_forced_bos(int64_t token);
std::unique_ptr<LogitsProcessor> make_forced_eos(int64_t max_length, std::vector<int64_t> eos);
std::unique_ptr<LogitsProcessor> make_logit_normalization();  // log_softmax per row
std::unique_ptr<LogitsProcessor> make_temperature(double temperature);
std::unique_ptr<LogitsProcessor> make_top_k(int64_t top_k, int64_t min_tokens_to_keep = 1);
std::unique_ptr<LogitsProcessor> make_top_p(double top_p, int64_t min_tokens_to_keep = 1);
std::unique_ptr<LogitsProcessor> make_min_p(double min_p, int64_t min_tokens_to_keep = 1);

// The list generate() builds (transformers' _get_logits_processor): repetition penalty, no-repeat
// n-gram, bad words, min length, min new tokens, forced BOS, forced EOS, then, when sampling,
// temperature, top-k, top-p, min-p, and last LogitNormalization when renormalize_logits.
// `input_len`: the padded prompt length (1 for a seq2seq decoder's start token); `padding_lengths`:
// leading pads per row; `max_length`: the resolved max_length forced EOS uses (0: none forced).
LogitsProcessorList build_logits_processors(const GenerationConfig& cfg, int64_t input_len,
                                            const std::vector<int64_t>& padding_lengths = {},
                                            int64_t max_length = 0);

// log_softmax over each row of f32 [rows, vocab] (beam search scores tokens with it first).
void log_softmax_rows(Tensor& scores);

// ---- Streaming detokenization ----

// Turns tokens into text pieces as they come (tokenizers' DecodeStream / transformers'
// TextStreamer): never half a UTF-8 character, and the pieces concatenate to
// tokenizer.decode(all ids). A trailing space that decode's clean-up could still remove (" ."
// " n't" ...) is held back until the next token decides it.
class TextStreamDecoder {
 public:
  explicit TextStreamDecoder(const tok::Tokenizer& tokenizer, bool skip_special_tokens = true);
  std::string put(int64_t id);  // the new text that is final ("" while held back)
  std::string flush();          // everything not yet returned
  const std::vector<uint32_t>& ids() const { return ids_; }

 private:
  std::string ready(bool final);
  const tok::Tokenizer* tok_;
  bool skip_special_;
  std::vector<uint32_t> ids_;
  std::string emitted_;
};

// ---- Generation ----

struct GenerateOptions {
  // Needed for stop strings, `text` and streaming; null: no text.
  const tok::Tokenizer* tokenizer = nullptr;
  // Streaming (num_beams == 1): called with (sequence index, text piece) as tokens come; the
  // sequence index is the prompt's unless num_return_sequences > 1 (then prompt * n + draw).
  std::function<void(int64_t, const std::string&)> on_text;
  // Set (e.g. by a SIGINT handler) to stop after the current step; sequences end "cancelled".
  const std::atomic<bool>* cancel = nullptr;
  // A prompt longer than the model's context: false -> ValueError; true -> keep its last tokens
  // (room left for max_new_tokens, at least one). generate_seq2seq: a source longer than the
  // encoder's positions keeps its first positions - 1 tokens and its last (</s>) instead.
  bool truncate_left = false;
  // The prompt runs through the model in pieces of at most this many positions (0: at once),
  // like llama.cpp's micro-batches: faster and with less peak memory on long prompts.
  int64_t prefill_chunk = 128;
};

struct GeneratedSequence {
  int64_t prompt_index = 0;         // which prompt (num_return_sequences per prompt with beams)
  std::vector<int64_t> prompt_ids;  // as fed to the model (after any truncation), unpadded
  std::vector<int64_t> output_ids;  // generated tokens only (with the eos token when one ended it)
  std::string text;                 // decode(output_ids) without special tokens
  std::string finish_reason;        // "eos", "length", "stop" or "cancelled"
  std::optional<double> score;      // beam search: transformers' sequences_scores
};

struct GenerationStats {
  int64_t prompt_tokens = 0;     // prefill tokens (all rows, padding included)
  int64_t generated_tokens = 0;  // sum of output_ids lengths
  int64_t decode_steps = 0;      // one-token forward passes after the prefill
  // Tokens of unfinished sequences fed through those passes (batch * beams rows per step, less
  // the rows that already ended).
  int64_t decode_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  double prefill_tokens_per_second() const;
  double decode_tokens_per_second() const;  // decode_tokens / decode_seconds
  size_t cache_bytes = 0;                   // the KV cache's preallocated size
  int64_t cache_capacity = 0;               // positions
};

struct GenerationResult {
  std::vector<GeneratedSequence> sequences;  // per prompt in order (num_return_sequences each)
  GenerationStats stats;
  nlohmann::json to_json() const;
};

// Generates continuations of `prompts` (token ids, unpadded; several are left-padded into one
// batch with pad_token_id, else eos) with `cfg` (validated here) as transformers' generate does:
// greedy, multinomial sampling (lmf::Generator seeded by cfg.seed), or beam search. Prefills with
// logits_to_keep = 1 into a cache of batch * num_beams rows and prompt + new positions, then
// decodes one token per step. Generation stops at the model's max_positions ("length"), where
// transformers would run past it.
GenerationResult generate(const models::DecoderModel& model,
                          const std::vector<std::vector<int64_t>>& prompts,
                          const GenerationConfig& cfg, const GenerateOptions& opt = {});

}  // namespace lmf::tasks
