#!/usr/bin/env python3
"""Side-by-side training throughput: lmforge's trainer (build/bench/bench_finetune, a subprocess)
and a PyTorch + transformers training loop (this script in worker mode, a subprocess), alternating
rounds, same model, data, batch and threads; medians of the timed optimizer steps.

Workloads
  finetune  BertForSequenceClassification.from_pretrained(--model-dir) (new 2-label classifier)
            on the first batch x (warmup + steps) SST-2 sentences, padded/truncated to --seq (real
            attention masks), lr 5e-5.
  pretrain-sparse  the pretrain batches through lmforge's PretrainObjective (`lmforge pretrain`'s
            default: MLM logits only at the masked positions; same loss and gradients) vs the
            same PyTorch loop as pretrain (HF computes logits at every position)
  pretrain  BertForPreTraining (MLM + NSP, random init) shaped as --model-dir's config (--shape
            minilm) or BERT-base (--shape base), synthetic ids: [CLS] A [SEP] B [SEP], 15 % of
            positions MLM-labelled (80/10/10), full attention, lr 1e-4. Both sides draw the same
            ids with splitmix64.
Both loops: AdamW (weight decay 0.01 except biases and LayerNorm weights, as HF Trainer), linear
schedule, clip_grad_norm 1.0, dropout on (train mode), loss read back every step. A step is timed
from the end of the previous one (batch assembly, forward, backward, clipping, optimizer,
scheduler, zero_grad); the first --warmup steps are not timed. Each round starts fresh processes,
so peak RSS (VmHWM) is per process and workload.

"% peak" = estimated training FLOP/s (6 x matmul params x tokens + 12 x B x T^2 x H x layers for
attention, MLM decoder included for pretraining) over the best f32 GEMM rate torch reaches at the
same thread count in this run (best of each round's measurement; [4096, 768] x [768, 3072] and [4096, 3072] x [3072, 768]).

Usage: python3 bench/compare_training.py [--threads 2] [--rounds 3] [--warmup 2] [--steps 3]
         [--workloads finetune,pretrain] [--shape minilm|base] [--batch 32] [--seq 128]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MASK64 = (1 << 64) - 1


class SplitMix:
    """splitmix64, the same stream as bench_finetune.cpp."""

    def __init__(self, seed):
        self.s = seed

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


def synthetic_pretraining(n, seq, vocab):
    g = SplitMix(1234)
    sep, span = seq // 2, vocab - 1000
    ids, labels, types, nsp = [], [], [], []
    for _ in range(n):
        nsp.append(g.next() % 2)
        for t in range(seq):
            label = -100
            if t == 0:
                tok = 101
            elif t == sep or t == seq - 1:
                tok = 102
            else:
                tok = 1000 + g.next() % span
                if g.next() % 100 < 15:
                    label = tok
                    r = g.next() % 10
                    if r < 8:
                        tok = 103
                    elif r == 8:
                        tok = 1000 + g.next() % span
            ids.append(tok)
            labels.append(label)
            types.append(0 if t <= sep else 1)
    return ids, [1] * (n * seq), types, labels, nsp


def sst2_rows(path, n):
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            if len(labels) == n:
                break
            label, tab, text = line.rstrip("\n").partition("\t")
            if not tab:
                continue
            texts.append(text)
            labels.append(int(label))
    if len(labels) < n:
        sys.exit(f"{path} has fewer than {n} sentences")
    return texts, labels


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def model_config(shape, model_dir):
    """(layers, hidden, intermediate, vocab): BERT-base, or the model folder's config.json."""
    if shape == "base":
        return 12, 768, 3072, 30522
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    return c["num_hidden_layers"], c["hidden_size"], c["intermediate_size"], c["vocab_size"]


def train_flops(workload, a):
    layers, h, inter, vocab = model_config(a.shape if workload.startswith("pretrain") else "minilm",
                                           a.model_dir)
    tokens = a.batch * a.seq
    per_token = layers * (4 * h * h + 2 * h * inter)
    if workload.startswith("pretrain"):  # HF computes the MLM head on every position
        per_token += h * h + vocab * h  # MLM transform + decoder on every position
    return 6 * per_token * tokens + 12 * a.batch * a.seq * a.seq * h * layers


