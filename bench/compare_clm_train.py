#!/usr/bin/env python3
"""Side-by-side causal-LM training throughput (issue 15): `lmforge pretrain --recipe gpt` against the
same loop in PyTorch + transformers, full fine-tuning of SmolLM2-135M (the HF folder
bench/compare_decoder.py converts from the GGUF file: LlamaForCausalLM, f32) on the same blocks,
batch size and thread count.

Both sides: the first --chars characters of tinyshakespeare, read as run_clm reads text (one
example per line with its line break), tokenized by the folder's tokenizer, concatenated and cut
into --block tokens per block; random batches of --batch blocks (every step the same shape and
work), dropout as in the config (0), the model's causal-LM loss, AdamW (lr 5e-5, no weight decay:
HF Trainer's defaults), linear schedule, gradient clipping 1.0, --steps optimizer steps.
tokens = batch x block per step. Reported per side and round:
  overall  all tokens / wall time of all steps (lmforge: train_runtime of `pretrain --json`,
           checkpoints off; PyTorch: from the first step's start to the last step's end)
  steady   median per-step tokens/s after --warmup steps (lmforge: metrics.jsonl with
           --logging-steps 1)
  peak RSS of the whole process (lmforge: wait4's ru_maxrss; PyTorch: its own ru_maxrss)
Each round starts fresh processes (lmforge, then PyTorch); medians over rounds.

With --lora both sides train LoRA adapters instead (PEFT's get_peft_model on the PyTorch side; r 16,
alpha 32, dropout 0.05 on q_proj, k_proj, v_proj, o_proj; lr 2e-4): the base is frozen, so
neither computes weight gradients of the base.

Usage: python3 bench/compare_clm_train.py [--lora] [--rounds 3] [--steps 8] [--warmup 2]
         [--batch 4] [--block 256] [--threads 2] [--json-out FILE]
"""
import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_decoder as cd  # noqa: E402

LR = {False: "5e-5", True: "2e-4"}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
TEXT_CANDIDATES = [os.path.join(cd.ROOT, "..", "shared", "data", "tinyshakespeare", "input.txt"),
                   "/work/shared/data/tinyshakespeare/input.txt"]


def corpus(a, work):
    src = next(c for c in TEXT_CANDIDATES if os.path.exists(c))
    path = os.path.join(work, f"shakespeare_{a.chars}.txt")
    if not os.path.exists(path):
        with open(src, encoding="utf-8") as f:
            text = f.read()[:a.chars]
        with open(path, "w", encoding="utf-8") as f:
            f.write(text[:text.rfind("\n") + 1])
    return path


