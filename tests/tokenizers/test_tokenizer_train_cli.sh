#!/usr/bin/env bash
# `lmforge tokenizer train` as a user meets it: a SentencePiece model, a Marian folder equal to the
# committed one (tests/fixtures/tokenizer_train/marian), and clear errors.
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
"$bin" tokenizer train --type wordpiece "$corpus/corpus.en" -o "$tmp/z" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "not implemented" "$tmp/err" || fail "--type wordpiece should say not implemented (rc $rc)"
echo "cli tokenizer train: ok"
