// HF UnigramTrainer (tokenizers 0.23) reimplemented: suffix-array seed pieces, EM with the
// Bayesian (digamma) M step, pruning by likelihood loss, finalization.
#include "lmforge/core/error.h"
#include "tokenizers/train_hf_internal.h"

namespace lmf::tok {

UnigramTrainOutput train_unigram_words(const std::vector<std::pair<std::string, uint64_t>>& words,
                                       const UnigramTrainConfig& cfg) {
  fail<ValueError>("tokenizer train: --type unigram is not implemented yet");
}

}  // namespace lmf::tok