def torch_worker(a):
    """The PyTorch + transformers side; prints one JSON line like bench_finetune."""
    import torch
    from transformers import (BertConfig, BertForPreTraining, BertForSequenceClassification,
                              get_linear_schedule_with_warmup)

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    total = a.warmup + a.steps
    n = a.batch * total
    if a.workload.startswith("pretrain"):
        if a.shape == "base":
            cfg = BertConfig(attn_implementation="sdpa")
        else:
            cfg = BertConfig.from_pretrained(a.model_dir, attn_implementation="sdpa")
        model = BertForPreTraining(cfg)
        ids, mask, types, labels, nsp = synthetic_pretraining(n, a.seq, cfg.vocab_size)
        what = f"BertForPreTraining (MLM+NSP, random init, {a.shape} shape)"
        lr = 1e-4
    else:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(a.model_dir)
        texts, labels = sst2_rows(a.data, n)
        enc = tok(texts, padding="max_length", truncation=True, max_length=a.seq)
        ids = [i for row in enc["input_ids"] for i in row]
        mask = [m for row in enc["attention_mask"] for m in row]
        types = [t for row in enc["token_type_ids"] for t in row]
        nsp = []
        model = BertForSequenceClassification.from_pretrained(a.model_dir, num_labels=2,
                                                              attn_implementation="sdpa")
        what = f"BertForSequenceClassification from {a.model_dir} on SST-2"
        lr = 5e-5
    checksum = [sum(ids), sum(mask), sum(v for v in labels if v != -100) + sum(nsp),
                sum(1 for v in labels if v != -100)]
    T = lambda v: torch.tensor(v, dtype=torch.long).view(n, -1)  # noqa: E731
    ids_t, mask_t, types_t = T(ids), T(mask), T(types)
    labels_t = T(labels) if a.workload.startswith("pretrain") else torch.tensor(labels, dtype=torch.long)
    nsp_t = torch.tensor(nsp, dtype=torch.long)
    model.train()
    no_decay = [p for name, p in model.named_parameters() if name.endswith("bias") or "LayerNorm" in name]
    decay = [p for name, p in model.named_parameters() if not (name.endswith("bias") or "LayerNorm" in name)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.999),
                            eps=1e-8)
    sched = get_linear_schedule_with_warmup(opt, 0, total)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(42))
    ends, losses = [], []
    for step in range(total):
        idx = order[step * a.batch:(step + 1) * a.batch]
        if a.workload.startswith("pretrain"):  # full attention: no mask on either side
            out = model(input_ids=ids_t[idx], token_type_ids=types_t[idx], labels=labels_t[idx],
                        next_sentence_label=nsp_t[idx])
        else:
            out = model(input_ids=ids_t[idx], attention_mask=mask_t[idx],
                        token_type_ids=types_t[idx], labels=labels_t[idx])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
        ends.append(time.perf_counter())
    times = [ends[i] - ends[i - 1] for i in range(a.warmup, total)]
    med = statistics.median(times)
    print(json.dumps({"impl": "pytorch", "workload": a.workload, "model": what,
                      "threads": torch.get_num_threads(), "batch": a.batch, "seq": a.seq,
                      "torch": torch.__version__, "attn": model.config._attn_implementation,
                      "times_s": times, "median_s": med, "samples_per_s": a.batch / med,
                      "tokens_per_s": a.batch * a.seq / med, "first_loss": losses[0],
                      "last_loss": losses[-1], "train_steps": total,
                      "params": sum(p.numel() for p in model.parameters()), "checksum": checksum,
                      "peak_rss_mb": peak_rss_mb()}))


def gemm_peak(threads):
    """Best f32 GFLOP/s of two BERT-shaped torch linears (M = 4096) at this thread count."""
    import torch
    torch.set_num_threads(threads)
    best = 0.0
    for k, n in ((768, 3072), (3072, 768)):
        x, w = torch.randn(4096, k), torch.randn(n, k)
        torch.nn.functional.linear(x, w)
        for _ in range(5):
            t = time.perf_counter()
            torch.nn.functional.linear(x, w)
            best = max(best, 2 * 4096 * k * n / (time.perf_counter() - t) / 1e9)
    return best


