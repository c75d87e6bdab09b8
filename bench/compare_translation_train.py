#!/usr/bin/env python3
"""Side-by-side translation training throughput (issue 11): `lmforge finetune --task translation`
against the same loop in PyTorch + transformers, on the same Marian folder (its weights and
config), the same Multi30k en->fr pairs, batch size and thread count.

Both sides: the first --examples pairs of Multi30k train.en/train.fr, tokenized by the folder's
Marian tokenizer (source and target ending with </s>, at most 128 tokens), random batches of
--batch pairs padded to their longest member. By default --examples = --batch: every step then
trains on the same pairs (in another order), so both sides do exactly the same work per step; a
larger --examples gives varied batches (each side draws its own, so per-step rates vary more) (labels padded with -100, decoder inputs =
shift_tokens_right(labels)), dropout on, the model's cross entropy, AdamW (lr 5e-5, no weight
decay, as HF Trainer's defaults), linear schedule, gradient clipping 1.0, --steps optimizer steps.
tokens = source + target tokens of a batch without padding (what lmforge's trainer counts).
Reported per side and round:
  overall  all tokens / wall time of all steps (lmforge: train_runtime of `finetune --json`,
           checkpoint saving off; PyTorch: from the first step's start to the last step's end)
  steady   median per-step tokens/s after --warmup steps (lmforge: metrics.jsonl with
           --logging-steps 1; PyTorch: the same per step)
Each round starts fresh processes (lmforge, then PyTorch, alternating); medians over rounds.

Usage: python3 bench/compare_translation_train.py [--model DIR] [--rounds 3] [--steps 20]
         [--warmup 3] [--batch 32] [--examples N] [--threads 2] [--json-out FILE]
Without --model, the development folder of bench/compare_translation.py
(build/bench_translation/dev) is made and used.
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_translation as ct  # noqa: E402


def run_lmforge(a, model, out_dir):
    d = ct.data_dir()
    env = dict(os.environ, LMFORGE_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [ct.LMFORGE, "finetune", "--task", "translation", "--model", model, "--train",
           os.path.join(d, "train.en") + "," + os.path.join(d, "train.fr"),
           "--max-train-examples", str(a.examples), "--max-steps", str(a.steps), "--batch-size",
           str(a.batch), "--logging-steps", "1", "--save-steps", "0", "--max-source-length", "128",
           "--max-target-length", "128", "-o", out_dir, "--json", "--no-progress"]
    r = json.loads(ct.sh(cmd, env=env).stdout.strip().splitlines()[-1])
    steps = [json.loads(l) for l in open(os.path.join(out_dir, "metrics.jsonl"))]
    per_step = [m["tokens_per_second"] for m in steps if "loss" in m and "tokens_per_second" in m]
    return {"overall": r["train_tokens_per_second"], "steady": statistics.median(
        per_step[a.warmup:]), "loss": r["train_loss"], "steps": r["global_step"]}


def run_torch(a):
    import torch
    from transformers import MarianMTModel, MarianTokenizer
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    d = ct.data_dir()
    tok = MarianTokenizer.from_pretrained(a.model)
    src = [l.rstrip("\n") for l in open(os.path.join(d, "train.en"))][:a.examples]
    tgt = [l.rstrip("\n") for l in open(os.path.join(d, "train.fr"))][:a.examples]
    feats = [(tok(s, truncation=True, max_length=128)["input_ids"],
              tok(text_target=t, truncation=True, max_length=128)["input_ids"])
             for s, t in zip(src, tgt) if s.strip() and t.strip()]
    model = MarianMTModel.from_pretrained(a.model, dtype=torch.float32).train()
    pad = model.config.pad_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / a.steps))
    rng = random.Random(42)
    order = list(range(len(feats)))
    rng.shuffle(order)
    per_step, total_tokens, losses = [], 0, []
    t_start = time.perf_counter()
    for step in range(a.steps):
        t = time.perf_counter()
        idx = [order[(step * a.batch + i) % len(order)] for i in range(a.batch)]
        batch = [feats[i] for i in idx]
        s_len = max(len(f[0]) for f in batch)
        t_len = max(len(f[1]) for f in batch)
        ids = torch.tensor([f[0] + [pad] * (s_len - len(f[0])) for f in batch])
        mask = torch.tensor([[1] * len(f[0]) + [0] * (s_len - len(f[0])) for f in batch])
        labels = torch.tensor([f[1] + [-100] * (t_len - len(f[1])) for f in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        n = sum(len(f[0]) + len(f[1]) for f in batch)
        total_tokens += n
        per_step.append(n / (time.perf_counter() - t))
    wall = time.perf_counter() - t_start
    return {"overall": total_tokens / wall, "steady": statistics.median(per_step[a.warmup:]),
            "loss": sum(losses) / len(losses), "steps": a.steps}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="Marian folder (default: the development folder)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of 'steady'")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--examples", type=int, default=0,
                    help="training pairs (0: --batch, the same pairs every step)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json-out")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_torch(a)))
        return
    assert a.steps > a.warmup >= 0
    a.examples = a.examples or a.batch
    os.makedirs(ct.WORK, exist_ok=True)
    model = os.path.abspath(a.model) if a.model else ct.make_dev_model()
    a.model = model
    load = os.getloadavg()
    runs = {"lmforge": [], "torch": []}
    with tempfile.TemporaryDirectory(dir=ct.WORK) as tmp:
        for r in range(a.rounds):
            runs["lmforge"].append(run_lmforge(a, model, os.path.join(tmp, "out")))
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "torch", "--model", model,
                   "--steps", str(a.steps), "--warmup", str(a.warmup), "--batch", str(a.batch),
                   "--examples", str(a.examples), "--threads", str(a.threads)]
            env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), HF_HUB_OFFLINE="1")
            runs["torch"].append(json.loads(ct.sh(cmd, env=env).stdout.strip().splitlines()[-1]))
            for e in runs:
                m = runs[e][-1]
                print(f"round {r + 1} {e:8s} overall {m['overall']:8.1f} tok/s, steady "
                      f"{m['steady']:8.1f} tok/s, mean loss {m['loss']:.4f}", file=sys.stderr)
    load_end = os.getloadavg()
    res = {e: {k: statistics.median(m[k] for m in runs[e]) for k in ("overall", "steady")}
           for e in runs}
    for k in ("overall", "steady"):
        res[f"lmforge_over_torch_{k}"] = res["lmforge"][k] / res["torch"][k]
    summary = {"model": model, "threads": a.threads, "batch": a.batch, "steps": a.steps,
               "warmup": a.warmup, "rounds": a.rounds, "load_average_start": load[0],
               "load_average_end": load_end[0], "results": res, "per_round": runs}
    print(f"\nMarian training, batch {a.batch}, {a.steps} steps, {a.threads} threads, medians of "
          f"{a.rounds} rounds, load average {load[0]:.1f} -> {load_end[0]:.1f}")
    print(f"{'engine':10s} {'overall tok/s':>14s} {'steady tok/s':>13s}")
    for e in ("lmforge", "torch"):
        print(f"{e:10s} {res[e]['overall']:14.1f} {res[e]['steady']:13.1f}")
    print(f"lmforge / PyTorch: overall {res['lmforge_over_torch_overall']:.2f}x, steady "
          f"{res['lmforge_over_torch_steady']:.2f}x")
    if a.json_out:
        json.dump(summary, open(a.json_out, "w"), indent=2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
