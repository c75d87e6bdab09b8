#!/usr/bin/env bash
# `lmforge tokenize` as a user meets it: table and JSON-lines output, stdin and --file input,
# pairs and truncation, and clear errors. Usage: test_tokenize_cli.sh LMFORGE_BIN FIXTURES_DIR
set -u
bin=$1
tj=$2/tokenizers/wp_trained_a.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" tokenize --help | grep -q -- "--max-length" || fail "tokenize --help does not list --max-length"
"$bin" tokenize --model "$tj" "Hello, world!" | grep -q '"hello"' || fail "table does not show tokens"
out=$("$bin" tokenize --model "$tj" --json "the world" --pair "a question")
python3 -c "
import json,sys; d=json.loads(sys.argv[1])
assert d['tokens'][0]=='[CLS]' and d['type_ids'][-1]==1 and d['offsets'][1]==[0,3], d" "$out" \
  || fail "--json pair output wrong: $out"
printf 'one line\nsecond line here\n' > "$tmp/in.txt"
[ "$("$bin" tokenize --model "$tj" --json --file "$tmp/in.txt" | wc -l)" -eq 2 ] || fail "--file"
[ "$(printf 'a\nb\nc\n' | "$bin" tokenize --model "$tj" --json | wc -l)" -eq 3 ] || fail "stdin lines"
out=$("$bin" tokenize --model "$tj" --json --max-length 5 "one two three four five six")
python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert len(d['ids'])==5 and d['overflowing']>=1, d" "$out" \
  || fail "--max-length: $out"
"$bin" tokenize --model "$tmp/none" x >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "none" "$tmp/err" || fail "missing model should exit 2 naming it (rc $rc)"
echo '{"model": {"type": "Nope"}}' > "$tmp/bad.json"
"$bin" tokenize --model "$tmp/bad.json" x >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "Nope" "$tmp/err" || fail "bad tokenizer.json should exit 2 naming the type"
"$bin" tokenize --model "$tj" --file "$tmp/missing.txt" >/dev/null 2>&1; [ $? -eq 2 ] || fail "--file missing"
echo "cli tokenize: ok"