def run_json(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/bench/bench_finetune")
    ap.add_argument("--threads", type=int,
                    default=int(os.environ.get("LMFORGE_NUM_THREADS", os.cpu_count())))
    ap.add_argument("--model-dir", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--data", default="/work/shared/data/sst2/train.tsv")
    ap.add_argument("--shape", default="minilm", choices=["minilm", "base"],
                    help="pretraining model shape")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per process (>= 1)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per process and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workloads", default="finetune,pretrain")
    ap.add_argument("--worker", choices=["torch"], help=argparse.SUPPRESS)
    ap.add_argument("--workload", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.warmup < 1 or a.steps < 1:
        sys.exit("--warmup and --steps must be >= 1")
    if a.worker:
        torch_worker(a)
        return
    if not os.path.exists(a.bin):
        sys.exit(f"{a.bin} not found; build it: make -C build -j2 bench_finetune")
    env = dict(os.environ, LMFORGE_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    common = ["--model-dir", a.model_dir, "--data", a.data, "--shape", a.shape, "--batch",
              str(a.batch), "--seq", str(a.seq), "--warmup", str(a.warmup), "--steps",
              str(a.steps)]
    peak = 0.0
    workloads = [w for w in a.workloads.split(",") if w]
    res = {(w, i): {"times": [], "rss": 0.0, "rec": None} for w in workloads
           for i in ("lmforge", "pytorch")}
    for r in range(a.rounds):
        peak = max(peak, gemm_peak(a.threads))  # best over the rounds: the least disturbed
        for w in workloads:
            # pretrain-sparse: lmforge's default sparse MLM head vs the same HF loop as pretrain
            cmds = {"lmforge": [a.bin, "--workload", w] + common,
                    "pytorch": [sys.executable, os.path.abspath(__file__), "--worker", "torch",
                                "--workload", w, "--threads", str(a.threads)] + common}
            order = ["lmforge", "pytorch"] if r % 2 == 0 else ["pytorch", "lmforge"]
            for impl in order:
                rec = run_json(cmds[impl], env)
                slot = res[(w, impl)]
                slot["times"] += rec["times_s"]
                slot["rss"] = max(slot["rss"], rec["peak_rss_mb"])
                slot["rec"] = rec
            print(f"round {r + 1}/{a.rounds} {w}: lmforge "
                  f"{statistics.median(res[(w, 'lmforge')]['rec']['times_s']):.3f} s/step, pytorch "
                  f"{statistics.median(res[(w, 'pytorch')]['rec']['times_s']):.3f} s/step",
                  flush=True)

    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    tp = res[(workloads[0], "pytorch")]["rec"]
    print(f"\n{a.threads} threads, batch {a.batch} x seq {a.seq}, {a.rounds} rounds x {a.steps} "
          f"timed steps (after {a.warmup} warm-up) per impl, torch {tp['torch']} "
          f"({tp['attn']} attention), load average {load}, torch f32 GEMM peak {peak:.1f} GFLOP/s")
    for w in workloads:
        for impl in ("lmforge", "pytorch"):
            rec = res[(w, impl)]["rec"]
            print(f"  {w:<9} {impl:<8} {rec['model']}: params {rec['params']}, checksum "
                  f"{rec['checksum']}, loss {rec['first_loss']:.4f} -> {rec['last_loss']:.4f}")
        if res[(w, "lmforge")]["rec"]["checksum"] != res[(w, "pytorch")]["rec"]["checksum"]:
            print(f"  WARNING: {w} inputs differ between the two sides (checksums above)")
    print("\n| workload | lmforge | PyTorch | ratio | lmforge s/step | PyTorch s/step "
          "| lmforge % peak | PyTorch % peak | peak RSS lmforge | peak RSS PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for w in workloads:
        lm = statistics.median(res[(w, "lmforge")]["times"])
        pt = statistics.median(res[(w, "pytorch")]["times"])
        unit, per = ("samples/s", a.batch) if w == "finetune" else ("tokens/s", a.batch * a.seq)
        gf = train_flops(w, a) / 1e9
        print(f"| {w} ({unit}) | {per / lm:.2f} | {per / pt:.2f} | {pt / lm:.2f}x | {lm:.3f} "
              f"| {pt:.3f} | {100 * gf / lm / peak:.1f} % | {100 * gf / pt / peak:.1f} % "
              f"| {res[(w, 'lmforge')]['rss']:.0f} MB | {res[(w, 'pytorch')]['rss']:.0f} MB |")
    print(f"\nn = {a.rounds * a.steps} timed steps per cell; estimated training GFLOP/step: "
          + ", ".join(f"{w} {train_flops(w, a) / 1e9:.1f}" for w in workloads))


if __name__ == "__main__":
    main()
