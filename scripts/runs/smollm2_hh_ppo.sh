#!/usr/bin/env bash
# Issue 15's PPO run (RLHF) on Anthropic HH-RLHF prompts (../shared/data/hh-rlhf, harmless-base):
# SmolLM2-135M-Instruct is the policy (and the frozen reference), the reward model is the one
# scripts/runs/smollm2_hh_preferences.sh trained (runs/smollm2_hh/rm), and the value model starts
# from it (TRL's examples do the same). Each update samples responses to 8 prompts, 4 PPO epochs on
# them. The first 10 % of the prompts (seeded) are held out: their mean reward and KL are measured
# with a fixed sampling seed every EVAL_STEPS updates. Results and commands: docs/TRAINING.md.
#   bash scripts/runs/smollm2_hh_ppo.sh [HH_DIR]   (default runs/smollm2_hh; writes HH_DIR/ppo)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LMF=${LMFORGE:-$ROOT/build/lmforge}
HH=${1:-runs/smollm2_hh}
PROMPTS=${PROMPTS:-384}
EVAL_PROMPTS=${EVAL_PROMPTS:-32}
EVAL_STEPS=${EVAL_STEPS:-12}
export LMFORGE_NUM_THREADS=${LMFORGE_NUM_THREADS:-2}
[ -f "$HH/base/model.safetensors" ] && [ -f "$HH/rm/model.safetensors" ] || {
  echo "run scripts/runs/smollm2_hh_preferences.sh first (it makes $HH/base and $HH/rm)" >&2
  exit 1
}
COMMON=(finetune --task ppo --model "$HH/base" --reward-model "$HH/rm" --train "$HH/hh.jsonl"
  --eval-split 0.1 --max-train-examples "$PROMPTS" --max-eval-examples "$EVAL_PROMPTS"
  --max-prompt-length 128 --response-length 32 --stop-token eos --temperature 0.7
  --batch-size 8 --eval-batch-size 16 --num-ppo-epochs 4 --num-mini-batches 1 --kl-coef 0.05
  --seed 42)
# The starting policy's held-out score: one update at lr 1e-12, then the same evaluation (same
# prompts, same sampling seeds) as the run's.
[ -f "$HH/ppo_start.json" ] || "$LMF" "${COMMON[@]}" --lr 1e-12 --max-steps 1 --save-steps 0 \
  -o "$HH/ppo_start" --json | tail -1 > "$HH/ppo_start.json"
[ "${START_ONLY:-0}" = 1 ] && exit 0
"$LMF" "${COMMON[@]}" --lr ${LR:-1e-5} --epochs 1 --eval-steps "$EVAL_STEPS" --save-steps 12 \
  -o "$HH/ppo" ${RESUME:+--resume} | tee "$HH/ppo.log"
