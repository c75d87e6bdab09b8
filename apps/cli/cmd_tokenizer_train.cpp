// `lmforge tokenizer train`: a SentencePiece model or a Marian tokenizer folder (libsentencepiece's
// trainer), or an HF tokenizer.json (bpe, byte-bpe, wordpiece, unigram) trained on text files
// (tasks/tokenizer_train.h).
#include <fmt/format.h>

#include <memory>

#include "commands.h"
#include "lmforge/core/error.h"
#include "lmforge/tasks/tokenizer_train.h"

namespace lmf::cli {

namespace {

struct TrainCmd {
  tasks::TokenizerTrainRequest req;
  bool verbose = false, quiet = false;
  std::vector<std::string> special_tokens;
  bool no_special_tokens = false;
  std::string unk_token, prefix, suffix;
  size_t limit_alphabet = 0, max_token_length = 0;
};

int run(TrainCmd& c) {
  auto& r = c.req;
  if (r.type != "sentencepiece") {
    auto& h = r.hf;
    if (!c.special_tokens.empty()) h.special_tokens = c.special_tokens;
    if (c.no_special_tokens) h.special_tokens = std::vector<std::string>{};
    if (!c.unk_token.empty()) h.unk_token = c.unk_token;
    if (!c.prefix.empty()) h.continuing_subword_prefix = c.prefix;
    if (!c.suffix.empty()) h.end_of_word_suffix = c.suffix;
    if (c.limit_alphabet > 0) h.limit_alphabet = c.limit_alphabet;
    if (c.max_token_length > 0) h.max_token_length = c.max_token_length;
    h.max_piece_length = static_cast<size_t>(r.spm.max_sentencepiece_length);
    if (!c.quiet) h.progress = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
    auto res = tasks::train_tokenizer(r);
    fmt::print("{} tokenizer: {} tokens", r.type, res.pieces);
    if (r.type != "unigram" && r.type != "wordpiece") fmt::print(", {} merges", res.merges);
    fmt::print(" ({} lines, {} distinct words)\n", res.lines, res.words);
    for (const auto& f : res.files) fmt::print("  wrote {}\n", f);
    return 0;
  }
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
      "Train a tokenizer on text files (UTF-8, read line by line).\n"
      "\n"
      "--type sentencepiece runs libsentencepiece's trainer: the defaults below are the Python\n"
      "sentencepiece trainer's own (spm.SentencePieceTrainer.train without that keyword), so the\n"
      "same options train the same model. Writes DIR/<prefix>.model and .vocab, or with --marian\n"
      "a Marian folder (source.spm, target.spm, vocab.json, tokenizer_config.json) that\n"
      "transformers' MarianTokenizer loads.\n"
      "\n"
      "--type bpe | byte-bpe | wordpiece | unigram write DIR/tokenizer.json, trained as HF\n"
      "`tokenizers` (0.23) trains it; HF's Tokenizer.from_file loads it and encodes as lmforge "
      "does:\n"
      "  bpe        BPE(unk_token=[UNK]) + Whitespace pre-tokenizer + BpeTrainer\n"
      "             (special tokens default: [UNK])\n"
      "  byte-bpe   GPT-2/RoBERTa byte-level BPE as ByteLevelBPETokenizer: ByteLevel "
      "pre-tokenizer,\n"
      "             decoder and post-processor, the 256 byte chars always in the vocabulary\n"
      "             (special tokens default: none; e.g. --special-tokens '<|endoftext|>')\n"
      "  wordpiece  BERT: BertNormalizer (--no-lowercase to keep case), BertPreTokenizer,\n"
      "             WordPieceTrainer with '##', [CLS] A [SEP] (B [SEP]) templates\n"
      "             (special tokens default: [PAD],[UNK],[CLS],[SEP],[MASK])\n"
      "  unigram    Unigram + Metaspace pre-tokenizer/decoder + UnigramTrainer (default: <unk>)\n"
      "BPE and byte-level BPE give HF's vocabulary and merges exactly. Where HF's own runs differ\n"
      "from each other - WordPiece and BPE with a prefix/suffix (hash-map order gives the\n"
      "prefixed chars their ids, and ids break ties), Unigram (float sums in parallel; the chars\n"
      "the model lacks get scores in hash order) - lmforge's result is reproducible and within\n"
      "their spread (Unigram: HF's pieces, scores to 1e-9).\n"
      "Defaults are the HF trainer classes' (BpeTrainer, WordPieceTrainer: --min-frequency 0, no\n"
      "alphabet limit); ByteLevelBPETokenizer.train and BertWordPieceTokenizer.train pass\n"
      "min_frequency=2 (and limit_alphabet=1000 for BERT): give those to train what they train.\n"
      "Special tokens take the first ids, in the order given. Progress goes to stderr.\n"
      "\n"
      "Examples:\n"
      "  lmforge tokenizer train --type sentencepiece --vocab-size 8000 train.en -o tok/\n"
      "  lmforge tokenizer train --marian --vocab-size 8000 train.en --target-files train.fr "
      "-o marian_tok/\n"
      "  lmforge tokenizer train --type byte-bpe --vocab-size 8000 --min-frequency 2 \\\n"
      "      --special-tokens '<s>,<pad>,</s>,<unk>,<mask>' train.en -o roberta_tok/\n"
      "  lmforge tokenizer train --type wordpiece --vocab-size 8000 train.en -o bert_tok/");
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
  t->add_option("--vocab-size", s.vocab_size,
                "pieces in the model (HF kinds: tokens in the vocabulary, special tokens "
                "included; HF's trainers default to 30000 for BPE/WordPiece)")
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
  t->add_option("--max-piece-length", s.max_sentencepiece_length,
                "longest piece in characters (sentencepiece, unigram)")
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
  auto& h = r.hf;
  const char* hf = "HF kinds";
  t->add_option("--min-frequency", h.min_frequency,
                "bpe/byte-bpe/wordpiece: stop when the best pair is seen fewer times")
      ->capture_default_str()
      ->group(hf);
  t->add_option("--special-tokens", c->special_tokens,
                "special tokens, comma-separated, given the first ids in this order")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->group(hf);
  t->add_flag("--no-special-tokens", c->no_special_tokens, "no special tokens at all")->group(hf);
  t->add_option("--unk-token", c->unk_token,
                "the model's unknown token (bpe: [UNK] when it is a special token; wordpiece: "
                "[UNK]; unigram: <unk>, added first when not a special token)")
      ->group(hf);
  t->add_option("--limit-alphabet", c->limit_alphabet,
                "bpe/byte-bpe/wordpiece: keep only this many of the most frequent chars")
      ->group(hf);
  t->add_option("--initial-alphabet", h.initial_alphabet,
                "chars always in the alphabet, comma-separated")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->group(hf);
  t->add_option("--continuing-subword-prefix", c->prefix,
                "bpe/byte-bpe: prefix of non-initial subwords (wordpiece: ##)")
      ->group(hf);
  t->add_option("--end-of-word-suffix", c->suffix, "bpe/byte-bpe: suffix of word-final subwords")
      ->group(hf);
  t->add_option("--max-token-length", c->max_token_length,
                "bpe/byte-bpe/wordpiece: HF's max_token_length (a merge only makes tokens shorter "
                "than this many chars, pairs of two chars excepted)")
      ->group(hf);
  t->add_flag("--lowercase,!--no-lowercase", h.lowercase,
              "wordpiece: BertNormalizer lowercases (default on)")
      ->group(hf);
  t->add_flag("--add-prefix-space", h.add_prefix_space,
              "byte-bpe: ByteLevel adds a space before the text (RoBERTa/GPT-2 files: off)")
      ->group(hf);
  t->add_option("--shrinking-factor", h.shrinking_factor, "unigram: pieces kept per pruning")
      ->capture_default_str()
      ->group(hf);
  t->add_option("--n-sub-iterations", h.n_sub_iterations, "unigram: EM steps per pruning")
      ->capture_default_str()
      ->group(hf);
  t->add_flag("--quiet", c->quiet, "no progress lines (HF kinds)")->group(hf);
  out.push_back({t, [c] { return run(*c); }});
}

}  // namespace lmf::cli
