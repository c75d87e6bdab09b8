#!/usr/bin/env python3
"""Checks `lmforge tokenizer train` (HF kinds) against HF `tokenizers` end to end: for every case
of gen_tokenizer_train_hf_goldens.py, trains with the lmforge CLI on corpus.txt, then
  - compares the vocabulary / merges with HF's trainer (hf/<case>/tokenizer.json): exactly for
    bpe and byte-bpe; for wordpiece / unigram (HF's runs differ among themselves) against the
    spread of HF runs recorded in hf_goldens.json;
  - loads lmforge's tokenizer.json with HF's Tokenizer.from_file and encodes heldout.txt and
    corpus.txt with it, and with `lmforge tokenize --json` on the same file: ids and tokens equal.
Exit status 1 on any difference. Run (after building the lmforge CLI):
  nice -n 19 python3 scripts/reference/check_tokenizer_train_hf.py [build/lmforge]
"""
import json
import os
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FX = os.path.join(ROOT, "tests", "fixtures", "tokenizer_train")


def cli_args(o):
    a = ["--type", o["type"], "--vocab-size", str(o["vocab_size"]), "--quiet"]
    if "min_frequency" in o:
        a += ["--min-frequency", str(o["min_frequency"])]
    if "special_tokens" in o:
        a += ["--special-tokens", ",".join(o["special_tokens"])] if o["special_tokens"] else ["--no-special-tokens"]
    for k in ("continuing_subword_prefix", "end_of_word_suffix", "limit_alphabet",
              "max_token_length", "shrinking_factor", "n_sub_iterations", "max_piece_length"):
        if k in o:
            a += ["--" + k.replace("_", "-"), str(o[k])]
    if o.get("initial_alphabet"):
        a += ["--initial-alphabet", ",".join(o["initial_alphabet"])]
    if o.get("lowercase") is False:
        a += ["--no-lowercase"]
    if o.get("add_prefix_space"):
        a += ["--add-prefix-space"]
    return a


def vocab_list(j):
    v = j["model"]["vocab"]
    return [p for p, _ in v] if isinstance(v, list) else [k for k, _ in sorted(v.items(), key=lambda kv: kv[1])]


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "lmforge")
    g = json.load(open(os.path.join(FX, "hf_goldens.json"), encoding="utf-8"))
    bad = 0
    for case in g["cases"]:
        name, o = case["name"], case["options"]
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([exe, "tokenizer", "train", *cli_args(o), os.path.join(FX, "corpus.txt"),
                            "-o", tmp], check=True, stdout=subprocess.DEVNULL)
            path = os.path.join(tmp, "tokenizer.json")
            ours = json.load(open(path, encoding="utf-8"))
            hf = json.load(open(os.path.join(FX, "hf", name, "tokenizer.json"), encoding="utf-8"))
            uv, hv = vocab_list(ours), vocab_list(hf)
            if "spread" not in case:
                um = [tuple(m) for m in ours["model"]["merges"]]
                hm = [tuple(m) for m in hf["model"]["merges"]]
                vocab_ok = uv == hv and um == hm
                what = f"vocab {len(uv)} and merges {len(um)} identical to HF's"
            else:
                s = case["spread"]
                us = set(uv)
                vocab_ok = (uv[:len(s["same_prefix"])] == s["same_prefix"] and
                            set(s["in_all_runs"]) <= us <= set(s["in_some_run"]) and
                            len(uv) in s["sizes"])
                what = (f"vocab {len(uv)}: within the spread of {s['runs']} HF runs "
                        f"({len(us - set(s['in_all_runs']))} of its tokens are not in all of them)")
                if o["type"] == "unigram":
                    # Scores as HF's (EM sums in another order: 1e-9); HF gives the chars the
                    # final model lacks min_score + k * 1e-4 in hash order, so those are compared
                    # as a sorted list.
                    hs = dict(hf["model"]["vocab"])
                    worst = max(abs(sc - hs[p]) for p, sc in ours["model"]["vocab"] if len(p) > 1 and p in hs)
                    srt = max(abs(a - b) for a, b in zip(sorted(v for _, v in ours["model"]["vocab"]),
                                                          sorted(v for _, v in hf["model"]["vocab"])))
                    vocab_ok = vocab_ok and worst <= 1e-9 and srt <= 1e-9
                    what += f"; scores: multi-char pieces within {worst:.1e}, sorted within {srt:.1e}"
            t = Tokenizer.from_file(path)
            n = diff = 0
            for f in ("heldout.txt", "corpus.txt"):
                fp = os.path.join(FX, f)
                texts = open(fp, encoding="utf-8", newline="").read().split("\n")
                if texts[-1] == "":
                    texts.pop()
                out = subprocess.run([exe, "tokenize", "--model", tmp, "--json", "--file", fp],
                                     check=True, capture_output=True, text=True).stdout.splitlines()
                if len(out) != len(texts):
                    print(f"{name}: {f}: lmforge printed {len(out)} lines for {len(texts)} texts")
                    diff += 1
                    continue
                for text, line in zip(texts, out):
                    # `lmforge tokenize --file` drops a line's \r as part of its ending
                    e, l = t.encode(text.rstrip("\r")), json.loads(line)
                    n += 1
                    if e.ids != l["ids"] or e.tokens != l["tokens"]:
                        diff += 1
                        if diff <= 3:
                            print(f"  {name}: {text!r}: HF {e.tokens} lmforge {l['tokens']}")
            ok = vocab_ok and diff == 0
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name}: {what if vocab_ok else 'VOCAB DIFFERS'}; "
                  f"HF loads lmforge's tokenizer.json and encodes {n - diff}/{n} texts identically")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
