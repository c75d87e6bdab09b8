#!/usr/bin/env bash
# The lmforge command as a user meets it: help, JSON output, metrics and plot files, and clear
# errors with distinct exit codes on bad input.
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" --help | grep -q "demo" || fail "--help does not list the demo command"
"$bin" demo --help | grep -q -- "--plot" || fail "demo --help does not document --plot"
out=$("$bin" demo --steps 40 --json --metrics "$tmp/m.jsonl" --plot "$tmp/loss.svg" 2>/dev/null) \
  || fail "demo --json exited $?"
python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert d['final_loss'] < d['first_loss'], d" "$out" \
  || fail "demo --json is not a JSON object with a falling loss: $out"
[ "$(wc -l < "$tmp/m.jsonl")" -eq 40 ] || fail "metrics file should have one line per step"
python3 -c "import json,sys; [json.loads(l) for l in open(sys.argv[1])]" "$tmp/m.jsonl" || fail "metrics not JSONL"
grep -q "<polyline" "$tmp/loss.svg" || fail "plot has no curve"

"$bin" demo --hidden 10 --heads 4 >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] || fail "bad options should exit 2, got $rc"
grep -q "multiple of --heads" "$tmp/err" || fail "error message does not say what to fix: $(cat "$tmp/err")"
"$bin" demo --task sort >/dev/null 2>&1 && fail "unknown task accepted"
"$bin" demo --plot /nonexistent/dir/x.svg --steps 2 >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] || fail "unwritable plot path should exit 2, got $rc"
LMFORGE_NUM_THREADS=abc "$bin" demo --steps 1 >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -ne 0 ] && grep -q "LMFORGE_NUM_THREADS" "$tmp/err" || fail "bad LMFORGE_NUM_THREADS not reported clearly (rc $rc)"

# ---- embed / similarity / search / inspect -------------------------------------------------------
here=$(cd "$(dirname "$0")" && pwd)
fixtures=$here/../fixtures
repo=$(cd "$here/../.." && pwd)
expect_err() {  # expect_err "what" "pattern" cmd...: exit status 2 and the pattern on stderr
  local what=$1 pat=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  [ $rc -eq 2 ] || fail "$what: expected exit 2, got $rc ($(cat "$tmp/err"))"
  grep -qi -- "$pat" "$tmp/err" || fail "$what: message lacks '$pat': $(cat "$tmp/err")"
  grep -qi "internal error\|terminate\|Segmentation" "$tmp/err" && fail "$what: crashed: $(cat "$tmp/err")"
  return 0
}
for c in embed similarity search inspect; do
  "$bin" --help | grep -q "$c" || fail "--help does not list $c"
  "$bin" $c --help >"$tmp/h" || fail "$c --help exited $?"
  grep -q "EXAMPLES" "$tmp/h" && grep -q "EXIT STATUS" "$tmp/h" || fail "$c --help lacks EXAMPLES / EXIT STATUS"
done

# A tiny random BERT (HF-made fixture) with a 64-token WordPiece vocabulary.
make_tiny() {  # make_tiny DIR FIXTURE
  mkdir -p "$1"
  cp "$fixtures/bert/$2/config.json" "$fixtures/bert/$2/model.safetensors" "$1/"
  { printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n'; for c in {a..z}; do echo "$c"; done
    for c in {a..z}; do echo "##$c"; done; printf 'the\ncat\ndog\nsat\non\nmat\n.\n'; } > "$1/vocab.txt"
}
make_tiny "$tmp/tiny" bert_base
make_tiny "$tmp/mlm" bert_mlm

