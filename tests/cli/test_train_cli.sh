#!/usr/bin/env bash
# lmforge finetune / evaluate / pretrain end to end on tiny fixtures: outputs written, JSON
# results, --resume equal to a straight run (byte-identical model), and clear errors.
# Usage: test_train_cli.sh LMFORGE_BINARY FIXTURES_DIR
set -uo pipefail
bin=$1
fx=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=PASSIVE LMFORGE_NUM_THREADS=2
fail() { echo "FAIL: $*" >&2; exit 1; }
jget() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])$2)" "$1"; }

# ---- finetune: classification on the tiny BERT classifier ----------------------------------------
ft=(finetune --model "$fx/pipelines/bert_cls" --task classification --train "$fx/finetune/cls_train.tsv"
    --eval "$fx/finetune/cls_eval.tsv" --batch-size 4 --lr 1e-3 --logging-steps 1 --eval-steps 2
    --seed 7 --json)
"$bin" "${ft[@]}" -o "$tmp/ft" --max-steps 6 --save-steps 2 > "$tmp/ft.json" 2> "$tmp/ft.err" \
  || fail "finetune exited $?: $(cat "$tmp/ft.err")"
for f in config.json model.safetensors tokenizer.json metrics.jsonl training_curves.html; do
  [[ -f "$tmp/ft/$f" ]] || fail "finetune did not write $f"
done
[[ $(jget "$tmp/ft.json" "['global_step']") == 6 ]] || fail "finetune global_step: $(cat "$tmp/ft.json")"
python3 - "$tmp/ft" <<'PY' || fail "finetune outputs"
import json, sys
d = sys.argv[1]
cfg = json.load(open(d + "/config.json"))
assert cfg["architectures"] == ["BertForSequenceClassification"], cfg["architectures"]
assert sorted(cfg["id2label"].values()) == ["NEGATIVE", "POSITIVE"], cfg["id2label"]
logs = [json.loads(l) for l in open(d + "/metrics.jsonl")]
assert any("eval_accuracy" in l for l in logs), logs
assert sum("loss" in l and "learning_rate" in l for l in logs) >= 6, logs
html = open(d + "/training_curves.html").read()
assert "<svg" in html and "http://" not in html.replace("http://www.w3.org", ""), "html plot"
PY

# evaluate the saved model: the same metrics as the final in-training evaluation
"$bin" evaluate --model "$tmp/ft" --data "$fx/finetune/cls_eval.tsv" --json > "$tmp/ev.json" \
  || fail "evaluate exited $?"
python3 - "$tmp/ft.json" "$tmp/ev.json" <<'PY' || fail "evaluate differs from the final evaluation"
import json, sys
final = json.loads(open(sys.argv[1]).read())["final_eval"]
ev = json.loads(open(sys.argv[2]).read())
for k in ("eval_accuracy", "eval_loss"):
    assert abs(final[k] - ev[k]) < 1e-5, (k, final[k], ev[k])
PY

# --resume: a 6-step run keeps checkpoint-3; resuming from it (checkpoint-6 and the final model
# removed, as if killed after step 3) must give the same model byte for byte.
"$bin" "${ft[@]}" -o "$tmp/res" --max-steps 6 --save-steps 3 --save-total-limit 0 > /dev/null 2>&1 \
  || fail "resume base run"
cp "$tmp/res/model.safetensors" "$tmp/straight.safetensors"
rm -rf "$tmp/res/checkpoint-6" "$tmp/res/model.safetensors"
[[ -d "$tmp/res/checkpoint-3" ]] || fail "no checkpoint-3"
"$bin" "${ft[@]}" -o "$tmp/res" --max-steps 6 --save-steps 3 --resume > /dev/null 2> "$tmp/res.err" \
  || fail "--resume exited $?: $(cat "$tmp/res.err")"
cmp -s "$tmp/res/model.safetensors" "$tmp/straight.safetensors" \
  || fail "resumed model differs from the straight run"

# ---- pretrain: BERT (MLM + NSP) from a config, and ELECTRA ---------------------------------------
"$bin" pretrain --config "$fx/pipelines/bert_nsp/config.json" --tokenizer "$fx/pipelines/bert_nsp" \
  --recipe bert --train "$fx/pretrain/corpus.txt" --eval-split 0.2 --max-seq-length 32 \
  --batch-size 8 --max-steps 4 --logging-steps 2 --eval-steps 4 --lr 1e-3 -o "$tmp/pt" --json \
  > "$tmp/pt.json" 2> "$tmp/pt.err" || fail "pretrain bert exited $?: $(cat "$tmp/pt.err")"
