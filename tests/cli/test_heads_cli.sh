#!/usr/bin/env bash
# lmforge fill-mask / classify / ner / qa / nsp and similarity's cross-encoder mode as a user meets
# them: arguments, stdin lines and JSONL, --json output that parses, and clear errors (exit 2) on
# bad input.
# Usage: test_heads_cli.sh path/to/lmforge path/to/tests/fixtures/pipelines
set -u
bin=$1
fx=$2
fail() { echo "FAIL: $*"; exit 1; }
json_ok() { python3 -c "import json,sys; [json.loads(l) for l in sys.stdin]" || fail "$1: not JSON lines"; }

"$bin" --help | grep -q "fill-mask" || fail "--help does not list fill-mask"
"$bin" qa --help | grep -q -- "--doc-stride" || fail "qa --help does not document --doc-stride"
"$bin" fill-mask "$fx/bert_mlm" "Alice [MASK] the old book." --top-k 3 | grep -c "^ *[123]\. " \
  | grep -q 3 || fail "fill-mask does not print 3 predictions"
"$bin" fill-mask "$fx/roberta_mlm" "Hannah <mask> the<mask> guitar." --json | json_ok fill-mask
out=$(printf 'Alice found it.\tIt was in Paris.\n{"text": "Bob sold it."}\n' \
  | "$bin" classify "$fx/bert_cls" --top-k 0 --json) || fail "classify exited $?"
echo "$out" | json_ok classify
[ "$(echo "$out" | wc -l)" -eq 2 ] || fail "classify should print one line per input"
echo "$out" | head -1 | grep -q '"text_pair":"It was in Paris."' || fail "tab-separated pair lost"
echo "Maria Lopez moved from Berlin to São Paulo." | "$bin" ner "$fx/bert_ner" --json | json_ok ner
"$bin" ner "$fx/bert_ner" "John Smith visited the Alps." --aggregation none | grep -q "\[0, 4)" \
  || fail "ner none does not print token offsets"
"$bin" qa "$fx/bert_qa" --question "Where does Maria live?" \
  --context "Maria lives in Paris with her brother." --json | json_ok qa
echo '{"question": "Who?", "context": "Bob did it."}' | "$bin" qa "$fx/bert_qa" --json | json_ok qa-jsonl
"$bin" nsp "$fx/bert_nsp" "Alice found the old book." --next "She read it in Paris." \
  | grep -q "P(B follows A) = 0.9" || fail "nsp probability missing"

# fill-mask --targets: only the targets, top-k capped by their number, a warning per replacement.
out=$("$bin" fill-mask "$fx/bert_mlm" "The [MASK] was painted by Bob." --targets Paris,book,book \
  --top-k 5 --json 2>/tmp/heads_cli_warn.$$) || fail "fill-mask --targets exited $?"
echo "$out" | python3 -c "import json,sys; r=json.loads(sys.stdin.read())['masks'][0]
assert sorted(p['token_str'] for p in r) == ['book', 'paris'], r" || fail "fill-mask --targets: $out"
grep -q 'target "Paris" is not in the vocabulary; using its first token "paris"' \
  /tmp/heads_cli_warn.$$ || fail "fill-mask --targets does not warn: $(cat /tmp/heads_cli_warn.$$)"
"$bin" fill-mask --help | grep -q -- "--targets" || fail "fill-mask --help lacks --targets"

# ner --stride: a long text in several windows on a 32-position model.
long="Alice Lopez met in Oslo with the letter, then John went to the Alps. Fatima Okafor met in Lima \
with the camera, then Omar went to Berlin. Yuki Lopez met in New York with the river, then Chen went."
out=$("$bin" ner "$fx/bert_ner_short" "$long" --stride 8 --json) || fail "ner --stride exited $?"
echo "$out" | python3 -c "import json,sys; j=json.loads(sys.stdin.read())
assert j['windows'] > 1 and max(e['end'] for e in j['entities']) > 150, j" \
  || fail "ner --stride does not tag the whole text: $out"
"$bin" ner --help | grep -q -- "--stride" || fail "ner --help lacks --stride"

# similarity, cross-encoder mode: --pair, arguments (every pair), TSV / JSONL / array on stdin.
out=$("$bin" similarity -m "$fx/bert_ce" --pair "Where does Maria live?" \
  "Maria lives in Paris with her brother." --pair a b --json) || fail "similarity --pair exited $?"
