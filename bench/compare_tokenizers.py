#!/usr/bin/env python3
"""Tokens/s of lmforge vs HF `tokenizers` (Rust, via Python) on a >= 10 MB English+Chinese text,
single thread and batch (all threads), WordPiece (all-MiniLM-L6-v2) and byte-level BPE.

Usage: python bench/compare_tokenizers.py [--build build] [--rounds 5] [--mb 10]
Each round runs one lmforge process and one HF process per (tokenizer, mode), alternating which
goes first; each process times one pass over the whole text (cold word caches on both sides).
Single thread: lmforge encode() per line; HF encode_batch with RAYON_NUM_THREADS=1. Batch:
lmforge encode_batch (LMFORGE_NUM_THREADS=all) vs HF encode_batch (RAYON_NUM_THREADS=all).
The text is generated deterministically in /tmp from the golden corpus (never committed).
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts", "reference"))


def make_text(path, mb):
    from gen_bpe_unigram_goldens import ZH, load_corpus
    if os.path.exists(path) and os.path.getsize(path) >= mb * 1_000_000:
        return
    base = [l for l in load_corpus() if l.strip()]
    rng = random.Random(42)
    out, size, k = [], 0, 0
    while size < mb * 1_000_000:
        line = base[k % len(base)]
        k += 1
        words = line.split(" ")
        if len(words) > 3 and rng.random() < 0.5:  # variation: swap two words, add a number
            i, j = rng.randrange(len(words)), rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
        if rng.random() < 0.3:
            words.append(str(rng.randint(0, 10**6)))
        if rng.random() < 0.35:  # keep a large Chinese share
            words.append("".join(rng.choice(ZH) for _ in range(rng.randint(5, 30))) + "。")
        line = " ".join(words).replace("\n", " ")
        out.append(line)
        size += len(line.encode()) + 1
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out))


def hf_worker(tok_path, text_path, threads, mode):
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    import time
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    tok.no_truncation()
    tok.no_padding()
    with open(text_path, encoding="utf-8", newline="") as f:  # keep '\r' as lmforge does
        lines = f.read().split("\n")
    t0 = time.perf_counter()
    encs = tok.encode_batch(lines)
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "tokens": sum(len(e.ids) for e in encs)}))


def run(cmd, env):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mb", type=float, default=10)
    ap.add_argument("--text", default="/tmp/lmf_tokenizer_bench.txt")
    ap.add_argument("--worker", nargs=4, metavar=("TOK", "TEXT", "THREADS", "MODE"))
    a = ap.parse_args()
    if a.worker:
        return hf_worker(a.worker[0], a.worker[1], int(a.worker[2]), a.worker[3])
    make_text(a.text, a.mb)
    nthreads = os.cpu_count()
    toks = []
    mini = os.path.join(ROOT, "models", "all-MiniLM-L6-v2", "tokenizer.json")
    if os.path.exists(mini):
        toks.append(("WordPiece (MiniLM)", mini))
    else:
        print(f"note: {mini} absent, WordPiece skipped (see bench/README or the script header)")
    toks.append(("byte-level BPE", os.path.join(ROOT, "tests", "fixtures", "tokenizers",
                                                "bpe_tokenizer.json")))
    binary = os.path.join(a.build, "bench", "bench_tokenizers")
    size_mb = os.path.getsize(a.text) / 1e6
    print(f"text: {a.text} ({size_mb:.1f} MB), {a.rounds} rounds, medians; threads: 1 and "
          f"{nthreads}. Shared/noisy machine: treat ratios as indicative.")
    print(f"{'tokenizer':<20} {'mode':<10} {'lmforge tok/s':>14} {'HF tok/s':>14} {'ratio':>7}")
    for name, path in toks:
        for mode, threads in (("single", 1), ("batch", nthreads)):
            env = dict(os.environ, LMFORGE_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
            ours, theirs, ntok = [], [], None
            for r in range(a.rounds):
                cmds = [("ours", [binary, path, a.text, mode]),
                        ("hf", [sys.executable, __file__, "--worker", path, a.text, str(threads),
                                mode])]
                if r % 2:
                    cmds.reverse()
                for who, cmd in cmds:
                    res = run(cmd, env)
                    (ours if who == "ours" else theirs).append(res["tokens"] / res["seconds"])
                    if who == "ours":
                        ntok = res["tokens"]
                    elif ntok is not None and res["tokens"] != ntok:
                        print(f"warning: token counts differ ({ntok} vs {res['tokens']})")
            mo, mh = statistics.median(ours), statistics.median(theirs)
            print(f"{name:<20} {mode + '/' + str(threads):<10} {mo:>14,.0f} {mh:>14,.0f} "
                  f"{mo / mh:>6.2f}x", flush=True)


if __name__ == "__main__":
    sys.exit(main())
