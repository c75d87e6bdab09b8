// Training a tokenizer from text files (for `lmforge tokenizer train`): SentencePiece models
// through libsentencepiece's trainer, a Marian folder (source.spm + target.spm + vocab.json), or
// an HF tokenizer.json (bpe, byte-bpe, wordpiece, unigram: tokenizers/train_hf.h).
#pragma once
#include <string>
#include <vector>

#include "lmforge/tokenizers/train_hf.h"
#include "lmforge/tokenizers/train_sentencepiece.h"

namespace lmf::tasks {

struct TokenizerTrainRequest {
  // sentencepiece (spm.model_type unigram|bpe|char|word), or an HF kind: unigram, bpe,
  // byte-bpe, wordpiece (writes <out_dir>/tokenizer.json; options in `hf`, whose vocab_size is
  // taken from spm.vocab_size).
  std::string type = "sentencepiece";
  std::vector<std::string> files;  // training text, one sentence per line (Marian: source side)
  std::string out_dir;
  std::string prefix = "spm";  // sentencepiece: writes <out_dir>/<prefix>.model and .vocab
  tok::SentencePieceTrainOptions spm;
  tok::HfTrainOptions hf;
  // Marian folder: target-side files (target.spm is trained on them with the same options;
  // target_vocab_size > 0 overrides the vocab size there).
  bool marian = false;
  std::vector<std::string> target_files;
  int64_t target_vocab_size = 0;
  tok::MarianFolderOptions marian_folder;
};

struct TokenizerTrainResult {
  std::vector<std::string> files;  // what was written
  size_t pieces = 0;               // pieces of the model (Marian: of source.spm)
  size_t target_pieces = 0;        // Marian: pieces of target.spm
  size_t marian_vocab = 0;         // Marian: entries of vocab.json (transformers' vocab_size)
  size_t merges = 0;               // HF BPE kinds: merges learned
  size_t words = 0, lines = 0;     // HF kinds: distinct words / lines of the corpus
};

TokenizerTrainResult train_tokenizer(const TokenizerTrainRequest& request);

}  // namespace lmf::tasks
