#!/usr/bin/env bash
# lmforge fill-mask / classify / ner / qa / nsp as a user meets them: arguments, stdin lines and
# JSONL, --json output that parses, and clear errors (exit 2) on bad input.
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
rm -f /tmp/heads_cli_err.$$
echo "heads cli: ok"
