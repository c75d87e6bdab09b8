#!/usr/bin/env bash
# Issue 15's first real run: a small GPT-2 trained from scratch on tinyshakespeare with a byte-level
# BPE vocabulary trained on the same text (lmforge tokenizer train), then samples from the trained
# folder. Results and commands: docs/TRAINING.md ("A small GPT from scratch on tinyshakespeare").
#   bash scripts/runs/shakespeare_gpt.sh [OUT_DIR]   (default runs/shakespeare_gpt)
# The first 5 % of the lines are held out (run_clm's --validation_split_percentage 5).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LMF=${LMFORGE:-$ROOT/build/lmforge}
TEXT=${SHAKESPEARE:-$ROOT/../shared/data/tinyshakespeare/input.txt}
OUT=${1:-runs/shakespeare_gpt}
STEPS=${STEPS:-1500}
export LMFORGE_NUM_THREADS=${LMFORGE_NUM_THREADS:-2}
mkdir -p "$OUT"

# 1. a byte-level BPE of 2,048 tokens (<|endoftext|> = 0) trained on the text
if [ ! -f "$OUT/tok/tokenizer.json" ]; then
  "$LMF" tokenizer train --type byte-bpe --vocab-size 2048 --min-frequency 2 \
    --special-tokens '<|endoftext|>' "$TEXT" -o "$OUT/tok"
fi

# 2. a GPT-2 config: 4 layers, 256 wide, 4 heads, 256 positions (3.7 M parameters)
python3 - "$OUT/tok" <<'PY'
import json, sys
tok = json.load(open(sys.argv[1] + "/tokenizer.json"))
vocab = len(tok["model"]["vocab"]) + sum(1 for t in tok["added_tokens"] if t["content"] not in tok["model"]["vocab"])
cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": vocab,
       "n_positions": 256, "n_embd": 256, "n_layer": 4, "n_head": 4, "n_inner": None,
       "activation_function": "gelu_new", "resid_pdrop": 0.1, "embd_pdrop": 0.1,
       "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
       "bos_token_id": 0, "eos_token_id": 0, "tie_word_embeddings": True}
json.dump(cfg, open(sys.argv[1] + "/config.json", "w"), indent=2)
json.dump({"model_max_length": 256, "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
           "unk_token": "<|endoftext|>", "tokenizer_class": "GPT2Tokenizer"},
          open(sys.argv[1] + "/tokenizer_config.json", "w"), indent=2)
PY

# 3. training (resumable: rerun the script after an interruption)
RESUME=""
ls "$OUT/model"/checkpoint-* >/dev/null 2>&1 && RESUME="--resume"
"$LMF" pretrain --recipe gpt --config "$OUT/tok/config.json" --tokenizer "$OUT/tok" \
  --train "$TEXT" --eval-split 0.05 --block-size 128 --batch-size 16 \
  --max-steps "$STEPS" --lr 1e-3 --scheduler cosine --warmup-steps 100 --weight-decay 0.1 \
  --logging-steps 25 --eval-steps 250 --save-steps 500 --eval-batch-size 32 --seed 42 \
  -o "$OUT/model" $RESUME | tee "$OUT/train.log"

# 4. samples from the trained folder (top-k sampling, seeded) and one greedy continuation
"$LMF" generate --model "$OUT/model" --max-new-tokens 120 --do-sample --temperature 0.8 \
  --top-k 40 --seed 1 --no-stream "ROMEO:" "First Citizen:" | tee "$OUT/samples.txt"
"$LMF" generate --model "$OUT/model" --max-new-tokens 60 --no-stream "KING HENRY:" \
  | tee -a "$OUT/samples.txt"
