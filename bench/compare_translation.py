#!/usr/bin/env python3
"""Side-by-side translation benchmark (issue 11) on one Marian folder: lmforge
(build/bench/bench_translate: tasks::generate_seq2seq, the API `lmforge translate` uses), PyTorch +
transformers (MarianMTModel.generate) and CTranslate2 (the same folder converted with
ctranslate2.converters.TransformersConverter), float32, the same thread count for all three.

Workload: the first sentences of Multi30k test_2016_flickr.en, tokenized once here with
transformers' MarianTokenizer of the folder, so every engine gets the same source ids (CTranslate2
the same tokens as strings). Batches of consecutive sentences (1 and 32), greedy and beam 4.
By default every hypothesis is exactly --new-tokens long (end of sequence suppressed until then:
min = max new tokens in all three engines), so the engines do the same work whatever the model
predicts; --new-tokens 0 lets them stop at </s> (at most --max-new-tokens) and counts what each
generated. Only the model part is timed: each engine runs in a fresh subprocess per round, loads
the model, translates one warm-up batch, then every batch is timed (no process start, model load
or tokenization in the time). tokens/s = generated tokens of the returned (best) hypotheses, end
of sequence included, over that time. Rounds alternate between engines; medians over rounds.
<pad> is never generated (bad_words_ids [[pad]] in lmforge and transformers unless the folder's
generation config sets bad words; CTranslate2's conversion drops it from the vocabulary).
The greedy ids of lmforge and transformers are compared as a sanity check (`greedy_ids_equal`).

Usage: python3 bench/compare_translation.py [--model DIR] [--rounds 5] [--threads 2]
         [--engines lmforge,hf,ct2] [--configs 1x1,1x4,32x1,32x4] [--new-tokens 32]
         [--sentences-b1 24] [--sentences-batched 96] [--json-out FILE]
Without --model a development folder is made in build/bench_translation/dev: a Marian
SentencePiece vocabulary trained by `lmforge tokenizer train --marian` on Multi30k train.en/fr,
then `lmforge finetune --task translation --config docs/examples/marian_multi30k_config.json`
(vocabulary size and pad id set from the trained vocabulary) for a few steps. Use the real
trained model for the numbers in docs/BENCHMARKS.md.
Needs: ./build with bench_translate and lmforge; pip install torch transformers ctranslate2
sentencepiece.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "build", "bench_translation")
LMFORGE = os.path.join(ROOT, "build", "lmforge")
BENCH = os.path.join(ROOT, "build", "bench", "bench_translate")
DATA_CANDIDATES = [os.path.join(ROOT, "..", "shared", "data", "multi30k"),
                   "/work/shared/data/multi30k"]


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return r


def data_dir():
    for d in DATA_CANDIDATES:
        if os.path.exists(os.path.join(d, "test_2016_flickr.en")):
            return d
    sys.exit("Multi30k not found (../shared/data/multi30k)")


def make_dev_model(steps=20):
    """A small lmforge-trained Marian folder (see the module docstring)."""
    out = os.path.join(WORK, "dev")
    if os.path.exists(os.path.join(out, "model.safetensors")):
        return out
    d = data_dir()
    tok = os.path.join(WORK, "dev_tokenizer")
    if not os.path.exists(os.path.join(tok, "vocab.json")):
        print("training the Marian SentencePiece vocabulary ...", file=sys.stderr)
        sh([LMFORGE, "tokenizer", "train", "--marian", "--vocab-size", "8000",
            os.path.join(d, "train.en"), "--target-files", os.path.join(d, "train.fr"),
            "-o", tok, "--num-threads", "2"])
    cfg = json.load(open(os.path.join(ROOT, "docs", "examples", "marian_multi30k_config.json")))
    vocab = json.load(open(os.path.join(tok, "vocab.json")))
    pad = vocab["<pad>"]
    cfg.update(vocab_size=len(vocab), decoder_vocab_size=len(vocab), pad_token_id=pad,
               decoder_start_token_id=pad, eos_token_id=vocab["</s>"],
               forced_eos_token_id=vocab["</s>"])
    json.dump(cfg, open(os.path.join(tok, "config.json"), "w"), indent=2)
    print(f"training the development model ({steps} steps) ...", file=sys.stderr)
    sh([LMFORGE, "finetune", "--task", "translation", "--config", os.path.join(tok, "config.json"),
        "--tokenizer", tok, "--train",
        os.path.join(d, "train.en") + "," + os.path.join(d, "train.fr"),
        "--max-train-examples", "2000", "--max-steps", str(steps), "--batch-size", "32",
        "--lr", "5e-4", "-o", out, "--json", "--no-progress"])
    return out


def tokenize_sources(model_dir, n):
    from transformers import MarianTokenizer
    tok = MarianTokenizer.from_pretrained(model_dir)
    lines = [l.strip() for l in open(os.path.join(data_dir(), "test_2016_flickr.en"))]
    lines = [l for l in lines if l][:n]
    return [tok(l)["input_ids"] for l in lines]


def convert_ct2(model_dir):
    key = os.path.abspath(model_dir).strip("/").replace("/", "_")
    out = os.path.join(WORK, "ct2", key)
    src = os.path.join(model_dir, "model.safetensors")
    if (not os.path.exists(os.path.join(out, "model.bin")) or
            os.path.getmtime(os.path.join(out, "model.bin")) < os.path.getmtime(src)):
        from ctranslate2.converters import TransformersConverter
        TransformersConverter(model_dir).convert(out, force=True)
    return out


# ---- one engine, one round (runs in a subprocess) ----------------------------------------------

def count_until_eos(ids, eos):
    """Generated tokens up to and including the first end of sequence (padding after it not)."""
    return ids.index(eos) + 1 if eos in ids else len(ids)


def run_hf(a, sources):
    import torch
    from transformers import MarianMTModel
    torch.set_num_threads(a.threads)
    model = MarianMTModel.from_pretrained(a.model, dtype=torch.float32).eval()
    pad, eos = model.config.pad_token_id, model.config.eos_token_id
    kw = dict(num_beams=a.beams, do_sample=False, max_new_tokens=a.new_tokens or a.max_new_tokens)
    if not model.generation_config.bad_words_ids:
        kw["bad_words_ids"] = [[pad]]  # as bench_translate; CTranslate2 cannot generate <pad>
    if a.new_tokens:
        kw["min_new_tokens"] = a.new_tokens

    def gen(chunk):
        width = max(len(s) for s in chunk)
        x = torch.tensor([s + [pad] * (width - len(s)) for s in chunk])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in chunk])
        with torch.inference_mode():
            out = model.generate(input_ids=x, attention_mask=mask, **kw)
        return [count_until_eos(row[1:], eos) for row in out.tolist()], \
            [row[1:1 + count_until_eos(row[1:], eos)] for row in out.tolist()]
    gen(sources[:a.batch])
    t = time.perf_counter()
    tokens, outs = 0, []
    for b0 in range(0, len(sources), a.batch):
        n, o = gen(sources[b0:b0 + a.batch])
        tokens += sum(n)
        outs += o
    return time.perf_counter() - t, tokens, outs


def run_ct2(a, sources):
    import ctranslate2
    vocab = json.load(open(os.path.join(a.model, "vocab.json")))
    inv = {v: k for k, v in vocab.items()}
    tr = ctranslate2.Translator(a.ct2, device="cpu", compute_type="float32",
                                intra_threads=a.threads, inter_threads=1)
    kw = dict(beam_size=a.beams, max_decoding_length=a.new_tokens or a.max_new_tokens,
              return_end_token=True)
    if a.new_tokens:
        kw["min_decoding_length"] = a.new_tokens
    toks = [[inv[i] for i in s] for s in sources]

    def gen(chunk):
        res = tr.translate_batch(chunk, **kw)
        hyps = [r.hypotheses[0] for r in res]
        return [len(h) for h in hyps], [[vocab[t] for t in h] for h in hyps]
    gen(toks[:a.batch])
    t = time.perf_counter()
    tokens, outs = 0, []
    for b0 in range(0, len(toks), a.batch):
        n, o = gen(toks[b0:b0 + a.batch])
        tokens += sum(n)
        outs += o
    return time.perf_counter() - t, tokens, outs


def run_lmforge(a):
    env = dict(os.environ, LMFORGE_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    cmd = [BENCH, "--model", a.model, "--source-ids", a.ids, "--batch", str(a.batch), "--beams",
           str(a.beams), "--new-tokens", str(a.new_tokens), "--max-new-tokens",
           str(a.max_new_tokens)]
    r = json.loads(sh(cmd, env=env).stdout.strip().splitlines()[-1])
    return r["total_s"], r["generated_tokens"], r["output_ids"], r["rss_mb"]


def child(a):
    sources = json.load(open(a.ids))
    if a.child == "lmforge":
        s, n, outs, rss = run_lmforge(a)
    else:
        s, n, outs = (run_hf if a.child == "hf" else run_ct2)(a, sources)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"s": s, "tokens": n, "rss_mb": rss, "output_ids": outs}))


def measure(engine, a, model, ct2, ids_path, batch, beams):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", engine, "--model", model,
           "--ct2", ct2 or "", "--ids", ids_path, "--threads", str(a.threads), "--batch",
           str(batch), "--beams", str(beams), "--new-tokens", str(a.new_tokens),
           "--max-new-tokens", str(a.max_new_tokens)]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    return json.loads(sh(cmd, env=env).stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="Marian folder (default: a development model, see above)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", default="lmforge,hf,ct2")
    ap.add_argument("--configs", default="1x1,1x4,32x1,32x4", help="BATCHxBEAMS,...")
    ap.add_argument("--new-tokens", type=int, default=32,
                    help="exactly this many new tokens per hypothesis (0: stop at </s>)")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="cap with --new-tokens 0")
    ap.add_argument("--sentences-b1", type=int, default=24, help="sources at batch 1")
    ap.add_argument("--sentences-batched", type=int, default=96, help="sources at batch > 1")
    ap.add_argument("--json-out", help="also write the results as JSON to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--ct2", help=argparse.SUPPRESS)
    ap.add_argument("--ids", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--beams", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)

    os.makedirs(WORK, exist_ok=True)
    model = os.path.abspath(a.model) if a.model else make_dev_model()
    engines = a.engines.split(",")
    ct2 = convert_ct2(model) if "ct2" in engines else None
    configs = [tuple(int(x) for x in c.split("x")) for c in a.configs.split(",")]
    ids_paths = {}
    for n in {a.sentences_b1 if b == 1 else a.sentences_batched for b, _ in configs}:
        p = os.path.join(WORK, f"source_ids_{n}.json")
        json.dump(tokenize_sources(model, n), open(p, "w"))
        ids_paths[n] = p
    load = os.getloadavg()
    results = {}
    for batch, beams in configs:
        ids_path = ids_paths[a.sentences_b1 if batch == 1 else a.sentences_batched]
        runs = {e: [] for e in engines}
        for r in range(a.rounds):
            for e in engines:
                m = measure(e, a, model, ct2, ids_path, batch, beams)
                runs[e].append(m)
                print(f"batch {batch:2d} beams {beams} round {r + 1} {e:8s} "
                      f"{m['tokens'] / m['s']:8.1f} tok/s ({m['tokens']} tokens in {m['s']:.2f} s,"
                      f" rss {m['rss_mb']:.0f} MB)", file=sys.stderr)
        res = {}
        for e in engines:
            rates = [m["tokens"] / m["s"] for m in runs[e]]
            res[e] = {"tokens_per_s": statistics.median(rates), "per_round": rates,
                      "generated_tokens": runs[e][0]["tokens"],
                      "rss_mb": statistics.median(m["rss_mb"] for m in runs[e])}
        for ref in ("hf", "ct2"):
            if "lmforge" in res and ref in res:
                res[f"lmforge_over_{ref}"] = res["lmforge"]["tokens_per_s"] / res[ref]["tokens_per_s"]
        if beams == 1 and "lmforge" in runs and "hf" in runs:
            lo, ho = runs["lmforge"][0]["output_ids"], runs["hf"][0]["output_ids"]
            res["greedy_ids_equal"] = sum(x == y for x, y in zip(lo, ho)) / max(1, len(lo))
        results[f"batch{batch}_beams{beams}"] = res
    load_end = os.getloadavg()

    summary = {"model": model, "threads": a.threads, "rounds": a.rounds,
               "new_tokens": a.new_tokens or f"until </s> (max {a.max_new_tokens})",
               "sentences_b1": a.sentences_b1, "sentences_batched": a.sentences_batched,
               "load_average_start": load[0], "load_average_end": load_end[0],
               "results": results}
    print(f"\nMarian translation, float32, {a.threads} threads, medians of {a.rounds} rounds, "
          f"load average {load[0]:.1f} -> {load_end[0]:.1f}")
    print(f"{'batch':>5s} {'beams':>5s} " + " ".join(f"{e + ' tok/s':>14s}" for e in engines) +
          "  ratios")
    for (batch, beams), (key, res) in zip(configs, results.items()):
        ratios = ", ".join(f"lmforge/{r} {res[f'lmforge_over_{r}']:.2f}x" for r in ("hf", "ct2")
                           if f"lmforge_over_{r}" in res)
        eq = f", greedy ids equal to transformers {res['greedy_ids_equal']:.0%}" \
            if "greedy_ids_equal" in res else ""
        print(f"{batch:5d} {beams:5d} " +
              " ".join(f"{res[e]['tokens_per_s']:14.1f}" for e in engines) + f"  {ratios}{eq}")
    if a.json_out:
        json.dump(summary, open(a.json_out, "w"), indent=2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
