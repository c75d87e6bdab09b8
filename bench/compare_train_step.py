#!/usr/bin/env python3
"""Side-by-side training-step benchmark: lmforge (bench_train_step, a subprocess) and PyTorch +
transformers (in this process), alternating rounds, same threads, same BERT-base-shaped
BertForTokenClassification (batch 8 x seq 128 by default). Prints a table with medians.

Usage: LMFORGE_NUM_THREADS=2 python3 bench/compare_train_step.py [--rounds 3] [--steps 3]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import time

import torch
from transformers import BertConfig, BertForTokenClassification


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bench/bench_train_step")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("LMFORGE_NUM_THREADS", os.cpu_count())))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = BertConfig(num_hidden_layers=a.layers, num_labels=9, attn_implementation="sdpa")
    model = BertForTokenClassification(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq))
    labels = torch.randint(0, 9, (a.batch, a.seq))
    mask = torch.ones_like(ids)

    def torch_step():
        t = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    torch_step()
    env = dict(os.environ, LMFORGE_NUM_THREADS=str(a.threads))
    lmf_times, torch_times, rss = [], [], 0.0
    for r in range(a.rounds):
        out = subprocess.run([a.bin, "--batch", str(a.batch), "--seq", str(a.seq), "--steps",
                              str(a.steps), "--layers", str(a.layers)],
                             env=env, check=True, capture_output=True, text=True).stdout
        rec = json.loads(out.strip().splitlines()[-1])
        lmf_times += rec["times_s"]
        rss = max(rss, rec["peak_rss_mb"])
        torch_times += [torch_step() for _ in range(a.steps)]
        print(f"round {r + 1}/{a.rounds}: lmforge {statistics.median(rec['times_s']):.3f} s/step, "
              f"pytorch {statistics.median(torch_times[-a.steps:]):.3f} s/step", flush=True)
    torch_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lm, tm = statistics.median(lmf_times), statistics.median(torch_times)
    tokens = a.batch * a.seq
    print(f"\nBERT-base-shaped BertForTokenClassification, {a.layers} layers, batch {a.batch} x seq {a.seq}, "
          f"{a.threads} threads, torch {torch.__version__}")
    print(f"{'impl':<10}{'median s/step':>15}{'tokens/s':>12}{'peak RSS MB':>14}")
    print(f"{'lmforge':<10}{lm:>15.3f}{tokens / lm:>12.0f}{rss:>14.0f}")
    print(f"{'pytorch':<10}{tm:>15.3f}{tokens / tm:>12.0f}{torch_rss:>14.0f}")
    print(f"speed-up lmforge / pytorch: {tm / lm:.2f}x  (n = {len(lmf_times)} steps each)")


if __name__ == "__main__":
    main()
