#!/usr/bin/env bash
# lmforge translate on the tiny Marian folder with a SentencePiece tokenizer
# (tests/fixtures/seq2seq_generate/translate, scripts/reference/gen_seq2seq_generate_goldens.py):
# --json output_ids and text equal transformers' MarianTokenizer + generate() + decode (greedy and
# 3 beams), the plain output, stdin and --file input, --attention-heatmap HTML, --source-ids,
# and bad input (empty line, too-long source, invalid sampling values, folder without a
# tokenizer) handled with a one-line error and exit status 2 or an empty translation; a BART
# folder (tests/fixtures/bart/translate) translated as transformers does and inspected.
# Usage: test_translate_cli.sh LMFORGE FIXTURES_DIR
set -u
LMF=$1
FIX=$2/seq2seq_generate
M=$FIX/translate
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

# --- --json equals transformers (greedy and beam 3), texts from the arguments
for mode in greedy beam3; do
  beams=1
  [ "$mode" = beam3 ] && beams=3
  if python3 -c "import json,sys; print('\n'.join(json.load(open(sys.argv[1]))['texts']))" \
      "$FIX/translate.json" >"$T/texts" &&
    mapfile -t texts <"$T/texts" &&
    "$LMF" translate --model "$M" --num-beams $beams --max-new-tokens 10 --json "${texts[@]}" \
      >"$T/out.json" 2>"$T/err" &&
    python3 - "$FIX/translate.json" "$mode" "$T/out.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))[sys.argv[2]]
rows = [json.loads(l) for l in open(sys.argv[3]).read().splitlines()]
assert [r["output_ids"] for r in rows] == g["output_ids"], ([r["output_ids"] for r in rows], g["output_ids"])
assert [r["text"] for r in rows] == g["text"], ([r["text"] for r in rows], g["text"])
assert [r["source_ids"] for r in rows] == json.load(open(sys.argv[1]))["source_ids"]
if sys.argv[2] == "greedy":  # the translations depend on the source (batch rows not mixed up)
    assert rows[0]["output_ids"] != rows[1]["output_ids"]
PY
  then ok "--json $mode equals transformers"; else bad "--json $mode"; cat "$T/err"; fi
done

# --- plain output, stdin and --file give the same lines (default: the folder's 2 beams)
"$LMF" translate --model "$M" --max-new-tokens 10 "${texts[@]}" >"$T/args.txt" 2>/dev/null
"$LMF" translate --model "$M" --max-new-tokens 10 <"$T/texts" >"$T/stdin.txt" 2>/dev/null
"$LMF" translate --model "$M" --max-new-tokens 10 --file "$T/texts" >"$T/file.txt" 2>/dev/null
if [ "$(wc -l <"$T/args.txt")" = 2 ] && cmp -s "$T/args.txt" "$T/stdin.txt" &&
  cmp -s "$T/args.txt" "$T/file.txt"; then ok "arguments, stdin and --file agree"; else bad "inputs differ"; fi

# --- num_return_sequences: two lines per input with --json rank
"$LMF" translate --model "$M" --num-beams 3 --num-return-sequences 2 --max-new-tokens 6 --json \
  "${texts[0]}" >"$T/nrs.json" 2>/dev/null
[ "$(wc -l <"$T/nrs.json")" = 2 ] && grep -q '"rank":1' "$T/nrs.json" && ok "num_return_sequences" || bad "num_return_sequences"

# --- attention heatmap: self-contained HTML with the tokens
if "$LMF" translate --model "$M" --max-new-tokens 6 --attention-heatmap "$T/att.html" "${texts[0]}" \
  >/dev/null 2>"$T/err" && grep -q "Cross-attention" "$T/att.html" && grep -q "▁man" "$T/att.html" &&
  ! grep -q "<script src" "$T/att.html"; then ok "--attention-heatmap"; else bad "--attention-heatmap"; cat "$T/err"; fi

# --- --target-lang: a multilingual folder's >>xx<< token put before the source (the same as
# writing it), an unknown code or a folder without codes is a one-line error naming what to do
"$LMF" translate --model "$M" --max-new-tokens 6 --json --target-lang de "${texts[0]}" >"$T/tl.json" 2>"$T/err"
"$LMF" translate --model "$M" --max-new-tokens 6 --json ">>de<< ${texts[0]}" >"$T/tl_manual.json" 2>/dev/null
if python3 - "$T/tl.json" "$T/tl_manual.json" "$M/vocab.json" <<'PY'
import json, sys
a = json.loads(open(sys.argv[1]).read())
b = json.loads(open(sys.argv[2]).read())
de = json.load(open(sys.argv[3]))[">>de<<"]
assert a["source_ids"][0] == de and a["source_ids"] == b["source_ids"], (a, b)
assert a["output_ids"] == b["output_ids"]
PY
then ok "--target-lang de"; else bad "--target-lang de"; cat "$T/err"; fi
"$LMF" translate --model "$M" --target-lang xx "${texts[0]}" >/dev/null 2>"$T/err"
rc=$?
[ $rc = 2 ] && grep -q ">>xx<<" "$T/err" && grep -q "fr" "$T/err" && [ "$(wc -l <"$T/err")" = 1 ] &&
  ok "--target-lang unknown code" || { bad "--target-lang unknown code (rc $rc)"; cat "$T/err"; }
