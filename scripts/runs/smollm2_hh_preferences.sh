#!/usr/bin/env bash
# Issue 15's preference runs on Anthropic HH-RLHF (harmless-base test split, ../shared/data/hh-rlhf):
#   1. a reward model: SmolLM2-135M-Instruct with a one-output score head (finetune --task reward),
#      held-out pairwise accuracy before (the new head) and after;
#   2. DPO of SmolLM2-135M-Instruct with LoRA (finetune --task dpo --use-peft), held-out reward
#      margin / accuracy.
# The first 10 % of the pairs (seeded) are held out; both train on a capped number of pairs to fit
# a CPU budget. Results and commands: docs/TRAINING.md.
#   bash scripts/runs/smollm2_hh_preferences.sh [OUT_DIR]   (default runs/smollm2_hh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LMF=${LMFORGE:-$ROOT/build/lmforge}
GZ=${HH:-$ROOT/../shared/data/hh-rlhf/harmless-base-test.jsonl.gz}
GGUF=${GGUF:-$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=${1:-runs/smollm2_hh}
RM_PAIRS=${RM_PAIRS:-400}
DPO_PAIRS=${DPO_PAIRS:-200}
EVAL_PAIRS=${EVAL_PAIRS:-120}
export LMFORGE_NUM_THREADS=${LMFORGE_NUM_THREADS:-2}
mkdir -p "$OUT"
BASE="$OUT/base"
[ -f "$BASE/model.safetensors" ] || "$LMF" convert "$GGUF" -o "$BASE"
[ -f "$OUT/hh.jsonl" ] || gunzip -c "$GZ" > "$OUT/hh.jsonl"
COMMON=(--model "$BASE" --train "$OUT/hh.jsonl" --eval-split 0.1 --max-length 512 --seed 42
        --max-eval-examples "$EVAL_PAIRS")

# 1. reward model: the new head's held-out accuracy (one step at lr 1e-12), then one epoch
if [ "${SKIP_RM:-0}" != 1 ]; then
"$LMF" finetune --task reward "${COMMON[@]}" --batch-size 8 --eval-batch-size 8 \
  --max-train-examples 8 --max-steps 1 --lr 1e-12 \
  --save-steps 0 -o "$OUT/rm_start" --json | tail -1 > "$OUT/rm_start.json"
"$LMF" finetune --task reward "${COMMON[@]}" --batch-size 8 --eval-batch-size 8 \
  --max-train-examples "$RM_PAIRS" --epochs 1 \
  --lr 1e-5 --warmup-ratio 0.1 --logging-steps 5 --eval-steps 25 --save-steps 0 \
  -o "$OUT/rm" | tee "$OUT/rm.log"
fi

# 2. DPO with LoRA (the reference is the starting model). Batches of 2 pairs x 4 accumulated:
#    [4 rows, 512, 49,152] f32 logits are 400 MB a copy (8 pairs per batch ran out of 24 GB).
"$LMF" finetune --task dpo "${COMMON[@]}" --batch-size 2 --grad-accum 4 --eval-batch-size 2 \
  --max-train-examples "$DPO_PAIRS" --epochs 1 \
  --beta 0.1 --use-peft --lora-r 16 --lora-alpha 32 --lora-target q_proj,k_proj,v_proj,o_proj \
  --lr 5e-5 --logging-steps 2 --eval-steps 10 --save-steps 0 -o "$OUT/dpo" | tee "$OUT/dpo.log"