echo "$out" | python3 -c "import json,sys; j=json.loads(sys.stdin.read())
s=[p['score'] for p in j['pairs']]
assert j['mode'] == 'cross-encoder' and abs(s[0] - 0.45270577) < 1e-5 and abs(s[1] - 0.40857661) < 1e-5, s" \
  || fail "cross-encoder scores differ from CrossEncoder.predict: $out"
out=$(printf 'a\tb\n{"text": "x", "text_pair": "y"}\n["p", "q"]\n' \
  | "$bin" similarity -m "$fx/bert_cls" --json) || fail "similarity pairs on stdin exited $?"
echo "$out" | python3 -c "import json,sys; j=json.loads(sys.stdin.read())
assert len(j['pairs']) == 3 and all(abs(sum(p['scores']) - 1) < 1e-6 for p in j['pairs']), j" \
  || fail "two-label cross-encoder should give softmax rows: $out"
"$bin" similarity -m "$fx/bert_ce" one two three | grep -c "<->" | grep -q 3 \
  || fail "cross-encoder with 3 sentences should score 3 pairs"
out=$("$bin" similarity -m "$fx/bert_mlm" --pair "the old book" "the old book" --pair "Paris" \
  "a guitar" --json) || fail "bi-encoder --pair exited $?"
echo "$out" | python3 -c "import json,sys; j=json.loads(sys.stdin.read()); s=[p['score'] for p in j['pairs']]
assert j['mode'] == 'bi-encoder' and abs(s[0] - 1) < 1e-5 and s[1] < 0.999, j" \
  || fail "--pair with an embedding model should give the cosine per pair: $out"
"$bin" similarity --help | grep -q -- "--cross-encoder" || fail "similarity --help lacks --cross-encoder"

check_err() {  # expected-text command...
  local want=$1; shift
  "$@" >/dev/null 2>/tmp/heads_cli_err.$$; local rc=$?
  [ $rc -eq 2 ] || fail "$* should exit 2, got $rc"
  grep -q "$want" /tmp/heads_cli_err.$$ || fail "$*: error does not say '$want': $(cat /tmp/heads_cli_err.$$)"
}
check_err "no mask token" "$bin" fill-mask "$fx/bert_mlm" "no mask here"
check_err "no fill-mask head" "$bin" fill-mask "$fx/bert_cls" "a [MASK]"
check_err "give --question" "$bin" qa "$fx/bert_qa" "context only"
check_err "one sentence" "$bin" nsp "$fx/bert_nsp" "only a"
check_err "not a JSON object" bash -c "echo '{bad' | '$bin' ner '$fx/bert_ner'"
check_err "empty text in the pair" "$bin" similarity -m "$fx/bert_ce" --pair "a question" ""
check_err "two sentences" "$bin" similarity -m "$fx/bert_ce" --pair "only one"
check_err "cannot read" "$bin" similarity -m "$fx/bert_ce" --file /nonexistent/pairs.tsv
check_err "needs a tab" bash -c "echo 'no tab here' | '$bin' similarity -m '$fx/bert_ce'"
check_err "no sentence pairs" bash -c "printf '\n\n' | '$bin' similarity -m '$fx/bert_ce'"
check_err "empty text" bash -c "printf 'a\t \n' | '$bin' similarity -m '$fx/bert_ce'"
check_err "always 1" "$bin" similarity -m "$fx/bert_ce" --pair a b --activation softmax
check_err "no cross-encoder head" "$bin" similarity -m "$fx/bert_ner" --cross-encoder --pair a b
check_err "cross-encoders only" "$bin" similarity -m "$fx/bert_mlm" --pair a b --activation sigmoid
check_err "gives a token" "$bin" fill-mask "$fx/bert_mlm" "a [MASK]" --targets ""
check_err "cannot read" "$bin" fill-mask "$fx/bert_mlm" --file /nonexistent/texts.txt
check_err "must be less than" "$bin" ner "$fx/bert_ner_short" "a b" --stride 32
check_err "aggregation" "$bin" ner "$fx/bert_ner_short" "a b" --stride 4 --aggregation none
rm -f /tmp/heads_cli_err.$$ /tmp/heads_cli_warn.$$
echo "heads cli: ok"