def run_lmforge(a, model, text, out_dir):
    env = dict(os.environ, LMFORGE_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [cd.LMFORGE, "pretrain", "--recipe", "gpt", "--model", model, "--train", text,
           "--block-size", str(a.block), "--batch-size", str(a.batch), "--max-steps", str(a.steps),
           "--lr", LR[a.lora], "--logging-steps", "1", "--save-steps", "0", "-o", out_dir,
           "--json", "--no-progress"]
    if a.lora:
        cmd += ["--use-peft", "--lora-r", "16", "--lora-alpha", "32", "--lora-dropout", "0.05",
                "--lora-target", ",".join(LORA_TARGETS)]
    # stdout/stderr to files and wait4() on the pid: the child's own peak RSS
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        p = subprocess.Popen(cmd, env=env, stdout=fo, stderr=fe, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if p.returncode != 0:
        raise RuntimeError(f"lmforge failed ({p.returncode}): {err}")
    r = json.loads(out.strip().splitlines()[-1])
    steps = [json.loads(l) for l in open(os.path.join(out_dir, "metrics.jsonl"))]
    per_step = [m["tokens_per_second"] for m in steps if "loss" in m and "tokens_per_second" in m]
    rss = ru.ru_maxrss / 1024
    return {"overall": r["train_tokens_per_second"], "steady": statistics.median(
        per_step[a.warmup:]), "loss": r["train_loss"], "steps": r["global_step"], "rss_mb": rss}


def run_torch(a):
    import random
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    tok = AutoTokenizer.from_pretrained(a.model)
    with open(a.text, encoding="utf-8") as f:
        lines = io.StringIO(f.read()).readlines()
    ids = [t for line in lines for t in tok(line)["input_ids"]]
    blocks = [ids[i:i + a.block] for i in range(0, (len(ids) // a.block) * a.block, a.block)]
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    if a.lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                                 target_modules=LORA_TARGETS,
                                                 task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=float(LR[a.lora]), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / a.steps))
    rng = random.Random(42)
    per_step, losses = [], []
    t_start = time.perf_counter()
    for _ in range(a.steps):
        t = time.perf_counter()
        x = torch.tensor([blocks[rng.randrange(len(blocks))] for _ in range(a.batch)])
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        per_step.append(a.batch * a.block / (time.perf_counter() - t))
    wall = time.perf_counter() - t_start
    return {"overall": a.steps * a.batch * a.block / wall,
            "steady": statistics.median(per_step[a.warmup:]), "loss": sum(losses) / len(losses),
            "steps": a.steps,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lora", action="store_true", help="LoRA adapters instead of full training")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2, help="steps left out of 'steady'")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--chars", type=int, default=200000, help="characters of tinyshakespeare")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json-out")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--text", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_torch(a)))
        return
    assert a.steps > a.warmup >= 0
    hf_dir, _, _, _ = cd.prepare(a.threads)
    text = corpus(a, cd.WORK)
    load = os.getloadavg()
    runs = {"lmforge": [], "torch": []}
    with tempfile.TemporaryDirectory(dir=cd.WORK) as tmp:
        for r in range(a.rounds):
            runs["lmforge"].append(run_lmforge(a, hf_dir, text, os.path.join(tmp, "out")))
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "torch", "--model", hf_dir,
                   "--text", text, "--steps", str(a.steps), "--warmup", str(a.warmup), "--batch",
                   str(a.batch), "--block", str(a.block), "--threads", str(a.threads)]
            if a.lora:
                cmd.append("--lora")
            env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), HF_HUB_OFFLINE="1")
            runs["torch"].append(json.loads(cd.sh(cmd, env=env).stdout.strip().splitlines()[-1]))
            for e in runs:
                m = runs[e][-1]
                print(f"round {r + 1} {e:8s} overall {m['overall']:7.1f} tok/s, steady "
                      f"{m['steady']:7.1f} tok/s, mean loss {m['loss']:.4f}, peak RSS "
                      f"{m['rss_mb']:.0f} MB", file=sys.stderr)
    load_end = os.getloadavg()
    res = {e: {k: statistics.median(m[k] for m in runs[e]) for k in ("overall", "steady", "rss_mb")}
           for e in runs}
    for k in ("overall", "steady"):
        res[f"lmforge_over_torch_{k}"] = res["lmforge"][k] / res["torch"][k]
    res["rss_lmforge_over_torch"] = res["lmforge"]["rss_mb"] / res["torch"]["rss_mb"]
    summary = {"model": hf_dir, "lora": a.lora, "threads": a.threads, "batch": a.batch, "block": a.block,
               "steps": a.steps, "warmup": a.warmup, "rounds": a.rounds,
               "load_average_start": load[0], "load_average_end": load_end[0], "results": res,
               "per_round": runs}
    what = "LoRA r 16 on q/k/v/o_proj (PEFT)" if a.lora else "full fine-tune"
    print(f"\nSmolLM2-135M {what} (causal LM), batch {a.batch} x {a.block} tokens, "
          f"{a.steps} steps, {a.threads} threads, medians of {a.rounds} rounds, load average "
          f"{load[0]:.1f} -> {load_end[0]:.1f}")
    print(f"{'engine':10s} {'overall tok/s':>14s} {'steady tok/s':>13s} {'peak RSS MB':>12s}")
    for e in ("lmforge", "torch"):
        print(f"{e:10s} {res[e]['overall']:14.1f} {res[e]['steady']:13.1f} "
              f"{res[e]['rss_mb']:12.0f}")
    print(f"lmforge / PyTorch: overall {res['lmforge_over_torch_overall']:.2f}x, steady "
          f"{res['lmforge_over_torch_steady']:.2f}x, peak RSS {res['rss_lmforge_over_torch']:.2f}x")
    if a.json_out:
        json.dump(summary, open(a.json_out, "w"), indent=2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
