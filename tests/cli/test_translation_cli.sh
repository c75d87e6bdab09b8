#!/usr/bin/env bash
# lmforge finetune --task translation end to end on the tiny Marian fixture
# (tests/fixtures/translation, scripts/reference/gen_translation_train_goldens.py): a few steps on
# pre-tokenized id pairs with label smoothing and a checkpoint, --resume, from scratch (--config),
# the saved folder loads back (as --model of another run), and bad input
# (mismatched SRC/TGT line counts, an unknown JSONL language field) is a one-line error, exit 2.
# Usage: test_translation_cli.sh LMFORGE FIXTURES_DIR
set -u
LMF=$1
FIX=$2/translation
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

common=(finetune --task translation --train "$FIX/train.jsonl" --source-lang en --target-lang fr
  --label-smoothing 0.1 --batch-size 2 --lr 1e-3 --logging-steps 1 --no-progress)
if "$LMF" "${common[@]}" --model "$FIX/marian_tiny" -o "$T/run" --max-steps 3 --save-steps 2 \
  --json >"$T/out.json" 2>"$T/err"; then
  ok "finetune --task translation (3 steps)"
else
  bad "finetune --task translation: $(cat "$T/err")"
fi
grep -q '"global_step":3' "$T/out.json" && ok "3 steps" || bad "steps: $(cat "$T/out.json")"
grep -q '"train_tokens_per_second":[1-9]' "$T/out.json" && ok "tokens/s reported" || bad "tokens/s: $(cat "$T/out.json")"
for f in config.json model.safetensors generation_config.json metrics.jsonl training_curves.html \
  checkpoint-2/model.safetensors; do
  [ -f "$T/run/$f" ] && ok "saved $f" || bad "missing $f"
done
grep -q '"MarianMTModel"' "$T/run/config.json" && ok "config names MarianMTModel" || bad "architecture"

# --resume from checkpoint-2 to step 4
if "$LMF" "${common[@]}" --model "$FIX/marian_tiny" -o "$T/run" --max-steps 4 --save-steps 2 \
  --resume --json >"$T/resume.json" 2>"$T/err" && grep -q '"global_step":4' "$T/resume.json"; then
  ok "--resume continues to step 4"
else
  bad "--resume: $(cat "$T/err") $(cat "$T/resume.json")"
fi

# the saved folder loads back: the starting point of another run (lmforge inspect knows no Marian)
"$LMF" "${common[@]}" --model "$T/run" -o "$T/again" --max-steps 1 --json >/dev/null 2>"$T/err" &&
  ok "saved folder trains again" || bad "retrain: $(cat "$T/err")"

# from scratch: --config (initialised as transformers)
"$LMF" "${common[@]}" --config "$FIX/marian_tiny/config.json" -o "$T/scratch" --max-steps 2 \
  --json >"$T/scratch.json" 2>"$T/err" && [ -f "$T/scratch/model.safetensors" ] &&
  [ -f "$T/scratch/generation_config.json" ] && ok "--config from scratch" || bad "--config: $(cat "$T/err")"

# text pairs (SRC,TGT files) through the Marian tokenizer, from scratch; the tokenizer files are saved
TOK=$2/marian_tokenizer
"$LMF" finetune --task translation --config "$FIX/joint_config.json" --tokenizer "$TOK/joint" \
  --train "$TOK/corpus.en,$TOK/corpus.fr" --validation "$TOK/corpus.en,$TOK/corpus.fr" \
  --max-eval-examples 16 --label-smoothing 0.1 --max-steps 2 --batch-size 8 --no-progress \
  -o "$T/text" --json >"$T/text.json" 2>"$T/err" && grep -q '"eval_loss"' "$T/text.json" &&
  [ -f "$T/text/source.spm" ] && [ -f "$T/text/vocab.json" ] &&
  ok "text pairs via the Marian tokenizer (eval_loss, tokenizer files saved)" ||
  bad "text pairs: $(cat "$T/err") $(cat "$T/text.json")"

# bad input: exit 2 and a one-line error naming what is wrong
expect_error() {  # name pattern args...
  local name=$1 pat=$2
  shift 2
  "$LMF" "$@" >"$T/o" 2>"$T/e"
  local rc=$?
  if [ $rc -eq 2 ] && grep -q -- "$pat" "$T/e"; then ok "$name"; else bad "$name (rc $rc): $(cat "$T/e")"; fi
}
printf 'a b\nc\nd\n' >"$T/x.en"
printf 'x\ny\n' >"$T/x.fr"
expect_error "mismatched SRC/TGT line counts" "x.en:3" finetune --task translation \
  --model "$FIX/marian_tiny" --train "$T/x.en,$T/x.fr" -o "$T/bad1" --no-progress
expect_error "unknown language field" "no field 'de'" finetune --task translation \
  --model "$FIX/marian_tiny" --train "$FIX/train.jsonl" --target-lang de -o "$T/bad2" --no-progress
expect_error "neither --model nor --config" "--config" finetune --task translation \
  --train "$FIX/train.jsonl" -o "$T/bad3" --no-progress

echo "$fails failure(s)"
[ $fails -eq 0 ]
