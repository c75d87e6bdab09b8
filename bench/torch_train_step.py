#!/usr/bin/env python3
"""PyTorch + transformers side of bench_train_step: one training step (forward, backward, AdamW)
of a BERT-base-shaped BertForTokenClassification. Prints one JSON line with the step times.

Usage: python3 bench/torch_train_step.py --threads 2 --batch 8 --seq 128 --runs 5 [--layers 12]
"""
import argparse
import json
import time

import torch
from transformers import BertConfig, BertForTokenClassification


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--labels", type=int, default=9)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=768, num_hidden_layers=a.layers, num_attention_heads=12,
                     intermediate_size=3072, num_labels=a.labels, attn_implementation="sdpa")
    model = BertForTokenClassification(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq))
    labels = torch.randint(0, a.labels, (a.batch, a.seq))
    mask = torch.ones_like(ids)

    def step():
        t = time.perf_counter()
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t, out.loss.item()

    step()  # warm-up
    times = []
    loss = None
    for _ in range(a.runs):
        dt, loss = step()
        times.append(dt)
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": a.threads,
                      "times_s": times, "loss": loss,
                      "params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
