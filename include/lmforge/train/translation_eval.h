// `lmforge evaluate` for translation models: translate the source side of parallel data (as
// `finetune --task translation` reads it) and score the translations against the target side with
// sacrebleu's corpus BLEU and chrF, plus the teacher-forced eval_loss of a MarianMTModel.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/train/trainer.h"

namespace lmf::train {

struct TranslationEvalOptions {
  std::string model_dir;  // an encoder-decoder folder with an LM head (MarianMTModel, ...)
  std::string data;       // read_translation_data's spec: SRC_FILE,TGT_FILE or JSONL
  std::string source_lang = "en", target_lang = "fr";
  std::string source_prefix;  // put before every source text (T5: "translate English to French: ")
  // Decoding: the folder's generation defaults unless set here. max_new_tokens unset and the
  // folder setting neither max_length nor max_new_tokens: 128 (run_translation.py's
  // --val_max_target_length), at most the model's target positions - 1.
  std::optional<int64_t> num_beams, max_new_tokens;
  int64_t batch_size = 32;    // sources translated together
  bool loss = true;           // also eval_loss (Marian, BART and T5 folders)
  int64_t max_examples = -1;  // only the first N pairs (-1: all)
};

struct TranslationEvalResult {
  // eval_bleu, eval_chrf (0..100, sacrebleu's corpus scores), eval_gen_len (mean generated tokens
  // of the translations), eval_samples, eval_skipped_empty (pairs with an empty side, left out as
  // finetune does) and, for Marian, BART and T5 folders with loss on, eval_loss.
  Metrics metrics;
  std::vector<std::string> sources, references, hypotheses;  // per scored pair
  std::string bleu_signature, chrf_signature;  // sacrebleu's printed scores ("BLEU = ...")
};

// IoError / ValueError as read_translation_data and load_seq2seq_lm raise them; ValueError for a
// pre-tokenized (id) JSONL when the folder has no tokenizer to decode the references with, and
// when no pair is left to score. Sources longer than the encoder's positions are truncated
// (keeping their </s>).
TranslationEvalResult evaluate_translation(const TranslationEvalOptions& options);

}  // namespace lmf::train
