#!/usr/bin/env python3
"""Prints the markdown tables of docs/TRAINING.md from runs/<name>/metrics.jsonl (written by
scripts/runs/issue5_runs.sh): per evaluation the step, the mean training loss of the last logging
window and every eval_* metric, then the run's throughput.

Usage: python3 scripts/runs/summarize_runs.py [runs] [sst2 mlm bert electra electra_long]
"""
import json
import os
import sys


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "runs"
    names = sys.argv[2:] or ["sst2", "mlm", "bert", "electra"]
    for name in names:
        path = os.path.join(root, name, "metrics.jsonl")
        if not os.path.exists(path):
            continue
        logs = [json.loads(l) for l in open(path) if l.strip()]
        train = [l for l in logs if "loss" in l and "learning_rate" in l]
        evals = [l for l in logs if any(k.startswith("eval_") for k in l)]
        final = [l for l in logs if "train_runtime" in l]
        keys = sorted({k for e in evals for k in e if k.startswith("eval_")})
        extra = sorted({k for t in train for k in t if k.endswith("_loss") and k != "loss"})
        print(f"### {name}\n")
        first = train[0] if train else {}
        print(f"training loss: {first.get('loss', float('nan')):.4f} (step {first.get('step')}) -> "
              f"{train[-1]['loss']:.4f} (step {train[-1]['step']})" if train else "no training logs")
        for k in extra:
            print(f"; {k} {first[k]:.4f} -> {train[-1][k]:.4f}", end="")
        print("\n")
        print("| step | " + " | ".join(keys) + " |")
        print("|---" * (len(keys) + 1) + "|")
        for e in evals:
            print(f"| {e['step']} | " + " | ".join(f"{e.get(k, float('nan')):.4f}" for k in keys) + " |")
        if final:
            f = final[-1]
            print(f"\n{f['train_steps']:.0f} steps in {f['train_runtime']:.0f} s: "
                  f"{f['train_samples_per_second']:.1f} samples/s, "
                  f"{f['train_tokens_per_second']:.0f} tokens/s\n")


if __name__ == "__main__":
    main()
