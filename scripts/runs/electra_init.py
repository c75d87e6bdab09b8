#!/usr/bin/env python3
"""Writes a randomly initialised ElectraForPreTraining folder (transformers' initialisation,
torch seed 42) with a tokenizer's files: the "same-size model from scratch" that
docs/TRAINING.md's ELECTRA study fine-tunes on SST-2 beside the pretrained discriminator.

Usage: python3 scripts/runs/electra_init.py CONFIG.json TOKENIZER_DIR OUT_DIR
"""
import json
import os
import shutil
import sys

import torch
from transformers import ElectraConfig, ElectraForPreTraining


def main():
    config, tok_dir, out = sys.argv[1:4]
    cfg = json.load(open(config))
    torch.manual_seed(42)
    model = ElectraForPreTraining(ElectraConfig(**{k: v for k, v in cfg.items()
                                                   if k != "architectures"}))
    model.save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if os.path.exists(os.path.join(tok_dir, f)):
            shutil.copy(os.path.join(tok_dir, f), out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