"$LMF" translate --model "$2/t5/t5_translate" --target-lang fr "A dog." >/dev/null 2>"$T/err"
rc=$?
[ $rc = 2 ] && grep -q "source-prefix" "$T/err" && ok "--target-lang without a Marian tokenizer" ||
  { bad "--target-lang on T5 (rc $rc)"; cat "$T/err"; }

# --- hidden --source-ids: the same ids as from the text
ids=$(python3 -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['source_ids']))" "$FIX/translate.json")
"$LMF" translate --model "$M" --num-beams 1 --max-new-tokens 10 --json --source-ids "$ids" >"$T/ids.json" 2>/dev/null
python3 - "$FIX/translate.json" "$T/ids.json" <<'PY' && ok "--source-ids" || bad "--source-ids"
import json, sys
g = json.load(open(sys.argv[1]))["greedy"]
rows = [json.loads(l) for l in open(sys.argv[2]).read().splitlines()]
assert [r["output_ids"] for r in rows] == g["output_ids"]
PY

# --- bad input
expect_error() {  # name, expected text, command...
  local name=$1 want=$2
  shift 2
  "$@" >"$T/o" 2>"$T/e"
  local rc=$?
  if [ $rc = 2 ] && [ "$(wc -l <"$T/e")" -le 2 ] && grep -q -- "$want" "$T/e"; then ok "$name"; else
    bad "$name (rc $rc)"; cat "$T/e"; fi
}
long=$(python3 -c "print(' '.join(['man'] * 60))")
expect_error "too-long source" "--truncate" "$LMF" translate --model "$M" "$long"
"$LMF" translate --model "$M" --truncate --max-new-tokens 3 "$long" >/dev/null 2>&1 && ok "--truncate" || bad "--truncate"
expect_error "top-p 1.5" "top_p" "$LMF" translate --model "$M" --do-sample --top-p 1.5 "a"
expect_error "temperature -1" "temperature" "$LMF" translate --model "$M" --temperature -1 "a"
expect_error "num-return-sequences > beams" "num_return_sequences" "$LMF" translate --model "$M" --num-beams 2 --num-return-sequences 3 "a"
mkdir "$T/notok" && cp "$M"/config.json "$M"/model.safetensors "$T/notok/"
expect_error "no tokenizer" "has no tokenizer" "$LMF" translate --model "$T/notok" "a"
expect_error "bad --source-ids" "source-ids" "$LMF" translate --model "$M" --source-ids "[1,"
# An empty argument gives an empty translation (its line stays in place).
"$LMF" translate --model "$M" --max-new-tokens 4 --json "" "${texts[0]}" >"$T/empty.json" 2>/dev/null
python3 - "$T/empty.json" <<'PY' && ok "empty input" || bad "empty input"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
assert len(rows) == 2 and rows[0]["output_ids"] == [] and rows[0]["finish_reason"] == "empty"
assert rows[1]["index"] == 1 and rows[1]["output_ids"]
PY
# Blank lines of a file give empty translations in place: the output stays line-aligned.
printf '%s\n\n%s\n' "${texts[0]}" "${texts[0]}" >"$T/blank.txt"
"$LMF" translate --model "$M" --max-new-tokens 4 --file "$T/blank.txt" >"$T/blank.out" 2>/dev/null
[ "$(wc -l <"$T/blank.out")" = 3 ] && [ -z "$(sed -n 2p "$T/blank.out")" ] &&
  [ "$(sed -n 1p "$T/blank.out")" = "$(sed -n 3p "$T/blank.out")" ] && ok "blank lines kept" || bad "blank lines kept"
"$LMF" translate --help >"$T/help" 2>&1 && grep -q -- "--attention-heatmap" "$T/help" && ! grep -q -- "--source-ids" "$T/help" && ok "--help" || bad "--help"

# --- a BART folder (tests/fixtures/bart/translate, scripts/reference/gen_bart_goldens.py): byte-level
# BPE tokenizer.json, decoder start </s>, generate() and decode as transformers (greedy, 3 beams).
BFIX=$2/bart
for mode in greedy beam3; do
  beams=1
  [ "$mode" = beam3 ] && beams=3
  python3 -c "import json,sys; print('\n'.join(json.load(open(sys.argv[1]))['texts']))" \
    "$BFIX/translate.json" >"$T/btexts"
  mapfile -t btexts <"$T/btexts"
  if "$LMF" translate --model "$BFIX/translate" --num-beams $beams --max-new-tokens 10 --json \
      "${btexts[@]}" >"$T/bart.json" 2>"$T/err" &&
    python3 - "$BFIX/translate.json" "$mode" "$T/bart.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[3]).read().splitlines()]
assert [r["source_ids"] for r in rows] == g["source_ids"], [r["source_ids"] for r in rows]
assert [r["output_ids"] for r in rows] == g[sys.argv[2]]["output_ids"], [r["output_ids"] for r in rows]
assert [r["text"] for r in rows] == g[sys.argv[2]]["text"], [r["text"] for r in rows]
PY
  then ok "BART --json $mode equals transformers"; else bad "BART --json $mode"; cat "$T/err"; fi
done
"$LMF" inspect "$BFIX/translate" >"$T/binspect" 2>&1 && grep -q "BartForConditionalGeneration" "$T/binspect" &&
  ok "inspect a BART folder" || { bad "inspect a BART folder"; cat "$T/binspect"; }

[ $fails = 0 ] && echo "all translate CLI checks passed" || echo "$fails translate CLI checks failed"
exit $((fails > 0))
