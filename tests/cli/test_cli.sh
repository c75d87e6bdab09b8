#!/usr/bin/env bash
# The lmforge command as a user meets it: help, JSON output, metrics and plot files, and clear
# errors with distinct exit codes on bad input.
set -u
bin=$1
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
echo "cli: ok"