out=$("$bin" embed --model "$tmp/tiny" --json "the cat sat" "a dog") || fail "embed --json exited $?"
python3 -c "
import json,sys; d=json.loads(sys.argv[1])
assert d['dimension']==32 and d['pooling']=='mean' and d['normalized'] is False, d
assert [e['text'] for e in d['embeddings']]==['the cat sat','a dog'] and all(len(e['embedding'])==32 for e in d['embeddings'])
" "$out" || fail "embed --json output wrong: $out"
"$bin" embed -m "$tmp/tiny" --normalize --pooling cls "the cat" | grep -q "norm 1.0000" || fail "embed --normalize should print norm 1"
printf 'the cat\n\n a dog \n' | "$bin" embed -m "$tmp/tiny" --json > "$tmp/o.json" || fail "embed from stdin exited $?"
python3 -c "import json,sys; assert len(json.load(open(sys.argv[1]))['embeddings'])==2" "$tmp/o.json" || fail "stdin lines: blank lines must be skipped"
printf '{"text": "the cat"}\n{"text": "a dog", "id": 2}\n' > "$tmp/in.jsonl"
"$bin" embed -m "$tmp/tiny" --file "$tmp/in.jsonl" --json > "$tmp/o.json" || fail "embed --file jsonl exited $?"
python3 -c "import json,sys; assert [e['text'] for e in json.load(open(sys.argv[1]))['embeddings']]==['the cat','a dog']" "$tmp/o.json" || fail "JSONL input not read"
"$bin" similarity -m "$tmp/tiny" "the cat" "the cat" "a dog" | grep -q "1.000" || fail "similarity table lacks the self-similarity 1.000"
out=$("$bin" search -m "$tmp/tiny" --docs "$tmp/in.jsonl" -q "the cat" -k 1 --json) || fail "search --json exited $?"
python3 -c "
import json,sys; d=json.loads(sys.argv[1]); r=d['queries'][0]['results']
assert len(r)==1 and r[0]['text']=='the cat' and abs(r[0]['score']-1)<1e-4, d" "$out" || fail "search ranking wrong: $out"

expect_err "missing folder" "does not exist" "$bin" embed --model "$tmp/nope" "x"
expect_err "pooler refused" "pooler" "$bin" embed --model "$tmp/mlm" --pooling pooler "the cat"
# ... and the message names the option that asks for a seeded pooler, with an example, which exists,
# is documented, and gives the same pooler (so the same embeddings) on every run for the same seed.
expect_err "pooler refused names --pooler-init-seed" "--pooler-init-seed 42" \
  "$bin" embed --model "$tmp/mlm" --pooling pooler "the cat"
for c in embed similarity search; do
  "$bin" $c --help | grep -q -- "--pooler-init-seed" || fail "$c --help does not document --pooler-init-seed"
done
for r in 1 2; do
  "$bin" embed --model "$tmp/mlm" --pooling pooler --pooler-init-seed 7 --json "the cat" "a dog" \
    > "$tmp/seed7_$r.json" || fail "embed --pooler-init-seed 7 exited $?: $(cat "$tmp/seed7_$r.json")"
done
"$bin" embed --model "$tmp/mlm" --pooling pooler --pooler-init-seed 8 --json "the cat" "a dog" \
  > "$tmp/seed8.json" || fail "embed --pooler-init-seed 8 exited $?"
python3 -c "
import json,sys; a,b,c=[json.load(open(f)) for f in sys.argv[1:]]
assert a['pooling']=='pooler' and len(a['embeddings'])==2 and a['dimension']==32, a
assert a==b, 'the same seed gave different pooler embeddings'
assert a['embeddings'][0]['embedding']!=c['embeddings'][0]['embedding'], 'seeds 7 and 8 gave the same pooler'
assert all(abs(x)<1 for e in a['embeddings'] for x in e['embedding']), 'pooler output is tanh: |x| < 1'
" "$tmp/seed7_1.json" "$tmp/seed7_2.json" "$tmp/seed8.json" || fail "--pooler-init-seed is not deterministic per seed"
expect_err "empty input" "empty input" "$bin" embed --model "$tmp/tiny" < /dev/null
expect_err "invalid UTF-8" "UTF-8" "$bin" embed --model "$tmp/tiny" "$(printf 'bad \xff')"
printf 'ok\nbad \xc3\n' > "$tmp/bad.txt"
expect_err "invalid UTF-8 file" "line 2" "$bin" embed --model "$tmp/tiny" --file "$tmp/bad.txt"
expect_err "bad JSONL" "line 1" "$bin" embed --model "$tmp/tiny" --format jsonl --file "$tmp/bad.txt"
expect_err "over-long without truncation" "truncat" "$bin" embed --model "$tmp/tiny" --no-truncate "$(printf 'cat %.0s' {1..60})"
expect_err "one sentence" "two sentences" "$bin" similarity --model "$tmp/tiny" "the cat"
expect_err "unknown pooling" "pooling" "$bin" embed --model "$tmp/tiny" --pooling avg "x"
(cd "$tmp" && expect_err "default model absent" "scripts/setup.sh" "$bin" search) || exit 1

