// lmforge tokenizer train: SentencePiece models and Marian folders
// (tokenizers/train_sentencepiece.h), HF tokenizer.json files (tokenizers/train_hf.h).
#include "lmforge/tasks/tokenizer_train.h"

#include <filesystem>
#include <fstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenizers/marian.h"
#include "lmforge/tokenizers/sentencepiece.h"
#include "lmforge/tokenizers/tokenizer.h"

namespace lmf::tasks {

namespace fs = std::filesystem;

namespace {

TokenizerTrainResult train_hf(const TokenizerTrainRequest& r) {
  LMF_CHECK(!r.marian && r.target_files.empty(), ValueError,
            "tokenizer train: --marian / --target-files need --type sentencepiece");
  LMF_CHECK(r.spm.vocab_size > 0, ValueError, "tokenizer train: --vocab-size must be positive");
  tok::HfTrainOptions o = r.hf;
  o.type = r.type;
  o.vocab_size = static_cast<size_t>(r.spm.vocab_size);
  // Fail on an unusable output folder before the (possibly long) training.
  const fs::path dir(r.out_dir), out = dir / "tokenizer.json";
  std::error_code ec;
  fs::create_directories(dir, ec);
  LMF_CHECK(!ec && fs::is_directory(dir), IoError,
            "tokenizer train: cannot create the output folder '{}'{}", r.out_dir,
            ec ? ": " + ec.message() : std::string());
  const fs::path tmp = dir / "tokenizer.json.part";
  {
    std::ofstream probe(tmp, std::ios::binary | std::ios::trunc);
    LMF_CHECK(probe.good(), IoError, "tokenizer train: cannot write in the output folder '{}'",
              r.out_dir);
  }
  fs::remove(tmp, ec);
  auto t = tok::train_hf_tokenizer(r.files, o);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << t.tokenizer_json;
    f.close();
    LMF_CHECK(f.good(), IoError, "tokenizer train: cannot write '{}'", tmp.string());
  }
  fs::rename(tmp, out, ec);
  LMF_CHECK(!ec, IoError, "tokenizer train: cannot write '{}': {}", out.string(), ec.message());
  // What we wrote must load back.
  auto loaded = tok::Tokenizer::from_file(out);
  TokenizerTrainResult res;
  res.files = {out.string()};
  res.pieces = loaded.vocab_size(false);
  res.merges = t.merges;
  res.words = t.words;
  res.lines = t.lines;
  return res;
}

}  // namespace

TokenizerTrainResult train_tokenizer(const TokenizerTrainRequest& r) {
  LMF_CHECK(!r.out_dir.empty(), ValueError, "tokenizer train: no output folder (-o DIR)");
  if (r.type == "unigram" || r.type == "bpe" || r.type == "byte-bpe" || r.type == "wordpiece")
    return train_hf(r);
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
