#!/usr/bin/env python3
"""Marian tokenizer goldens: small SentencePiece models trained with the Python `sentencepiece`
trainer on a few hundred Multi30k lines, assembled into Marian folders (source.spm, target.spm,
vocab.json [+ target_vocab.json], tokenizer_config.json) and run through transformers'
MarianTokenizer (encode as source and as text_target, decode with and without special tokens).

Regenerate:  HF_HUB_OFFLINE=1 nice -n 19 python3 scripts/reference/gen_marian_tokenizer_goldens.py
(transformers 5.25, sentencepiece 0.2.x; no hub access). Inputs: the first 200 lines of
../shared/data/multi30k/train.{en,fr}, copied once into tests/fixtures/marian_tokenizer/corpus.{en,fr}
(first 200 lines; kept so the fixture does not depend on the shared data). Outputs, tests/fixtures/marian_tokenizer/:
  joint/     source unigram (vocab 400, coverage 0.9995, nmt_nfkc) + target BPE (vocab 400,
             coverage 1.0, identity normalization), one vocab.json: </s>, <unk>, source pieces,
             new target pieces, >>fr<<, >>de<<, <pad>
  separate/  separate_vocabs=True: vocab.json (source), target_vocab.json, tokenizer_config.json;
             the models are joint/'s (the test assembles the folder, as assemble() does here)
  extra/     joint vocab.json without <pad>, extra special tokens <sep> and >>fr<<,
             clean_up_tokenization_spaces=True (models from joint/ as for separate/)
  goldens.json  per folder: special ids, vocab size, encodings and decodes
"""
import json
import os
import shutil
import sys

import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "marian_tokenizer")
DATA = os.environ.get("MULTI30K_DIR") or next(
    (d for d in (os.path.join(os.path.dirname(ROOT), "shared", "data", "multi30k"),
               "/work/shared/data/multi30k") if os.path.isdir(d)), "")
N_LINES = 200

TEXTS = [
    "Two young, White males are outside near many bushes.",
    "Deux jeunes hommes blancs sont dehors près de buissons.",
    "Une fille branchée parle à son portable.",
    "Un homme sourit à un ours en peluche.",
    "Élève, garçon, œuvre, naïve, Noël, façade, où, déjà",
    "",
    " ",
    "   leading and trailing   ",
    "many     spaces\tand\ttabs\nand\nnewlines",
    "emoji 😀 and 🇫🇷 flags",
    "unknown chars: 日本語 Ω ∑ ß ł",
    ">>fr<< A man in a blue shirt.",
    ">>de<< Ein Mann.",
    ">>fr<<",
    ">>fr<<Un homme",
    ">>xx<< unknown language code",
    ">> not a code",
    "text >>fr<< in the middle",
    "a </s> b",
    "<unk> and <pad> in text",
    "end</s>",
    "ﬁne ＡＢＣ full-width ①",
    "l'homme qu'il aime, n'est-ce pas ?",
    "Numbers 12345 and 3.14!",
    "A DOG RUNS",
    "\u00a0non-breaking\u00a0space",
    "zero\u200bwidth",
    "a <sep> b >>fr<< c , d . e ?",
]

RANDOM_PARTS = ["<", ">", ">>", "<<", ">>fr<<", ">>xx<<", "</s>", "<pad>", "<unk", "s>", " ", "  ",
                "\t", "\n", "a", "man", "homme", "é", "É", "😀", "日", "\u00a0", "\u200b", "ﬁ",
                ".", ",", "A", "'", "?", "1"]


def random_texts(n=80, seed=1234):
    """Seeded mixes of the parts above (special-token fragments, codes, accents, whitespace)."""
    import random
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_PARTS) for _ in range(rng.randrange(12))) for _ in range(n)]


SPECIAL_DECODES = [
    # ids built from the vocab below (names resolved per folder)
    ["</s>"],
    ["<pad>", "<pad>"],
    ["<unk>"],
    [">>fr<<", "▁A", "▁man"],
    ["▁A", "<unk>", "▁man", "</s>", "<pad>"],
    ["▁un", "</s>", "▁homme", "</s>"],
]


def copy_corpus():
    os.makedirs(OUT, exist_ok=True)
    for lang in ("en", "fr"):
        dst = os.path.join(OUT, f"corpus.{lang}")
        if not os.path.exists(dst):
            with open(os.path.join(DATA, f"train.{lang}"), encoding="utf-8") as f:
                lines = [next(f) for _ in range(N_LINES)]
            with open(dst, "w", encoding="utf-8") as f:
                f.writelines(lines)


def train(lang, model_type, coverage, norm, prefix):
    # Relative paths from OUT: the model records its trainer_spec (input, model_prefix), so the
    # bytes are the same wherever the script runs.
    name = "_training_" + os.path.basename(prefix)
    cwd = os.getcwd()
    os.chdir(OUT)
    try:
        spm.SentencePieceTrainer.train(
            input=f"corpus.{lang}", model_prefix=name, vocab_size=400, model_type=model_type,
            character_coverage=coverage, normalization_rule_name=norm, num_threads=1,
            minloglevel=2)
    finally:
        os.chdir(cwd)
    os.replace(os.path.join(OUT, name + ".model"), prefix + ".spm")
    os.remove(os.path.join(OUT, name + ".vocab"))


