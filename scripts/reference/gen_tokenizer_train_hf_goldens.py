#!/usr/bin/env python3
"""Goldens for `lmforge tokenizer train --type bpe|byte-bpe|wordpiece|unigram`
(tests/fixtures/tokenizer_train/hf/): HF `tokenizers` (0.23.3) trains each case on corpus.txt;
writes hf/<case>/tokenizer.json (what HF's trainer made) and hf_goldens.json (the cases' options,
the encodings of heldout.txt by HF's tokenizer, and for the kinds whose HF trainer is not
deterministic (its 20 runs differ) the spread over those runs).

corpus.txt / heldout.txt are made from $MULTI30K (default /work/shared/data/multi30k) by `make-corpus` (lines 1001-1400
of train.en, Unicode / empty / CRLF lines, lines 1401-1500 of train.de; val.en lines 1-40 and edge
cases). Regenerate:
  nice -n 19 python3 scripts/reference/gen_tokenizer_train_hf_goldens.py make-corpus  # once
  nice -n 19 python3 scripts/reference/gen_tokenizer_train_hf_goldens.py
"""
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer_train")
CORPUS = os.path.join(OUT, "corpus.txt")
HELDOUT = os.path.join(OUT, "heldout.txt")
DATA = os.environ.get("MULTI30K", "/work/shared/data/multi30k")
RUNS = 20 # HF runs per non-deterministic case

# Options as lmforge's HfTrainOptions names them (tokenizers/train_hf.h).
CASES = [
    ("bpe", {"type": "bpe", "vocab_size": 600}),
    ("bpe_options", {"type": "bpe", "vocab_size": 500, "min_frequency": 3,
                     "special_tokens": ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"],
                     "continuing_subword_prefix": "##", "end_of_word_suffix": "</w>",
                     "initial_alphabet": ["q", "\u00e6"]}),
    ("byte_bpe", {"type": "byte-bpe", "vocab_size": 600, "special_tokens": ["<|endoftext|>"]}),
    ("byte_bpe_roberta", {"type": "byte-bpe", "vocab_size": 700, "min_frequency": 2,
                          "add_prefix_space": True,
                          "special_tokens": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]}),
    ("wordpiece", {"type": "wordpiece", "vocab_size": 600}),
    ("wordpiece_cased", {"type": "wordpiece", "vocab_size": 500, "min_frequency": 2,
                         "lowercase": False}),
    ("bpe_limits", {"type": "bpe", "vocab_size": 5000, "min_frequency": 2, "max_token_length": 3,
                    "limit_alphabet": 60}),
    ("unigram", {"type": "unigram", "vocab_size": 400}),
    ("unigram_options", {"type": "unigram", "vocab_size": 300, "special_tokens": ["<pad>", "<unk>"],
                         "shrinking_factor": 0.5, "n_sub_iterations": 3, "max_piece_length": 6}),
]

DEFAULT_SPECIALS = {"bpe": ["[UNK]"], "byte-bpe": [], "unigram": ["<unk>"],
                    "wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]}


def make_corpus():
    def lines(f, a, b):
        with open(os.path.join(DATA, f), encoding="utf-8") as fh:
            return fh.read().split("\n")[a - 1:b]
    with open(CORPUS, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines("train.en", 1001, 1400)) + "\n\n")
        f.write("\u00c9l\u00e8ve na\u00efve caf\u00e9 \u2014 \u201cquoted\u201d \u00bd \ufb01ne\n")
        f.write("\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002\u4e2d\u6587\u5b57\u7b26\n\n")
        f.write("Emoji \U0001F600 and tabs\there, CAPS and numbers 12345 3.14\n")
        f.write("\u00dcn\u00efc\u00f6d\u00e9 \u0152UVRE stra\u00dfe \u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3\r\n")
        f.write("\n".join(lines("train.de", 1401, 1500)) + "\n")
        f.write("  leading and trailing spaces   ")  # no final newline
    with open(HELDOUT, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines("val.en", 1, 40)) + "\n")
        f.write("\n".join(["Unseen words: xylophone quizzically zebra's", "\u00c9l\u00e8ve 😀 "
                           "\u65e5\u672c ωx \u00bd", "ALL CAPS, digits 0987 and (punctuation)!?",
                           "  spaces   here  ", "[CLS] a [MASK] b <s> </s> <|endoftext|>",
                           "Ein Hund l\u00e4uft \u00fcber die Stra\u00dfe."]) + "\n")


