#!/usr/bin/env bash
# Issue 18's ELECTRA study (docs/TRAINING.md "ELECTRA that learns"): pretraining on the text of
# the shared SST-2 rows, the PyTorch reference of the same recipe side by side, and fine-tuning
# the discriminator on SST-2 against the same model from scratch.
#
# Usage: bash scripts/runs/electra_sst2.sh [STAGE...]   (default: every stage, in this order)
#   prepare    seeded 95/5 split of ../shared/data/sst2/train.tsv -> data/sst2_electra/
#   pretrain   lmforge pretrain --recipe electra (its defaults) -> runs/electra_sst2
#   reference  the same recipe in PyTorch + transformers for REF_STEPS steps
#              (scripts/reference/electra_pretrain_ref.py) -> runs/electra_sst2_ref.jsonl, and
#              lmforge for the same steps -> runs/electra_sst2_short
#   baseline   the old recipe (lr 5e-4, BERT's 80/10/10 masking, temperature 1) side by side,
#              REF_STEPS steps -> runs/electra_sst2_old, runs/electra_sst2_old_ref.jsonl
#   finetune   SST-2 classification from the discriminator -> runs/electra_sst2_cls
#   scratch    the same fine-tuning from a random initialisation -> runs/electra_scratch_cls
#   plot       docs/training/electra_*.svg from the logs
# Environment: LMF (default ./build/lmforge), STEPS (pretraining steps, default 4500),
# REF_STEPS (side-by-side steps, default 400), THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
LMF=${LMF:-./build/lmforge}
STEPS=${STEPS:-4500}
REF_STEPS=${REF_STEPS:-400}
THREADS=${THREADS:-$(nproc)}
TOK=./models/all-MiniLM-L6-v2
CFG=scripts/runs/electra_small_config.json
DATA=data/sst2_electra
export LMFORGE_NUM_THREADS=$THREADS
mkdir -p runs

pretrain() {  # NAME STEPS EVAL_STEPS [extra flags]
  local name=$1 steps=$2 every=$3
  shift 3
  rm -rf "runs/$name"
  "$LMF" pretrain --config $CFG --tokenizer $TOK --recipe electra --train $DATA/train.txt \
    --eval $DATA/heldout.txt --max-seq-length 128 --batch-size 16 --warmup-ratio 0.1 \
    --weight-decay 0.01 --max-steps "$steps" --logging-steps 25 --eval-steps "$every" \
    --save-steps 100000 --seed 42 -o "runs/$name" --json --no-progress "$@" > "runs/$name.json"
  tail -c 600 "runs/$name.json"; echo
}

reference() {  # OUT STEPS [extra flags]
  local out=$1 steps=$2
  shift 2
  python3 scripts/reference/electra_pretrain_ref.py --config $CFG --tokenizer $TOK \
    --train $DATA/train.txt --eval $DATA/heldout.txt --max-seq-length 128 --batch-size 16 \
    --warmup-ratio 0.1 --weight-decay 0.01 --max-steps "$steps" --logging-steps 25 \
    --eval-steps 100 --seed 42 --threads "$THREADS" --out "$out" "$@" | tail -n 1
}

finetune() {  # FROM OUT
  rm -rf "$2"
  "$LMF" finetune --model "$1" --task classification --train $DATA/train.tsv \
    --eval $DATA/heldout.tsv --epochs 1 --batch-size 32 --lr 1e-4 --warmup-ratio 0.1 \
    --weight-decay 0.01 --max-length 66 --group-by-length --logging-steps 50 --eval-steps 500 \
    --save-steps 100000 --seed 42 -o "$2" --json --no-progress > "$2.json"
  tail -c 400 "$2.json"; echo
}

[[ $# -gt 0 ]] || set -- prepare pretrain reference baseline finetune scratch plot
for stage in "$@"; do
  case $stage in
  prepare) python3 scripts/data/prepare_sst2_electra.py ../shared/data/sst2/train.tsv $DATA ;;
  pretrain) pretrain electra_sst2 "$STEPS" 250 ;;
  reference)
    pretrain electra_sst2_short "$REF_STEPS" 100
    reference runs/electra_sst2_ref.jsonl "$REF_STEPS" --lr 2e-4 --mask-replace-prob 0.85 \
      --random-replace-prob 0 --generator-temperature 2 ;;
  baseline)
    pretrain electra_sst2_old "$REF_STEPS" 100 --lr 5e-4 --mask-replace-prob 0.8 \
      --random-replace-prob 0.1 --generator-temperature 1
    reference runs/electra_sst2_old_ref.jsonl "$REF_STEPS" --lr 5e-4 --mask-replace-prob 0.8 \
      --random-replace-prob 0.1 ;;
  finetune) finetune runs/electra_sst2 runs/electra_sst2_cls ;;
  scratch)
    python3 scripts/runs/electra_init.py $CFG $TOK runs/electra_scratch_init
    finetune runs/electra_scratch_init runs/electra_scratch_cls ;;
  plot)
    mkdir -p docs/training
    if [[ -f runs/electra_sst2_ref.jsonl ]]; then
      python3 scripts/runs/plot_side_by_side.py docs/training/electra_side_by_side.svg \
        "lmforge=runs/electra_sst2_short/metrics.jsonl" "PyTorch=runs/electra_sst2_ref.jsonl" \
        --title "ELECTRA recipe, lmforge vs PyTorch + transformers, same data and schedule"
    fi
    if [[ -f runs/electra_sst2_old_ref.jsonl ]]; then
      python3 scripts/runs/plot_side_by_side.py docs/training/electra_old_side_by_side.svg \
        "lmforge=runs/electra_sst2_old/metrics.jsonl" "PyTorch=runs/electra_sst2_old_ref.jsonl" \
        --title "Old recipe (lr 5e-4, 80/10/10 masking), lmforge vs PyTorch + transformers"
    fi
    python3 scripts/runs/plot_side_by_side.py docs/training/electra_sst2.svg \
      "lmforge pretrain --recipe electra=runs/electra_sst2/metrics.jsonl" \
      --title "ELECTRA on SST-2 text: $STEPS steps" ;;
  *) echo "unknown stage '$stage' (prepare pretrain reference baseline finetune scratch plot)" >&2
     exit 2 ;;
  esac
done
