#!/usr/bin/env bash
# Issue 11's real run: a Transformer (MarianMTModel shape, docs/examples/marian_multi30k_config.json)
# trained from scratch on Multi30k en->fr with a SentencePiece vocabulary trained on the same data,
# then greedy and beam BLEU on test_2016_flickr. Results and commands: docs/TRAINING.md.
#   bash scripts/runs/multi30k_en_fr.sh [OUT_DIR]   (default runs/multi30k_en_fr)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LMF=${LMFORGE:-$ROOT/build/lmforge}
DATA=${MULTI30K:-$ROOT/../shared/data/multi30k}
OUT=${1:-runs/multi30k_en_fr}
EPOCHS=${EPOCHS:-20}
export LMFORGE_NUM_THREADS=${LMFORGE_NUM_THREADS:-2}
mkdir -p "$OUT"

# 1. one SentencePiece model of 8,000 pieces over English and French together (joint vocabulary:
#    source.spm and target.spm are trained on the same text, so vocab.json has 8,000 entries)
if [ ! -f "$OUT/tok/vocab.json" ]; then
  "$LMF" tokenizer train --marian --vocab-size 8000 "$DATA/train.en" "$DATA/train.fr" \
    --target-files "$DATA/train.en" "$DATA/train.fr" --source-lang en --target-lang fr \
    -o "$OUT/tok" --num-threads 2
fi

# 2. the model config: the example config with the vocabulary's size and special ids
python3 - "$ROOT/docs/examples/marian_multi30k_config.json" "$OUT/tok" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
vocab = json.load(open(sys.argv[2] + "/vocab.json"))
pad, eos = vocab["<pad>"], vocab["</s>"]
cfg.update(vocab_size=len(vocab), decoder_vocab_size=len(vocab), pad_token_id=pad,
           decoder_start_token_id=pad, eos_token_id=eos, forced_eos_token_id=eos)
json.dump(cfg, open(sys.argv[2] + "/config.json", "w"), indent=2)
PY

# 3. training (resumable: rerun the script after an interruption)
RESUME=""
ls "$OUT/model"/checkpoint-* >/dev/null 2>&1 && RESUME="--resume"
"$LMF" finetune --task translation --config "$OUT/tok/config.json" --tokenizer "$OUT/tok" \
  --train "$DATA/train.en,$DATA/train.fr" --eval "$DATA/val.en,$DATA/val.fr" \
  --source-lang en --target-lang fr \
  --epochs "$EPOCHS" --batch-size 64 --group-by-length --lr 1e-3 --warmup-steps 1000 \
  --scheduler linear --weight-decay 0.01 --label-smoothing 0.1 --freeze-pad-embedding --seed 42 \
  --logging-steps 50 --eval-steps 1000 --save-steps 1000 --save-total-limit 2 \
  -o "$OUT/model" --json $RESUME | tee "$OUT/train_result.json"

# 4. BLEU on test_2016_flickr, greedy and beam 5
for beams in 1 5; do
  "$LMF" evaluate --model "$OUT/model" --task translation \
    --data "$DATA/test_2016_flickr.en,$DATA/test_2016_flickr.fr" --num-beams $beams --json --translations-out "$OUT/test_beam$beams.fr" \
    | tee "$OUT/test_bleu_beam$beams.json"
done
