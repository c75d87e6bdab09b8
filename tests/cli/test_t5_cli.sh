#!/usr/bin/env bash
# lmforge translate and inspect on a tiny T5 folder with its tokenizer.json
# (tests/fixtures/t5/t5_translate, scripts/reference/gen_t5_goldens.py): --json output_ids and
# text equal transformers' tokenizer + generate() + decode (greedy and 2 beams, the task prefix in
# the text), a source far longer than the training lengths (T5 has no position limit), the
# spiece.model-only folder, and inspect's description of the folder.
# Usage: test_t5_cli.sh LMFORGE FIXTURES_DIR
set -u
LMF=$1
FIX=$2/t5
M=$FIX/t5_translate
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

python3 -c "import json,sys; print('\n'.join(json.load(open(sys.argv[1]))['texts']))" \
  "$M/translate.json" >"$T/texts"
mapfile -t texts <"$T/texts"
for mode in greedy beam2; do
  beams=1
  [ "$mode" = beam2 ] && beams=2
  if "$LMF" translate --model "$M" --num-beams $beams --max-new-tokens 10 --json "${texts[@]}" \
      >"$T/out.json" 2>"$T/err" &&
    python3 - "$M/translate.json" "$mode" "$T/out.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[3]).read().splitlines()]
assert [r["source_ids"] for r in rows] == g["source_ids"], [r["source_ids"] for r in rows]
assert [r["output_ids"] for r in rows] == g[sys.argv[2]]["output_ids"], [r["output_ids"] for r in rows]
assert [r["text"] for r in rows] == g[sys.argv[2]]["text"], [r["text"] for r in rows]
PY
  then ok "translate --json $mode equals transformers"; else bad "translate --json $mode"; cat "$T/err"; fi
done

# No position table: a 400-word source translates (nothing to truncate).
long=$(python3 -c "print('summarize: ' + ' '.join(['a man rides a bike'] * 80))")
"$LMF" translate --model "$M" --max-new-tokens 3 "$long" >"$T/long" 2>"$T/err" && ok "long source" ||
  { bad "long source"; cat "$T/err"; }

# The same model with only spiece.model (+ tokenizer_config.json): the same ids.
mkdir "$T/slow" && cp "$M"/config.json "$M"/model.safetensors "$M"/generation_config.json "$T/slow/" &&
  cp "$FIX"/tokenizer/slow/* "$T/slow/"
"$LMF" translate --model "$T/slow" --num-beams 1 --max-new-tokens 10 --json "${texts[@]}" >"$T/slow.json" 2>"$T/err"
python3 - "$M/translate.json" "$T/slow.json" <<'PY' && ok "spiece.model folder" || { bad "spiece.model folder"; cat "$T/err"; }
import json, sys
g = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[2]).read().splitlines()]
assert [r["source_ids"] for r in rows] == g["source_ids"]
assert [r["output_ids"] for r in rows] == g["greedy"]["output_ids"]
PY

# inspect: architecture, shape, tokenizer, nothing missing.
if "$LMF" inspect "$M" >"$T/inspect" 2>"$T/err" && grep -q "T5ForConditionalGeneration (model_type t5)" "$T/inspect" &&
  grep -q "relative_attention_num_buckets 16" "$T/inspect" && grep -q "tokenizer.json (405 tokens)" "$T/inspect" &&
  grep -q "missing keys (newly initialised) (0)" "$T/inspect"; then ok "inspect"; else bad "inspect"; cat "$T/inspect" "$T/err"; fi
"$LMF" inspect --json "$M" >"$T/inspect.json" 2>/dev/null
python3 - "$T/inspect.json" <<'PY' && ok "inspect --json" || bad "inspect --json"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["model_type"] == "t5" and j["architecture"] == "T5ForConditionalGeneration"
assert j["config"]["d_model"] == 32 and j["missing_keys"] == [] and j["unexpected_keys"] == []
assert "lm_head.weight" in j["tied_keys"]
PY
"$LMF" inspect "$T/slow" 2>/dev/null | grep -q "spiece.model (405 tokens)" && ok "inspect spiece.model" || bad "inspect spiece.model"

# finetune --task translation on T5 with run_translation's --source-prefix, then evaluate the
# saved folder with the same prefix (teacher-forced eval_loss and BLEU/chrF).
P="translate English to French: "
DATA=$2/translation/t5_text.jsonl
if "$LMF" finetune --task translation --model "$M" --train "$DATA" --source-prefix "$P" \
    --max-steps 3 --batch-size 2 --lr 1e-3 --save-steps 0 -o "$T/ft" --json >"$T/ft.json" 2>"$T/err" &&
  python3 - "$T/ft.json" "$T/ft" <<'PY'
import json, os, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert r["global_step"] == 3 and r["train_loss"] > 0, r
for f in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json"):
    assert os.path.exists(os.path.join(sys.argv[2], f)), f
assert json.load(open(os.path.join(sys.argv[2], "config.json")))["architectures"] == ["T5ForConditionalGeneration"]
PY
then ok "finetune T5 --source-prefix"; else bad "finetune T5 --source-prefix"; cat "$T/err"; fi
if "$LMF" evaluate --model "$T/ft" --data "$DATA" --source-prefix "$P" --max-new-tokens 8 --json \
    >"$T/ev.json" 2>"$T/err" &&
  python3 - "$T/ev.json" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r["eval_loss"] > 0 and 0 <= r["bleu"] <= 100 and "chrf" in r, r
PY
then ok "evaluate T5 --source-prefix"; else bad "evaluate T5 --source-prefix"; cat "$T/err" "$T/ev.json"; fi

[ $fails = 0 ] && echo "all T5 CLI checks passed" || echo "$fails T5 CLI checks failed"
exit $((fails > 0))
