#!/usr/bin/env bash
# lmforge bleu on the sacrebleu goldens (tests/fixtures/bleu, scripts/reference/gen_bleu_goldens.py):
# --json fields equal sacrebleu's corpus_bleu / corpus_chrf to 1e-9 absolute for every case with
# files (one and two reference files), the human lines equal sacrebleu's printed ones, standard
# input, and every bad input (line-count mismatch, invalid UTF-8, missing file, folder, empty
# file) a one-line error naming the file with exit status 2.
# Usage: test_bleu_cli.sh LMFORGE FIXTURES_DIR
set -u
LMF=$1
FIX=$2/bleu
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

# --- every file-based golden case: --json and the human output
python3 - "$FIX/goldens.json" >"$T/cases" <<'EOF'
import json, sys
for c in json.load(open(sys.argv[1], encoding="utf-8"))["cases"]:
    if "files" in c:
        print(c["name"], c["files"]["hyp"], *c["files"]["refs"])
EOF
[ "$(wc -l <"$T/cases")" -ge 10 ] && ok "golden cases with files: $(wc -l <"$T/cases")" || bad "too few file cases"
while read -r name hyp refs; do
  args=()
  for r in $refs; do args+=(--ref "$FIX/$r"); done
  if "$LMF" bleu "${args[@]}" --hyp "$FIX/$hyp" --json >"$T/out.json" 2>"$T/err" &&
    python3 - "$FIX/goldens.json" "$name" "$T/out.json" <<'EOF'
import json, sys
case = next(c for c in json.load(open(sys.argv[1], encoding="utf-8"))["cases"] if c["name"] == sys.argv[2])
lines = open(sys.argv[3]).read().splitlines()
assert len(lines) == 1, lines
d = json.loads(lines[0])
b, c = case["bleu"], case["chrf"]
close = lambda x, y: abs(x - y) <= 1e-9
assert close(d["bleu"], b["score"]) and close(d["chrf"], c["score"]), (d["bleu"], b["score"], d["chrf"], c["score"])
assert close(d["bp"], b["bp"]) and close(d["ratio"], b["ratio"])
assert all(close(x, y) for x, y in zip(d["precisions"], b["precisions"])) and len(d["precisions"]) == 4
assert d["counts"] == b["counts"] and d["totals"] == b["totals"]
assert d["sys_len"] == b["sys_len"] and d["ref_len"] == b["ref_len"]
assert d["chrf_stats"] == c["stats"] and d["chrf_name"] == c["name"] == "chrF2"
assert d["references"] == len(case["files"]["refs"])
EOF
  then ok "$name --json equals sacrebleu"; else bad "$name --json: $(cat "$T/err")"; fi
  "$LMF" bleu "${args[@]}" --hyp "$FIX/$hyp" >"$T/out.txt" 2>"$T/err"
  expected=$(python3 -c "
import json, sys
c = next(c for c in json.load(open(sys.argv[1], encoding='utf-8'))['cases'] if c['name'] == sys.argv[2])
print(c['bleu']['formatted']); print(c['chrf']['formatted'])" "$FIX/goldens.json" "$name")
  [ "$(cat "$T/out.txt")" = "$expected" ] && ok "$name human output" || bad "$name human output: $(cat "$T/out.txt") vs $expected"
done <"$T/cases"

# --- hypotheses on standard input
M=$FIX/multi30k_fr_200
a=$("$LMF" bleu --ref "$M/ref0.txt" --hyp "$M/hyp.txt" 2>&1)
b=$("$LMF" bleu --ref "$M/ref0.txt" --hyp - <"$M/hyp.txt" 2>&1)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "--hyp - reads standard input" || bad "stdin: '$a' vs '$b'"

# --- CRLF line ends score like LF ones
sed 's/$/\r/' "$M/hyp.txt" >"$T/crlf.txt"
c=$("$LMF" bleu --ref "$M/ref0.txt" --hyp "$T/crlf.txt" 2>&1)
[ "$a" = "$c" ] && ok "CRLF files" || bad "CRLF: '$c'"

# --- bad input: one line on stderr, exit status 2, naming what is wrong
expect_error() {  # name, grep pattern (extended), command...
  local name=$1 pat=$2
  shift 2
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  if [ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -Eq -- "$pat" "$T/err" && [ ! -s "$T/out" ]; then
    ok "$name"
  else
    bad "$name (rc $rc): $(cat "$T/err")"
  fi
}
head -n 150 "$M/ref0.txt" >"$T/short.txt"
expect_error "line-count mismatch names both files and counts" \
  "hyp.txt' have 200 lines, references '.*short.txt' have 150 \(.*hyp.txt:151 has no counterpart\)" \
  "$LMF" bleu --ref "$T/short.txt" --hyp "$M/hyp.txt"
expect_error "mismatch with the second reference file" "short.txt' have 150" \
  "$LMF" bleu --ref "$M/ref0.txt" --ref "$T/short.txt" --hyp "$M/hyp.txt"
{ head -n 6 "$M/hyp.txt"; printf 'une ligne \xc3\x28 invalide\n'; tail -n 193 "$M/hyp.txt"; } >"$T/bad.txt"
expect_error "invalid UTF-8 names file:line" "bad.txt:7: invalid UTF-8 at byte 10" \
  "$LMF" bleu --ref "$M/ref0.txt" --hyp "$T/bad.txt"
expect_error "invalid UTF-8 in a reference" "bad.txt:7: invalid UTF-8" \
  "$LMF" bleu --ref "$T/bad.txt" --hyp "$M/hyp.txt"
expect_error "missing file" "cannot read '.*nope.txt'" \
  "$LMF" bleu --ref "$T/nope.txt" --hyp "$M/hyp.txt"
expect_error "a folder" "is a folder" "$LMF" bleu --ref "$T" --hyp "$M/hyp.txt"
: >"$T/empty.txt"
expect_error "empty files" "empty.txt' is empty" "$LMF" bleu --ref "$T/empty.txt" --hyp "$T/empty.txt"
head -c 3000 /dev/urandom >"$T/random.bin"
"$LMF" bleu --ref "$T/random.bin" --hyp "$T/random.bin" >/dev/null 2>"$T/err"
rc=$?
{ [ $rc -eq 0 ] || [ $rc -eq 2 ]; } && ok "random bytes: no crash (rc $rc)" || bad "random bytes: rc $rc $(cat "$T/err")"

# --- help
"$LMF" bleu --help | grep -q "sacrebleu" && ok "--help" || bad "--help"

echo "$fails failure(s)"
[ $fails -eq 0 ]