def pieces(path):
    sp = spm.SentencePieceProcessor(model_file=path)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())
            if not (sp.is_control(i) or sp.is_unknown(i))]


def marian_vocab(piece_lists, codes):
    vocab = {"</s>": 0, "<unk>": 1}
    for ps in piece_lists:
        for p in ps:
            vocab.setdefault(p, len(vocab))
    for c in codes:
        vocab.setdefault(c, len(vocab))
    vocab.setdefault("<pad>", len(vocab))
    return vocab


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def make_folders(tmp):
    train("en", "unigram", 0.9995, "nmt_nfkc", os.path.join(tmp, "source"))
    train("fr", "bpe", 1.0, "identity", os.path.join(tmp, "target"))
    src, tgt = pieces(os.path.join(tmp, "source.spm")), pieces(os.path.join(tmp, "target.spm"))
    for name, separate in (("joint", False), ("separate", True)):
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        if not separate:  # separate/ borrows joint/'s models (assembled by the test)
            for f in ("source.spm", "target.spm"):
                shutil.copyfile(os.path.join(tmp, f), os.path.join(d, f))
        if separate:
            write_json(os.path.join(d, "vocab.json"), marian_vocab([src], []))
            write_json(os.path.join(d, "target_vocab.json"), marian_vocab([tgt], [">>fr<<"]))
        else:
            write_json(os.path.join(d, "vocab.json"), marian_vocab([src, tgt], [">>fr<<", ">>de<<"]))
        cfg = {"source_lang": "en", "target_lang": "fr", "separate_vocabs": separate,
               "tokenizer_class": "MarianTokenizer"}
        if separate:
            cfg["target_vocab_file"] = "target_vocab.json"
        write_json(os.path.join(d, "tokenizer_config.json"), cfg)
    # extra/: the joint vocab without <pad> (appended after the vocabulary), two extra special
    # tokens (<sep> not in the vocab, >>fr<< in it) and clean_up_tokenization_spaces.
    d = os.path.join(OUT, "extra")
    os.makedirs(d, exist_ok=True)
    v = marian_vocab([src, tgt], [">>fr<<", ">>de<<"])
    del v["<pad>"]
    write_json(os.path.join(d, "vocab.json"), v)
    write_json(os.path.join(d, "tokenizer_config.json"),
               {"source_lang": "en", "target_lang": "fr", "separate_vocabs": False,
                "additional_special_tokens": ["<sep>", ">>fr<<"],
                "clean_up_tokenization_spaces": True})


def assemble(name, tmp):
    """The folder as the C++ test assembles it: name/'s JSON files + joint/'s models."""
    d = os.path.join(tmp, name)
    os.makedirs(d)
    for src in (os.path.join(OUT, "joint"), os.path.join(OUT, name)):
        for f in os.listdir(src):
            if f.endswith(".spm") or src.endswith(name):
                shutil.copyfile(os.path.join(src, f), os.path.join(d, f))
    return d


def goldens_for(name, tmp):
    from transformers import MarianTokenizer
    tok = MarianTokenizer.from_pretrained(assemble(name, tmp))
    g = {"pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id,
         "unk_token_id": tok.unk_token_id, "vocab_size": tok.vocab_size, "len": len(tok),
         "encodings": [], "decodes": []}
    for t in TEXTS + (random_texts() if name == "joint" else []):
        src = tok(t)["input_ids"]
        tgt = tok(text_target=t)["input_ids"]
        g["encodings"].append({"text": t, "source_ids": src, "target_ids": tgt,
                               "source_tokens": tok.tokenize(t)})
        for ids in (src, tgt):
            for skip in (True, False):
                g["decodes"].append({"ids": ids, "skip_special_tokens": skip,
                                     "text": tok.decode(ids, skip_special_tokens=skip)})
    vocab = tok.encoder
    for toks in SPECIAL_DECODES:
        ids = [vocab.get(t, tok.unk_token_id) for t in toks]
        for skip in (True, False):
            g["decodes"].append({"ids": ids, "skip_special_tokens": skip,
                                 "text": tok.decode(ids, skip_special_tokens=skip)})
    # every id once, in runs of 7, exercises every piece's decode
    n = len(tok.decoder) if name == "joint" else 0
    for start in range(0, n, 7):
        ids = list(range(start, min(n, start + 7)))
        g["decodes"].append({"ids": ids, "skip_special_tokens": False,
                             "text": tok.decode(ids, skip_special_tokens=False)})
    batch = tok(TEXTS[:4], text_target=TEXTS[:4], padding=True)
    g["batch"] = {"texts": TEXTS[:4], "input_ids": batch["input_ids"],
                  "attention_mask": batch["attention_mask"], "labels": batch["labels"]}
    return g


def main():
    import tempfile
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    copy_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        make_folders(tmp)
    with tempfile.TemporaryDirectory() as tmp:
        g = {name: goldens_for(name, tmp) for name in ("joint", "separate", "extra")}
    with open(os.path.join(OUT, "goldens.json"), "w", encoding="utf-8") as f:
        json.dump(g, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
