// Internal to tasks/: the search loops of generate() (greedy/sampling and beam search) written
// once over a Stepper, so decoder-only and encoder-decoder generation share them.
#pragma once
#include <cstdint>
#include <vector>

#include "lmforge/tasks/generate.h"

namespace lmf::tasks::detail {

// The batch a search starts from: B prompts (for seq2seq, the decoder start token) left-padded to
// L with `pad`; generation stops at max_len tokens per row (prompt included).
struct Setup {
  int64_t B = 0, L = 0, V = 0, max_len = 0, pad = 0;
  std::vector<std::vector<int64_t>> prompts;  // after truncation
  std::vector<int64_t> pad_len;               // leading pads per prompt
  bool padded = false;
};

// The batch's rows, `per_prompt` copies of each prompt (return sequences or beams) left-padded
// to L: the token rows, the pads per row, and the flat ids [rows, L] / mask (empty when nothing
// is padded) the first step takes.
struct PromptRows {
  TokenRows seqs;
  std::vector<int64_t> pad_len, ids, mask;
};
PromptRows prompt_rows(const Setup& s, int64_t per_prompt);

// What a search needs from a model: a cache of `rows` rows (prompt p's copies are rows
// p * per_prompt ...), the prompt's last-position logits, one-token steps, and beam reordering.
// Logits are fresh f32 [rows, V].
class Stepper {
 public:
  virtual ~Stepper() = default;
  virtual void start(int64_t rows, int64_t capacity) = 0;
  virtual Tensor first(const PromptRows& pr, int64_t L) = 0;
  // `next` [rows] tokens; `mask` [rows, cur_len] over all positions (empty: no padding).
  virtual Tensor step(const std::vector<int64_t>& next, const std::vector<int64_t>& mask,
                      int64_t cur_len) = 0;
  virtual void reorder(const std::vector<int64_t>& rows) = 0;
  virtual size_t cache_bytes() const = 0;
  virtual int64_t cache_capacity() const = 0;
};

// `cfg` validated (ValueError naming the flag), with lmforge's temperature 0 meaning greedy.
GenerationConfig checked_config(const GenerationConfig& cfg);

// transformers' _sample (greedy / multinomial) and _beam_search (5.x) over `st`.
GenerationResult sample_search(Stepper& st, const GenerationConfig& cfg, const GenerateOptions& opt,
                               const Setup& s);
GenerationResult beam_search(Stepper& st, const GenerationConfig& cfg, const GenerateOptions& opt,
                             const Setup& s);

}  // namespace lmf::tasks::detail
