// lmforge tokenizer train: SentencePiece models and Marian folders
// (tokenizers/train_sentencepiece.h).
#include "lmforge/tasks/tokenizer_train.h"

#include <filesystem>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/marian.h"
#include "lmforge/tokenizers/sentencepiece.h"

namespace lmf::tasks {

namespace fs = std::filesystem;

TokenizerTrainResult train_tokenizer(const TokenizerTrainRequest& r) {
  LMF_CHECK(!r.out_dir.empty(), ValueError, "tokenizer train: no output folder (-o DIR)");
  if (r.type == "unigram" || r.type == "bpe" || r.type == "byte-bpe" || r.type == "wordpiece")
    fail<ValueError>(
        "tokenizer train: --type {} (an HF tokenizer.json trainer) is not implemented yet; use "
        "--type sentencepiece --model-type {}",
        r.type, r.type == "unigram" ? "unigram" : "bpe");
  LMF_CHECK(r.type == "sentencepiece", ValueError,
            "tokenizer train: unknown --type '{}' (sentencepiece, unigram, bpe, byte-bpe, "
            "wordpiece)",
            r.type);
  LMF_CHECK(!r.marian || !r.target_files.empty(), ValueError,
            "tokenizer train: a Marian folder needs the target-side files (--target-files)");
  LMF_CHECK(r.marian || r.target_files.empty(), ValueError,
            "tokenizer train: --target-files is only used with --marian");
  fs::create_directories(r.out_dir);
  const fs::path dir(r.out_dir);
  TokenizerTrainResult res;
  if (!r.marian) {
    const std::string model = (dir / (r.prefix + ".model")).string();
    tok::train_sentencepiece(r.files, model, r.spm);
    res.files = {model, (dir / (r.prefix + ".vocab")).string()};
    res.pieces = tok::SentencePiece::from_file(model)->vocab_size();
    return res;
  }
  const std::string src = (dir / "source.spm").string(), tgt = (dir / "target.spm").string();
  tok::train_sentencepiece(r.files, src, r.spm);
  tok::SentencePieceTrainOptions t = r.spm;
  if (r.target_vocab_size > 0) t.vocab_size = r.target_vocab_size;
  tok::train_sentencepiece(r.target_files, tgt, t);
  tok::write_marian_folder(r.out_dir, src, tgt, r.marian_folder);
  res.files = {src, tgt, (dir / "vocab.json").string()};
  if (r.marian_folder.separate_vocabs) res.files.push_back((dir / "target_vocab.json").string());
  res.files.push_back((dir / "tokenizer_config.json").string());
  // The folder must load back (and the vocab size reported is what transformers reports).
  auto m = tok::MarianTokenizer::from_folder(r.out_dir);
  res.marian_vocab = m.vocab_size();
  res.pieces = tok::SentencePiece::from_file(src)->vocab_size();
  res.target_pieces = tok::SentencePiece::from_file(tgt)->vocab_size();
  return res;
}

}  // namespace lmf::tasks