out=$("$bin" inspect "$tmp/mlm") || fail "inspect exited $?"
for pat in "BertForMaskedLM" "parameters" "dtype F32" "pooler_output is refused" "vocab.txt"; do
  grep -q "$pat" <<<"$out" || fail "inspect output lacks '$pat': $out"
done
"$bin" inspect "$tmp/mlm" --json > "$tmp/i.json" || fail "inspect --json exited $?"
python3 -c "
import json,sys; d=json.load(open(sys.argv[1]))
assert d['architecture']=='BertForMaskedLM' and 'refused' in d['pooler'] and d['parameters']>0, d
assert d['dtypes']['F32']['tensors']>0, d" "$tmp/i.json" || fail "inspect --json wrong"
mkdir -p "$tmp/mlm_as_base" && cp "$tmp/mlm/"* "$tmp/mlm_as_base/"
sed -i 's/"BertForMaskedLM"/"BertModel"/' "$tmp/mlm_as_base/config.json"
"$bin" inspect "$tmp/mlm_as_base" --json > "$tmp/i.json" || fail "inspect (MLM weights as BertModel) exited $?"
python3 -c "
import json,sys; d=json.load(open(sys.argv[1]))
assert d['pooler_missing'] is True and 'refused' in d['pooler'] and d['unexpected_keys'], d" "$tmp/i.json" \
  || fail "inspect should report the missing pooler and the unused MLM head keys"
expect_err "inspect missing" "does not exist" "$bin" inspect "$tmp/nope"
mkdir -p "$tmp/unknown" && cp "$tmp/tiny/"* "$tmp/unknown/"
sed -i 's/"BertModel"/"BertForTimeTravel"/' "$tmp/unknown/config.json"
expect_err "unknown architecture" "unknown architecture" "$bin" inspect "$tmp/unknown"
sed -i 's/"model_type": "bert"/"model_type": "gpt2"/' "$tmp/unknown/config.json"
expect_err "unknown model_type (embed)" "model_type" "$bin" embed -m "$tmp/unknown" x
echo '{"model_type": "bert", ' > "$tmp/unknown/config.json"
expect_err "malformed config" "config.json" "$bin" inspect "$tmp/unknown"

# ---- the real default model (installed by scripts/setup.sh) ----------------------------------------
if [ -f "$repo/models/all-MiniLM-L6-v2/model.safetensors" ]; then
  out=$(cd "$repo" && "$bin" search) || fail "search demo exited $?"
  grep -q "query:" <<<"$out" || fail "search demo output: $out"
  python3 - "$repo" "$bin" <<'PY' || fail "search demo ranks wrongly"
import json, subprocess, sys
d = json.loads(subprocess.run([sys.argv[2], "search", "--json"], cwd=sys.argv[1], check=True,
                              capture_output=True, text=True).stdout)
top = [q["results"][0]["text"] for q in d["queries"]]
assert "bread" in top[0] and "password" in top[1] and "Everest" in top[2], top
PY
  out=$(cd "$repo" && "$bin" similarity --json "A man is eating food." "A man is eating a piece of bread." "A woman is playing violin.") \
    || fail "similarity (real model) exited $?"
  python3 -c "
import json,sys; s=json.loads(sys.argv[1])['similarity']
assert s[0][1] > 0.7 and s[0][2] < 0.2 and abs(s[0][0]-1) < 1e-4, s" "$out" || fail "similarity (real model) wrong: $out"
  "$bin" inspect "$repo/models/all-MiniLM-L6-v2" | grep -q "present, loaded" || fail "MiniLM pooler should be present"
else
  echo "cli: skipping real-model checks: $repo/models/all-MiniLM-L6-v2 is not installed (bash scripts/setup.sh)"
fi
echo "cli: ok"