def build(o):
    kind = o["type"]
    specials = o.get("special_tokens", DEFAULT_SPECIALS[kind])
    kw = dict(vocab_size=o["vocab_size"], special_tokens=specials, show_progress=False)
    if kind != "unigram":
        kw["min_frequency"] = o.get("min_frequency", 0)
        for k in ("limit_alphabet", "continuing_subword_prefix", "end_of_word_suffix",
                  "max_token_length"):
            if k in o:
                kw[k] = o[k]
        kw["initial_alphabet"] = list(o.get("initial_alphabet", []))
    if kind in ("bpe", "byte-bpe"):
        unk = "[UNK]" if kind == "bpe" and "[UNK]" in specials else None
        mkw = {k: o[k] for k in ("continuing_subword_prefix", "end_of_word_suffix") if k in o}
        if unk:
            mkw["unk_token"] = unk
        t = Tokenizer(models.BPE(**mkw))
        if kind == "bpe":
            t.pre_tokenizer = pre_tokenizers.Whitespace()
        else:
            t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=o.get("add_prefix_space", False))
            t.decoder = decoders.ByteLevel()
            t.post_processor = processors.ByteLevel(trim_offsets=False)
            kw["initial_alphabet"] += pre_tokenizers.ByteLevel.alphabet()
        tr = trainers.BpeTrainer(**kw)
    elif kind == "wordpiece":
        t = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        t.normalizer = normalizers.BertNormalizer(lowercase=o.get("lowercase", True))
        t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        t.decoder = decoders.WordPiece(prefix="##")
        tr = trainers.WordPieceTrainer(**kw)
    else:
        for k in ("shrinking_factor", "n_sub_iterations", "max_piece_length"):
            if k in o:
                kw[k] = o[k]
        t = Tokenizer(models.Unigram())
        t.pre_tokenizer = pre_tokenizers.Metaspace()
        t.decoder = decoders.Metaspace()
        tr = trainers.UnigramTrainer(unk_token="<unk>", **kw)
    t.train([CORPUS], tr)
    if kind == "wordpiece":
        t.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", t.token_to_id("[CLS]")), ("[SEP]", t.token_to_id("[SEP]"))])
    return t


def vocab_list(t):
    j = json.loads(t.to_str())["model"]["vocab"]
    if isinstance(j, list):
        return [p for p, _ in j]
    return [k for k, _ in sorted(j.items(), key=lambda kv: kv[1])]


def main():
    import tokenizers
    with open(HELDOUT, encoding="utf-8") as f:
        held = f.read().split("\n")[:-1]
    g = {"tokenizers_version": tokenizers.__version__, "cases": []}
    for name, o in CASES:
        t = build(o)
        d = os.path.join(OUT, "hf", name)
        os.makedirs(d, exist_ok=True)
        t.save(os.path.join(d, "tokenizer.json"))
        case = {"name": name, "options": o, "encodings": []}
        for line in held:
            e = t.encode(line)
            case["encodings"].append({"text": line, "ids": e.ids, "tokens": e.tokens,
                                      "offsets": [list(x) for x in e.offsets],
                                      "decoded": t.decode(e.ids)})
        e = t.encode(held[0], held[1])
        case["pair"] = {"text": held[0], "pair": held[1], "ids": e.ids, "type_ids": e.type_ids}
        # HF's trainers are deterministic for some options only (hash-map order gives prefixed
        # chars their ids; Unigram sums floats in parallel): RUNS runs decide.
        others = [build(o) for _ in range(RUNS - 1)]
        if any(x.to_str() != t.to_str() for x in others):
            runs = [vocab_list(t)] + [vocab_list(x) for x in others]
            same = 0
            while all(same < len(r) for r in runs) and len({r[same] for r in runs}) == 1:
                same += 1
            sets = [set(r) for r in runs]
            case["spread"] = {"runs": RUNS, "same_prefix": runs[0][:same],
                              "in_all_runs": sorted(set.intersection(*sets)),
                              "in_some_run": sorted(set.union(*sets)),
                              "sizes": sorted({len(r) for r in runs})}
        g["cases"].append(case)
        print(name, len(vocab_list(t)), file=sys.stderr)
    with open(os.path.join(OUT, "hf_goldens.json"), "w", encoding="utf-8") as f:
        json.dump(g, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["make-corpus"]:
        make_corpus()
    else:
        main()
