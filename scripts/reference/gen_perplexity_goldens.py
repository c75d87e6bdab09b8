#!/usr/bin/env python3
"""Perplexity goldens: transformers' perplexity guide (sliding window, nll_sum += loss *
(valid targets - batch), ppl = exp(nll_sum / n_tokens)) on the tiny decoder fixtures.

Regenerate (needs torch + transformers; deterministic):
    python3 scripts/reference/gen_perplexity_goldens.py
Writes tests/fixtures/perplexity/{text.txt, goldens.json}; tests/cli/test_generate_cli.sh
compares `lmforge perplexity --json` with it (relative 1e-4).
"""
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "perplexity"
TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom,\n"
        "it was the age of foolishness, it was the epoch of belief, it was the epoch of\n"
        "incredulity, it was the season of Light, it was the season of Darkness, it was the\n"
        "spring of hope, it was the winter of despair.\n")


def guide(model, ids, max_length, stride):
    seq_len = ids.size(1)
    nll_sum, n_tokens, prev_end = 0.0, 0, 0
    for begin in range(0, seq_len, stride):
        end = min(begin + max_length, seq_len)
        trg_len = end - prev_end
        input_ids = ids[:, begin:end]
        target = input_ids.clone()
        target[:, :-trg_len] = -100
        with torch.no_grad():
            loss = model(input_ids, labels=target).loss
        valid = (target != -100).sum().item()
        num_loss_tokens = valid - target.size(0)
        nll_sum += loss.item() * num_loss_tokens
        n_tokens += num_loss_tokens
        prev_end = end
        if end == seq_len:
            break
    nll = nll_sum / n_tokens
    return {"nll": nll, "perplexity": float(torch.exp(torch.tensor(nll))), "tokens": n_tokens}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "text.txt").write_text(TEXT)
    text = TEXT.rstrip("\n")  # lmforge perplexity joins the file's lines with "\n"
    goldens = []
    for name, max_length, stride in (("llama", 0, 0), ("llama", 32, 16), ("gpt2", 0, 0),
                                     ("gpt2", 24, 8), ("mistral", 48, 20)):
        d = ROOT / "tests" / "fixtures" / "decoder" / name
        tok = AutoTokenizer.from_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        ids = tok(text, return_tensors="pt").input_ids
        ctx = model.config.max_position_embeddings
        ml = max_length or ctx
        r = guide(model, ids, ml, stride or ml)
        r.update({"model": name, "max_length": max_length, "stride": stride,
                  "text_tokens": ids.size(1)})
        goldens.append(r)
        print(r)
    (OUT / "goldens.json").write_text(json.dumps(goldens, indent=1) + "\n")


if __name__ == "__main__":
    main()
