#!/usr/bin/env python3
"""Goldens for `lmforge inspect` on encoder-decoder folders (tasks::inspect_model): what
transformers says of the tiny Marian fixture tests/fixtures/seq2seq_generate/translate: its class,
model_type, parameter count (m.parameters(): each tied tensor once) without the sinusoidal
position tables (transformers 5 lists them as parameters, though they are computed from the shape
and neither saved nor trained; lmforge computes them and does not count them), the tokenizer's size (len(MarianTokenizer)) and the tied keys.

Writes tests/fixtures/translation_eval/inspect.json.
Regenerate with:  nice -n 19 python3 scripts/reference/gen_inspect_seq2seq_goldens.py
(from the repository root; torch, transformers 5.25; no network; deterministic).
"""
import json
import os

from transformers import MarianMTModel, MarianTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "tests", "fixtures", "seq2seq_generate", "translate")
OUT = os.path.join(ROOT, "tests", "fixtures", "translation_eval", "inspect.json")


def main():
    m = MarianMTModel.from_pretrained(MODEL)
    tok = MarianTokenizer.from_pretrained(MODEL)
    golden = {"fixture": "seq2seq_generate/translate",
              "architecture": type(m).__name__,
              "model_type": m.config.model_type,
              "parameters_without_positions": sum(
                  p.numel() for n, p in m.named_parameters() if "embed_positions" not in n),
              "tokenizer_size": len(tok),
              "d_model": m.config.d_model,
              "encoder_layers": m.config.encoder_layers,
              "decoder_layers": m.config.decoder_layers}
    json.dump(golden, open(OUT, "w"), indent=1)
    print(json.dumps(golden))


if __name__ == "__main__":
    main()
