#!/usr/bin/env python3
"""Splits the shared SST-2 rows (../shared/data/sst2/train.tsv, `label<TAB>sentence`) into a
seeded 95 % / 5 % split for the ELECTRA study (docs/TRAINING.md, issue 18) and writes the text
of each part in lmforge's pretraining format (one sentence per line, a blank line between
documents; every row is its own document, so packed blocks separate rows with [SEP] as RoBERTa's
FULL-SENTENCES does across documents):

  OUT/train.tsv  OUT/heldout.tsv   label<TAB>sentence (fine-tuning and its held-out accuracy)
  OUT/train.txt  OUT/heldout.txt   the sentences only (pretraining and its held-out metrics)

The held-out rows are never seen by pretraining or fine-tuning. SST-2's train rows are phrases of
the treebank's sentences, so a held-out row can still share words and sub-phrases with train rows.

Usage: python3 scripts/data/prepare_sst2_electra.py [SRC.tsv] [OUT_DIR]  (seed 42)
"""
import os
import random
import sys


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/sst2/train.tsv"
    out = sys.argv[2] if len(sys.argv) > 2 else "data/sst2_electra"
    with open(src, encoding="utf-8") as f:
        header, *rows = [line.rstrip("\n") for line in f]
    rows = [r for r in rows if r.strip() and "\t" in r]
    rng = random.Random(42)
    order = list(range(len(rows)))
    rng.shuffle(order)
    n_held = len(rows) // 20
    held = set(order[:n_held])
    os.makedirs(out, exist_ok=True)
    parts = {"train": [r for i, r in enumerate(rows) if i not in held],
             "heldout": [r for i, r in enumerate(rows) if i in held]}
    for name, part in parts.items():
        with open(os.path.join(out, name + ".tsv"), "w", encoding="utf-8") as f:
            f.write(header + "\n")
            for r in part:
                f.write(r + "\n")
        with open(os.path.join(out, name + ".txt"), "w", encoding="utf-8") as f:
            f.write("\n\n".join(r.split("\t", 1)[1].strip() for r in part) + "\n")
        print(f"{name}: {len(part)} rows -> {out}/{name}.tsv, .txt")


if __name__ == "__main__":
    main()
