// Training Hugging Face tokenizers (BPE, byte-level BPE, WordPiece, Unigram) from text files into
// a tokenizer.json that HF `tokenizers` loads: the algorithms of its BpeTrainer, WordPieceTrainer
// and UnigramTrainer (tokenizers 0.23), reimplemented.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lmf::tok {

// What `tokenizers` users build for each kind (the pipeline written to tokenizer.json):
//   bpe       Tokenizer(BPE(unk_token=[UNK])), pre_tokenizer Whitespace, BpeTrainer
//   byte-bpe  ByteLevelBPETokenizer: BPE, ByteLevel pre-tokenizer / decoder / post-processor
//             (trim_offsets false), initial alphabet = the 256 ByteLevel chars
//   wordpiece BertWordPieceTokenizer: BertNormalizer, BertPreTokenizer, WordPieceTrainer
//             ("##"), WordPiece decoder, TemplateProcessing [CLS] $A [SEP] (+ $B:1 [SEP]:1)
//   unigram   Tokenizer(Unigram()), Metaspace pre-tokenizer / decoder, UnigramTrainer
struct HfTrainOptions {
  std::string type = "bpe";  // bpe | byte-bpe | wordpiece | unigram
  size_t vocab_size = 30000;
  uint64_t min_frequency = 0;  // merges seen fewer times end training (BPE kinds)
  // Added as special tokens with the first ids, in this order. nullopt: the kind's default
  // (bpe: [UNK]; byte-bpe: none; wordpiece: [PAD] [UNK] [CLS] [SEP] [MASK]; unigram: <unk>).
  std::optional<std::vector<std::string>> special_tokens;
  std::optional<std::string> unk_token;       // nullopt: the kind's default ([UNK] / <unk>)
  std::optional<size_t> limit_alphabet;       // keep only the most frequent chars (BPE kinds)
  std::vector<std::string> initial_alphabet;  // chars always in the alphabet (first char of each)
  std::optional<std::string> continuing_subword_prefix;  // bpe/byte-bpe; wordpiece: "##"
  std::optional<std::string> end_of_word_suffix;         // bpe/byte-bpe
  std::optional<size_t> max_token_length;                // chars; BPE kinds
  bool lowercase = true;                                 // wordpiece: BertNormalizer lowercase
  bool add_prefix_space = false;                         // byte-bpe: ByteLevel add_prefix_space
  // unigram (UnigramTrainer)
  double shrinking_factor = 0.75;
  unsigned n_sub_iterations = 2;
  size_t max_piece_length = 16;
  size_t seed_size = 1000000;
  // Called now and then with a line of progress (nullptr: silent).
  std::function<void(const std::string&)> progress;
};

struct HfTrainResult {
  std::string tokenizer_json;  // the serialized tokenizer (HF layout, vocab in id order)
  size_t vocab_size = 0;       // entries of the model vocabulary (specials included)
  size_t merges = 0;           // BPE kinds
  size_t words = 0;            // distinct pre-tokenized words of the corpus
  size_t lines = 0;
};

// Trains on the files (read as HF's train_from_files does: line by line, line endings kept).
// ValueError: unknown type, empty corpus, invalid UTF-8 (names file:line), a vocabulary smaller
// than the special tokens + alphabet; IoError: a file that cannot be read.
HfTrainResult train_hf_tokenizer(const std::vector<std::string>& files,
                                 const HfTrainOptions& options);

}  // namespace lmf::tok
