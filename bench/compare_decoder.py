#!/usr/bin/env python3
"""Side-by-side decoder generation benchmark on the real SmolLM2-135M-Instruct: lmforge
(build/bench/bench_generate), PyTorch + transformers `generate` (f32) and llama.cpp
(llama-cpp-python) on the same f32 GGUF that `lmforge convert --to gguf --type f32` writes, plus
llama.cpp on the original Q4_1 file and a Q8_0 conversion for scale.

Workload (issue 10): batch 1, a 512-token prompt (tinyshakespeare text tokenized by the model's
own tokenizer; the same ids for every engine), 128 new tokens (end-of-sequence suppressed so each
engine generates all 128), greedy, 2 threads. Each engine runs in a fresh subprocess per round
(so its peak RSS is its own), rounds alternate between engines; medians over rounds.
  prefill tokens/s = 512 / (time of a generate call with 1 new token)
  decode tokens/s  = 127 / (time with 128 new tokens - time with 1 new token)
Batched decoding (8 and 32 sequences of a 64-token prompt, 64 new tokens) for lmforge and
transformers (llama-cpp-python's high-level API has no batched generation).

Usage: python3 bench/compare_decoder.py [--rounds 5] [--threads 2] [--engines lmforge,hf,llamacpp]
       [--batched]
Needs: ./build (with bench_generate), models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup.sh),
pip install torch transformers gguf accelerate llama-cpp-python.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
WORK = os.path.join(ROOT, "build", "bench_decoder")
LMFORGE = os.path.join(ROOT, "build", "lmforge")
BENCH = os.path.join(ROOT, "build", "bench", "bench_generate")
PROMPT_LEN, NEW = 512, 128


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def prepare(threads):
    """HF folder and f32/q8_0 GGUFs written by lmforge convert; the prompt ids."""
    os.makedirs(WORK, exist_ok=True)
    hf_dir = os.path.join(WORK, "hf")
    f32 = os.path.join(WORK, "smollm2-f32.gguf")
    q8 = os.path.join(WORK, "smollm2-q8_0.gguf")
    if not os.path.exists(os.path.join(hf_dir, "model.safetensors")):
        sh([LMFORGE, "convert", GGUF, "-o", hf_dir])
    for path, typ in ((f32, "f32"), (q8, "q8_0")):
        if not os.path.exists(path):
            sh([LMFORGE, "convert", hf_dir, "--to", "gguf", "--type", typ, "-o", path])
    ids_path = os.path.join(WORK, "prompt_ids.json")
    if not os.path.exists(ids_path):
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(hf_dir)
        cands = [os.environ.get("LMF_PROMPT_TEXT", ""),
                 os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare", "input.txt"),
                 "/work/shared/data/tinyshakespeare/input.txt"]
        text = open(next(c for c in cands if c and os.path.exists(c))).read()
        ids = tok(text[:20000])["input_ids"][:PROMPT_LEN]
        assert len(ids) == PROMPT_LEN
        json.dump(ids, open(ids_path, "w"))
    return hf_dir, f32, q8, ids_path


# ---- one engine, one round (runs in a subprocess) ----------------------------------------------

def run_hf(model_path, ids, threads, batch, new):
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_path, torch_dtype=torch.float32).eval()
    eos = model.generation_config.eos_token_id
    x = torch.tensor([ids] * batch)

    def gen(n):
        t = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n,
                                 min_new_tokens=n, do_sample=False, pad_token_id=0,
                                 eos_token_id=eos)
        assert out.shape[1] == len(ids) + n
        return time.perf_counter() - t
    gen(4)  # warm-up
    return gen(1), gen(new)


def run_llamacpp(model_path, ids, threads, batch, new):
    from llama_cpp import Llama
    llm = Llama(model_path=model_path, n_ctx=1024, n_threads=threads, n_threads_batch=threads,
                n_batch=512, verbose=False, logits_all=False)
    eos = llm.token_eos()

    def gen(n):
        llm.reset()  # no prompt-prefix reuse between calls
        t = time.perf_counter()
        out = llm.create_completion(ids, max_tokens=n, temperature=0.0, top_k=1,
                                    logit_bias={eos: -1e9})
        assert out["usage"]["completion_tokens"] == n, out["usage"]
        return time.perf_counter() - t
    gen(4)
    return gen(1), gen(new)


def run_lmforge(model_path, ids_path, threads, batch, new):
    env = dict(os.environ, LMFORGE_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    cmd = [BENCH, "--model", model_path, "--prompt-ids", ids_path, "--new-tokens", str(new),
           "--batch", str(batch)]
    if batch > 1:
        cmd += ["--prompt-len", "64"]
    out = sh(cmd, env=env).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["prefill_s"], r["total_s"], r["rss_mb"]


def child(args):
    ids = json.load(open(args.ids))
    if args.child == "lmforge":
        t1, tn, rss = run_lmforge(args.model, args.ids, args.threads, args.batch, args.new)
    else:
        if args.batch > 1:
            ids = ids[:64]
        fn = run_hf if args.child == "hf" else run_llamacpp
        t1, tn = fn(args.model, ids, args.threads, args.batch, args.new)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"t1": t1, "tn": tn, "rss_mb": rss}))


def measure(engine, model, ids_path, threads, batch, new):
    cmd = [sys.executable, __file__, "--child", engine, "--model", model, "--ids", ids_path,
           "--threads", str(threads), "--batch", str(batch), "--new", str(new)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    return json.loads(sh(cmd, env=env).stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", default="lmforge,hf,llamacpp,llamacpp-q8_0,llamacpp-q4_1")
    ap.add_argument("--batched", action="store_true")
    ap.add_argument("--child")
    ap.add_argument("--model")
    ap.add_argument("--ids")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--new", type=int, default=NEW)
    args = ap.parse_args()
    if args.child:
        return child(args)

    hf_dir, f32, q8, ids_path = prepare(args.threads)
    models = {"lmforge": f32, "lmforge-q4_1": GGUF, "lmforge-folder": hf_dir, "hf": hf_dir, "llamacpp": f32,
              "llamacpp-q8_0": q8, "llamacpp-q4_1": GGUF}
    engines = args.engines.split(",")
    res = {e: [] for e in engines}
    for r in range(args.rounds):
        for e in engines:
            kind = e.split("-")[0]
            m = measure(kind, models[e], ids_path, args.threads, 1, NEW)
            res[e].append(m)
            print(f"round {r + 1} {e:16s} prefill {PROMPT_LEN / m['t1']:7.1f} tok/s  decode "
                  f"{(NEW - 1) / (m['tn'] - m['t1']):6.1f} tok/s  rss {m['rss_mb']:.0f} MB",
                  file=sys.stderr)
    print(f"\nSmolLM2-135M-Instruct, batch 1, prompt {PROMPT_LEN}, {NEW} new tokens, "
          f"{args.threads} threads, medians of {args.rounds} rounds")
    print(f"{'engine':18s} {'weights':10s} {'prefill tok/s':>14s} {'decode tok/s':>13s} "
          f"{'peak RSS MB':>12s}")
    summary = {}
    for e in engines:
        pre = statistics.median(PROMPT_LEN / m["t1"] for m in res[e])
        dec = statistics.median((NEW - 1) / (m["tn"] - m["t1"]) for m in res[e])
        rss = statistics.median(m["rss_mb"] for m in res[e])
        w = {"lmforge": "f32", "lmforge-q4_1": "Q4_1->f32", "lmforge-folder": "f32", "hf": "f32", "llamacpp": "f32", "llamacpp-q8_0": "Q8_0",
             "llamacpp-q4_1": "Q4_1"}.get(e, "")
        summary[e] = (pre, dec, rss)
        print(f"{e:18s} {w:10s} {pre:14.1f} {dec:13.1f} {rss:12.0f}")
    if "lmforge" in summary:
        for ref in ("hf", "llamacpp"):
            if ref in summary:
                a, b = summary["lmforge"], summary[ref]
                print(f"lmforge / {ref}: prefill {a[0] / b[0]:.2f}x, decode {a[1] / b[1]:.2f}x, "
                      f"RSS {a[2] / b[2]:.2f}x")
    if args.batched:
        print("\nbatched greedy decoding: 64-token prompt, 64 new tokens, decode tokens/s "
              "(all sequences)")
        for batch in (8, 32):
            for e in ("lmforge", "hf"):
                if e not in engines:
                    continue
                vals = []
                for _ in range(max(1, args.rounds // 2)):
                    m = measure(e, models[e], ids_path, args.threads, batch, 64)
                    vals.append(batch * 63 / (m["tn"] - m["t1"]))
                print(f"  batch {batch:2d} {e:10s} {statistics.median(vals):8.1f} tok/s")


if __name__ == "__main__":
    main()
