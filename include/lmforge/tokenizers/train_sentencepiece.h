// Training SentencePiece models with libsentencepiece's SentencePieceTrainer (the trainer the
// Python `sentencepiece` package wraps), and Marian tokenizer folders built from two of them.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lmf::tok {

// The options of spm.SentencePieceTrainer.train(...). Every default is the trainer's own
// (TrainerSpec / NormalizerSpec), so leaving an option alone trains what the Python trainer
// trains without that keyword.
struct SentencePieceTrainOptions {
  std::string model_type = "unigram";  // unigram | bpe | char | word
  int64_t vocab_size = 8000;
  double character_coverage = 0.9995;
  std::string normalization_rule_name =
      "nmt_nfkc";  // nmt_nfkc | nfkc | nmt_nfkc_cf | nfkc_cf | identity
  std::vector<std::string> user_defined_symbols;
  std::vector<std::string> control_symbols;
  int unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;  // -1 disables a piece
  std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>";
  int num_threads = 16;
  int64_t input_sentence_size = 0;  // 0: every sentence
  bool shuffle_input_sentence = true;
  int max_sentencepiece_length = 16;
  bool split_digits = false;
  bool byte_fallback = false;
  // Further trainer flags, "name=value" (as --name=value of spm_train); applied last.
  std::vector<std::string> extra;
};

// Trains on the text files (one sentence per line) and writes `model_path` (the serialized
// ModelProto, e.g. source.spm or m.model). ValueError for bad options or files the trainer
// rejects (its message included), IoError when the model cannot be written.
void train_sentencepiece(const std::vector<std::string>& files, const std::string& model_path,
                         const SentencePieceTrainOptions& options);

// The pieces of a trained model in id order, without control and unknown pieces: what a Marian
// vocab.json lists after </s> and <unk>.
std::vector<std::string> sentencepiece_vocab_pieces(const std::string& model_path);

struct MarianFolderOptions {
  bool separate_vocabs = false;             // vocab.json + target_vocab.json
  std::vector<std::string> language_codes;  // >>xx<< tokens added to the (target) vocabulary
  std::string source_lang, target_lang;     // recorded in tokenizer_config.json
};

// Writes a Marian tokenizer folder as transformers' MarianTokenizer.save_pretrained lays it out:
// source.spm and target.spm (copied), vocab.json {"</s>": 0, "<unk>": 1, source pieces, target
// pieces not yet listed, language codes, "<pad>"} (target_vocab.json likewise with the target
// pieces when separate), tokenizer_config.json. Creates `dir` when needed.
void write_marian_folder(const std::string& dir, const std::string& source_model,
                         const std::string& target_model, const MarianFolderOptions& options);

}  // namespace lmf::tok