python3 - "$tmp/pt" "$tmp/pt.json" <<'PY' || fail "pretrain bert outputs"
import json, sys
d = sys.argv[1]
r = json.loads(open(sys.argv[2]).read())
assert r["global_step"] == 4 and "eval_perplexity" in r["final_eval"], r
assert "eval_nsp_accuracy" in r["final_eval"], r
cfg = json.load(open(d + "/config.json"))
assert cfg["architectures"] == ["BertForPreTraining"], cfg
PY
python3 - "$fx/electra/model/config.json" "$tmp/electra.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(vocab_size=313, hidden_size=32, num_attention_heads=4, intermediate_size=64,
         embedding_size=16, max_position_embeddings=64)
json.dump(c, open(sys.argv[2], "w"))
PY
"$bin" pretrain --config "$tmp/electra.json" --tokenizer "$fx/pipelines/bert_nsp" --recipe electra \
  --generator-divisor 2 --train "$fx/pretrain/corpus.txt" --eval-split 0.2 --max-seq-length 32 \
  --batch-size 8 --max-steps 3 --logging-steps 1 --lr 1e-3 -o "$tmp/el" --json > "$tmp/el.json" \
  2> "$tmp/el.err" || fail "pretrain electra exited $?: $(cat "$tmp/el.err")"
[[ -f "$tmp/el/model.safetensors" && -f "$tmp/el/generator/model.safetensors" ]] \
  || fail "electra did not save discriminator and generator"
grep -q rtd_loss "$tmp/el/metrics.jsonl" || fail "electra logs have no rtd_loss"
# --recipe electra's own defaults (lr 2e-4, warm-up 0.1) where --lr / --warmup-ratio are not given
"$bin" pretrain --config "$tmp/electra.json" --tokenizer "$fx/pipelines/bert_nsp" --recipe electra \
  --generator-divisor 2 --train "$fx/pretrain/corpus.txt" --eval-split 0.2 --max-seq-length 32 \
  --batch-size 8 --max-steps 10 --logging-steps 1 --eval-steps 10 -o "$tmp/el2" --json \
  > "$tmp/el2.json" 2> "$tmp/el2.err" || fail "pretrain electra (defaults) exited $?: $(cat "$tmp/el2.err")"
python3 - "$tmp/el2/metrics.jsonl" <<'PY' || fail "electra recipe defaults not applied"
import json, sys
logs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
lrs = [l["learning_rate"] for l in logs if "learning_rate" in l]
assert 1e-4 < max(lrs) <= 2e-4 + 1e-12, lrs   # not the generic 1e-4, not above 2e-4
assert lrs[0] < max(lrs), lrs                  # warm-up: the first step is below the peak
assert any("rtd_loss_replaced" in l for l in logs), logs[0]
ev = [l for l in logs if "eval_rtd_loss_original" in l]
assert ev and "eval_replaced_fraction" in ev[-1], logs[-1]
PY

# ---- errors: exit status 2 and a message saying what is wrong ------------------------------------
expect_error() {  # expect_error PATTERN ARGS...
  local pat=$1; shift
  "$bin" "$@" > "$tmp/e.out" 2> "$tmp/e.err"
  local rc=$?
  [[ $rc == 2 ]] || fail "'$*' exited $rc, expected 2"
  grep -qi -- "$pat" "$tmp/e.err" || fail "'$*' error lacks '$pat': $(cat "$tmp/e.err")"
}
expect_error "missing.tsv" finetune --model "$fx/pipelines/bert_cls" --train "$tmp/missing.tsv" -o "$tmp/x1"
expect_error "checkpoint" "${ft[@]}" -o "$tmp/empty" --max-steps 2 --resume
expect_error "checkpoint" "${ft[@]}" -o "$tmp/res" --max-steps 2
expect_error "model\|config" pretrain --train "$fx/pretrain/corpus.txt" -o "$tmp/x2"
expect_error "electra" pretrain --config "$fx/pipelines/bert_nsp/config.json" --recipe electra \
  --tokenizer "$fx/pipelines/bert_nsp" --train "$fx/pretrain/corpus.txt" -o "$tmp/x3"
printf 'label\tsentence\n' > "$tmp/empty.tsv"
expect_error "empty\|no \|row" finetune --model "$fx/pipelines/bert_cls" --train "$tmp/empty.tsv" -o "$tmp/x4"
echo "train cli: all checks passed"
