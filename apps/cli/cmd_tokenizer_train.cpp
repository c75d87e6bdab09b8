// `lmforge tokenizer train`: a SentencePiece model, or a Marian tokenizer folder, trained on text
// files by libsentencepiece's trainer (tasks/tokenizer_train.h).
#include <fmt/format.h>

#include <memory>

#include "commands.h"
#include "lmforge/core/error.h"
#include "lmforge/tasks/tokenizer_train.h"

namespace lmf::cli {

namespace {

struct TrainCmd {
  tasks::TokenizerTrainRequest req;
  bool verbose = false;
};

int run(TrainCmd& c) {
  auto& r = c.req;
  if (!c.verbose) r.spm.extra.insert(r.spm.extra.begin(), "minloglevel=1");
  auto res = tasks::train_tokenizer(r);
  if (r.marian)
    fmt::print(
        "Marian tokenizer folder {}: vocab.json {} entries (source.spm {}, target.spm {} pieces)\n",
        r.out_dir, res.marian_vocab, res.pieces, res.target_pieces);
  else
    fmt::print("SentencePiece {} model, {} pieces\n", r.spm.model_type, res.pieces);
  for (const auto& f : res.files) fmt::print("  wrote {}\n", f);
  return 0;
}

}  // namespace

void register_tokenizer_command(CLI::App& app, Commands& out) {
  auto c = std::make_shared<TrainCmd>();
  auto* tok = app.add_subcommand("tokenizer", "Tokenizer tools (train)");
  tok->require_subcommand(1);
  auto* t = tok->add_subcommand(
      "train",
      "Train a tokenizer on text files (one sentence per line).\n"
      "--type sentencepiece runs libsentencepiece's trainer: the defaults below are the Python\n"
      "sentencepiece trainer's own (spm.SentencePieceTrainer.train without that keyword), so the\n"
      "same options train the same model. Writes DIR/<prefix>.model and .vocab, or with --marian "
      "a\n"
      "Marian folder (source.spm, target.spm, vocab.json, tokenizer_config.json) that\n"
      "transformers' MarianTokenizer loads.\n"
      "Examples:\n"
      "  lmforge tokenizer train --type sentencepiece --vocab-size 8000 train.en -o tok/\n"
      "  lmforge tokenizer train --marian --vocab-size 8000 train.en --target-files train.fr "
      "-o marian_tok/");
  auto& r = c->req;
  auto& s = r.spm;
  t->add_option("files", r.files, "training text files (Marian: the source side)")->required();
  t->add_option("-o,--output", r.out_dir, "output folder (created)")->required();
  t->add_option("--type", r.type, "sentencepiece | unigram | bpe | byte-bpe | wordpiece")
      ->check(CLI::IsMember({"sentencepiece", "unigram", "bpe", "byte-bpe", "wordpiece"}))
      ->capture_default_str();
  t->add_option("--model-type", s.model_type, "SentencePiece model: unigram | bpe | char | word")
      ->check(CLI::IsMember({"unigram", "bpe", "char", "word"}))
      ->capture_default_str();
  t->add_option("--vocab-size", s.vocab_size, "pieces in the model")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  t->add_option("--character-coverage", s.character_coverage,
                "share of characters the model covers (rarer ones become <unk>)")
      ->capture_default_str();
  t->add_option("--normalization", s.normalization_rule_name,
                "nmt_nfkc | nfkc | nmt_nfkc_cf | nfkc_cf | identity")
      ->check(CLI::IsMember({"nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity"}))
      ->capture_default_str();
  t->add_option("--user-symbols", s.user_defined_symbols,
                "pieces always kept whole (user_defined_symbols)")
      ->delimiter(',');
  t->add_option("--control-symbols", s.control_symbols, "control pieces (control_symbols)")
      ->delimiter(',');
  t->add_option("--unk-id", s.unk_id, "id of <unk>")->capture_default_str();
  t->add_option("--bos-id", s.bos_id, "id of <s> (-1: none)")->capture_default_str();
  t->add_option("--eos-id", s.eos_id, "id of </s> (-1: none)")->capture_default_str();
  t->add_option("--pad-id", s.pad_id, "id of <pad> (-1: none)")->capture_default_str();
  t->add_option("--unk-piece", s.unk_piece)->capture_default_str();
  t->add_option("--bos-piece", s.bos_piece)->capture_default_str();
  t->add_option("--eos-piece", s.eos_piece)->capture_default_str();
  t->add_option("--pad-piece", s.pad_piece)->capture_default_str();
  t->add_option("--num-threads", s.num_threads, "trainer threads (the result depends on it)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  t->add_option("--input-sentence-size", s.input_sentence_size,
                "sample this many sentences (0: all)")
      ->capture_default_str();
  t->add_option("--shuffle-input-sentence", s.shuffle_input_sentence,
                "shuffle before sampling (true|false)")
      ->capture_default_str();
  t->add_option("--max-piece-length", s.max_sentencepiece_length, "longest piece in characters")
      ->capture_default_str();
  t->add_flag("--split-digits", s.split_digits, "split numbers into single digits");
  t->add_flag("--byte-fallback", s.byte_fallback, "unknown characters as <0xXX> byte pieces");
  t->add_option(
      "--spm-option", s.extra,
      "any other trainer flag as name=value (repeatable), e.g. seed_sentencepiece_size=1000000");
  t->add_option("--prefix", r.prefix, "sentencepiece: model file name without .model")
      ->capture_default_str();
  t->add_flag("--marian", r.marian, "write a Marian tokenizer folder (needs --target-files)");
  t->add_option("--target-files", r.target_files, "Marian: target-side training files");
  t->add_option("--target-vocab-size", r.target_vocab_size,
                "Marian: pieces of target.spm (default: --vocab-size)");
  t->add_flag("--separate-vocabs", r.marian_folder.separate_vocabs,
              "Marian: vocab.json (source) and target_vocab.json instead of one joint vocab");
  t->add_option("--language-code", r.marian_folder.language_codes,
                "Marian: >>xx<< target-language tokens to add to the vocabulary (repeatable)");
  t->add_option("--source-lang", r.marian_folder.source_lang, "Marian: source language (config)");
  t->add_option("--target-lang", r.marian_folder.target_lang, "Marian: target language (config)");
  t->add_flag("--verbose", c->verbose, "show the trainer's log");
  out.push_back({t, [c] { return run(*c); }});
}

}  // namespace lmf::cli
