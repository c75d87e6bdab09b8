#!/usr/bin/env python3
"""The sentence-embedding job end to end (tokenization, length-sorted batches of 32, forward, mean
pooling, normalisation): lmforge's SentenceEmbedder (build/bench/bench_embed) against
sentence-transformers' SentenceTransformer.encode on the same sentences, same threads, alternating
rounds, medians. Two modes: the whole list in one call ("batched", what `lmforge embed FILE`
does) and one call per sentence ("single", interactive use). The sentences default to the 201 of
tests/fixtures/minilm/sentences.jsonl (the parity fixture: 1 to 256 tokens, several languages).

Usage: python3 bench/compare_embed.py [--rounds 5] [--iters 3] [--threads N]
Needs torch and sentence-transformers (PyPI); no network (the model is ./models/all-MiniLM-L6-v2).
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/bench/bench_embed"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/all-MiniLM-L6-v2"))
    ap.add_argument("--sentences", default=os.path.join(ROOT, "tests/fixtures/minilm/sentences.jsonl"))
    ap.add_argument("--threads", type=int,
                    default=int(os.environ.get("LMFORGE_NUM_THREADS", os.cpu_count())))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=3)
    a = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(a.threads)
    with open(a.sentences, encoding="utf-8") as f:
        texts = [json.loads(line) for line in f if line.strip()]
    texts = [t.replace("\n", " ") for t in texts]
    tmp = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8")
    tmp.write("\n".join(texts) + "\n")
    tmp.close()
    st = SentenceTransformer(a.model, device="cpu")
    env = dict(os.environ, LMFORGE_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))

    def st_run(single):
        t = time.perf_counter()
        with torch.inference_mode():
            if single:
                for s in texts:
                    st.encode([s], batch_size=32, normalize_embeddings=True)
            else:
                st.encode(texts, batch_size=32, normalize_embeddings=True)
        return time.perf_counter() - t

    rows = []
    for mode in ("batched", "single"):
        st_run(mode == "single")  # warm-up
        times = {"lmforge": [], "sentence-transformers": []}
        for r in range(a.rounds):
            cmd = [a.bin, "--model", a.model, "--sentences", tmp.name, "--iters", str(a.iters)]
            if mode == "single":
                cmd.append("--single")
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            times["lmforge"] += json.loads(out.strip().splitlines()[-1])["times_s"]
            times["sentence-transformers"] += [st_run(mode == "single") for _ in range(a.iters)]
            print(f"{mode} round {r + 1}/{a.rounds}: " + ", ".join(
                f"{k} {statistics.median(v[-a.iters:]):.3f} s" for k, v in times.items()), flush=True)
        rows.append((mode, {k: statistics.median(v) for k, v in times.items()}))
    os.unlink(tmp.name)
    print(f"\nsentence embeddings, {len(texts)} sentences, all-MiniLM-L6-v2, {a.threads} threads, "
          f"torch {torch.__version__}, medians of {a.rounds} alternating rounds x {a.iters}")
    print(f"{'mode':<10}{'lmforge s':>12}{'ST s':>12}{'lmforge sent/s':>16}{'ST sent/s':>12}{'ratio':>8}")
    for mode, med in rows:
        lm, st_t = med["lmforge"], med["sentence-transformers"]
        print(f"{mode:<10}{lm:>12.3f}{st_t:>12.3f}{len(texts) / lm:>16.1f}{len(texts) / st_t:>12.1f}"
              f"{st_t / lm:>7.2f}x")


if __name__ == "__main__":
    main()
