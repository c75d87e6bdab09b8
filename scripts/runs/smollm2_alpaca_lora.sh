#!/usr/bin/env bash
# Issue 15's SFT run: SmolLM2-135M-Instruct (the HF folder `lmforge convert` makes from the GGUF
# file, f32) fine-tuned with LoRA on the Alpaca records of ../shared/data/alpaca, its ChatML
# template, loss on the answers only; 5 % of the records held out (seeded). Then the held-out loss
# of the base model (a step at lr 1e-12: the same evaluation code) and answers before / after.
# Results and commands: docs/TRAINING.md ("SmolLM2 SFT with LoRA on Alpaca").
#   bash scripts/runs/smollm2_alpaca_lora.sh [OUT_DIR]   (default runs/smollm2_alpaca_lora)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LMF=${LMFORGE:-$ROOT/build/lmforge}
DATA=${ALPACA:-$ROOT/../shared/data/alpaca/alpaca_4500.json}
GGUF=${GGUF:-$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=${1:-runs/smollm2_alpaca_lora}
STEPS=${STEPS:-150}
export LMFORGE_NUM_THREADS=${LMFORGE_NUM_THREADS:-2}
mkdir -p "$OUT"
BASE="$OUT/base"
[ -f "$BASE/model.safetensors" ] || "$LMF" convert "$GGUF" -o "$BASE"

COMMON=(finetune --task sft --model "$BASE" --train "$DATA" --eval-split 0.05 --max-length 512
        --use-peft --lora-r 16 --lora-alpha 32 --lora-dropout 0.05
        --lora-target q_proj,k_proj,v_proj,o_proj --batch-size 8 --eval-batch-size 16 --seed 42)
# the base model's held-out loss: one step at a negligible learning rate
"$LMF" "${COMMON[@]}" --max-steps 1 --lr 1e-12 --save-steps 0 -o "$OUT/at_start" --json \
  | tail -1 > "$OUT/at_start.json"

RESUME=""
ls "$OUT/lora"/checkpoint-* >/dev/null 2>&1 && RESUME="--resume"
"$LMF" "${COMMON[@]}" --max-steps "$STEPS" --lr 2e-4 --warmup-ratio 0.03 --logging-steps 5 \
  --eval-steps 50 --save-steps 50 -o "$OUT/lora" $RESUME | tee "$OUT/train.log"

# answers before / after (greedy) to held-out-style instructions
for q in "Give three tips for staying healthy." "What is the capital of France?" \
         "Rewrite the sentence in the passive voice: The cat chased the mouse."; do
  echo "### $q" >> "$OUT/answers.md"
  echo "before:" >> "$OUT/answers.md"
  "$LMF" generate --model "$BASE" --chat --no-stream --max-new-tokens 60 "$q" >> "$OUT/answers.md"
  echo "after:" >> "$OUT/answers.md"
  "$LMF" generate --model "$BASE" --lora "$OUT/lora" --chat --no-stream --max-new-tokens 60 "$q" \
    >> "$OUT/answers.md"
done
cat "$OUT/answers.md"
