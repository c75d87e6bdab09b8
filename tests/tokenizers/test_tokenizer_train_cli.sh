#!/usr/bin/env bash
# `lmforge tokenizer train` as a user meets it: a SentencePiece model, a Marian folder equal to the
# committed one (tests/fixtures/tokenizer_train/marian), HF tokenizer.json kinds, and clear errors.
# Usage: test_tokenizer_train_cli.sh LMFORGE_BIN FIXTURES_DIR
set -u
bin=$1
fx=$2
corpus=$fx/marian_tokenizer
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" tokenizer train --help | grep -q -- "--vocab-size" || fail "--help does not list --vocab-size"
"$bin" tokenizer train --model-type bpe --vocab-size 200 --num-threads 1 "$corpus/corpus.fr" \
  -o "$tmp/spm" >"$tmp/out" || fail "sentencepiece training failed"
[ -s "$tmp/spm/spm.model" ] && [ -s "$tmp/spm/spm.vocab" ] || fail "spm.model/.vocab missing"
[ "$(wc -l <"$tmp/spm/spm.vocab")" -eq 200 ] || fail "spm.vocab has not 200 lines"
grep -q "200 pieces" "$tmp/out" || fail "summary: $(cat "$tmp/out")"
"$bin" tokenizer train --marian --vocab-size 300 --num-threads 1 --normalization identity \
  --language-code '>>fr<<' --source-lang en --target-lang fr "$corpus/corpus.en" \
  --target-files "$corpus/corpus.fr" -o "$tmp/marian" >/dev/null || fail "Marian training failed"
for f in vocab.json tokenizer_config.json; do
  cmp -s "$tmp/marian/$f" "$fx/tokenizer_train/marian/$f" || fail "Marian $f differs from the fixture"
done
"$bin" tokenizer train --vocab-size 100 "$tmp/missing.txt" -o "$tmp/x" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "missing.txt" "$tmp/err" || fail "missing input should exit 2 naming it (rc $rc)"
"$bin" tokenizer train --marian "$corpus/corpus.en" -o "$tmp/y" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q -- "--target-files" "$tmp/err" || fail "--marian without --target-files (rc $rc)"
# HF kinds: tokenizer.json that `lmforge tokenize` reads; progress on stderr, --quiet silences it.
"$bin" tokenizer train --help | grep -q -- "--min-frequency" || fail "--help does not list --min-frequency"
hf=$fx/tokenizer_train
"$bin" tokenizer train --type byte-bpe --vocab-size 600 --special-tokens '<|endoftext|>' \
  "$hf/corpus.txt" -o "$tmp/bbpe" >"$tmp/out" 2>"$tmp/err" || fail "byte-bpe training failed"
grep -q "600 tokens, 343 merges" "$tmp/out" || fail "byte-bpe summary: $(cat "$tmp/out")"
grep -q "distinct words" "$tmp/err" || fail "no progress line on stderr"
"$bin" tokenize --model "$tmp/bbpe" --json "Hello world" | grep -q '"ids"' || fail "tokenize on the trained folder"
"$bin" tokenizer train --type wordpiece --quiet --vocab-size 500 "$hf/corpus.txt" -o "$tmp/wp" >/dev/null 2>"$tmp/err" \
  || fail "wordpiece training failed"
[ ! -s "$tmp/err" ] || fail "--quiet printed: $(cat "$tmp/err")"
"$bin" tokenize --model "$tmp/wp" --json "a dog" | grep -q '"tokens":\["\[CLS\]","a","dog","\[SEP\]"\]' \
  || fail "wordpiece [CLS]/[SEP] template: $("$bin" tokenize --model "$tmp/wp" --json "a dog")"
printf 'fine\ncaf\xe9\n' >"$tmp/latin1.txt"
"$bin" tokenizer train --type bpe "$tmp/latin1.txt" -o "$tmp/l1" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "latin1.txt:2: invalid UTF-8" "$tmp/err" || fail "invalid UTF-8 should name file:line (rc $rc): $(cat "$tmp/err")"
"$bin" tokenizer train --type byte-bpe --vocab-size 100 "$hf/corpus.txt" -o "$tmp/small" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "smaller than the special tokens and the alphabet" "$tmp/err" || fail "vocab too small (rc $rc): $(cat "$tmp/err")"
: >"$tmp/empty.txt"
"$bin" tokenizer train --type unigram "$tmp/empty.txt" -o "$tmp/e" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "no words" "$tmp/err" || fail "empty corpus (rc $rc): $(cat "$tmp/err")"
"$bin" tokenizer train --type bpe "$hf/corpus.txt" -o "$hf/corpus.txt/sub" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "output folder" "$tmp/err" || fail "unwritable output (rc $rc): $(cat "$tmp/err")"
echo "cli tokenizer train: ok"
