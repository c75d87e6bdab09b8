#!/usr/bin/env python3
"""BLEU / chrF goldens: sacrebleu's corpus_bleu, corpus_chrf, sentence_bleu, sentence_chrf and
its 13a tokenizer on small made-up corpora (English, French accents and typographic spaces, CJK,
emoji, empty and blank lines, perfect match, no overlap, several references, short and long
hypotheses, seeded random strings of tricky characters) and on 200 lines of Multi30k
test_2016_flickr.fr (non-commercial research and education licence, ../shared/data/README.md)
with hypotheses made from the references by seeded word drops, swaps and substitutions.

Regenerate (needs `pip install sacrebleu`, 2.x; deterministic, no network):
    python3 scripts/reference/gen_bleu_goldens.py [--data ../shared/data/multi30k]
Writes tests/fixtures/bleu/goldens.json (the scores with all their fields, sacrebleu's 13a
tokenization of every made-up segment) and each case's segments as <case>/hyp.txt and
<case>/ref<k>.txt, one segment per line (inline in goldens.json instead for a case whose segments
hold a newline or carriage return). tests/tasks/test_bleu.cpp and tests/cli/test_bleu_cli.sh
compare lmforge with them.
"""
import argparse
import json
import random
from pathlib import Path

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "bleu"


def bleu_dict(s, formatted=False):
    d = {"score": s.score, "counts": list(s.counts), "totals": list(s.totals),
         "precisions": list(s.precisions), "bp": s.bp, "sys_len": s.sys_len,
         "ref_len": s.ref_len, "ratio": s.ratio}
    if formatted:
        d["formatted"] = str(s)
    return d


def chrf_dict(s, metric, hyps, refs, formatted=False):
    stats = metric._extract_corpus_statistics(hyps, refs)
    total = [0] * len(stats[0])
    for st in stats:
        total = [a + b for a, b in zip(total, st)]
    d = {"score": s.score, "name": s.name, "stats": total}
    if formatted:
        d["formatted"] = str(s)
    return d


# Options as passed to lmforge (names of tasks::BleuOptions / ChrfOptions).
BLEU_VARIANTS = [
    {"tokenize": "none"},
    {"smooth": "none"},
    {"smooth": "floor"},
    {"smooth": "floor", "smooth_value": 0.5},
    {"smooth": "add-k"},
    {"smooth": "add-k", "smooth_value": 2},
    {"max_ngram_order": 2},
    {"max_ngram_order": 6},
    {"effective_order": True},
]
CHRF_VARIANTS = [
    {"word_order": 2},
    {"eps_smoothing": True},
    {"whitespace": True},
    {"char_order": 3, "beta": 1},
    {"word_order": 2, "eps_smoothing": True, "beta": 3},
]


def bleu_metric(v):
    return BLEU(tokenize=v.get("tokenize", "13a"), smooth_method=v.get("smooth", "exp"),
                smooth_value=v.get("smooth_value"), max_ngram_order=v.get("max_ngram_order", 4),
                effective_order=v.get("effective_order", False))


def chrf_metric(v):
    return CHRF(char_order=v.get("char_order", 6), word_order=v.get("word_order", 0),
                beta=v.get("beta", 2), whitespace=v.get("whitespace", False),
                eps_smoothing=v.get("eps_smoothing", False))


def score_case(name, hyps, refs, sentences=0):
    """sentences: how many leading segments also get sentence_bleu / sentence_chrf goldens."""
    assert all(len(r) == len(hyps) for r in refs)
    case = {"name": name, "hyps": hyps, "refs": refs}
    case["bleu"] = bleu_dict(sacrebleu.corpus_bleu(hyps, refs), formatted=True)
    chrf = sacrebleu.corpus_chrf(hyps, refs)
    case["chrf"] = chrf_dict(chrf, CHRF(), hyps, refs, formatted=True)
    case["bleu_variants"] = [
        {"options": v, **bleu_dict(bleu_metric(v).corpus_score(hyps, refs))} for v in BLEU_VARIANTS]
    case["chrf_variants"] = []
    for v in CHRF_VARIANTS:
        m = chrf_metric(v)
        case["chrf_variants"].append({"options": v, **chrf_dict(m.corpus_score(hyps, refs), m, hyps, refs)})
    if sentences:
        case["sentence_bleu"] = [bleu_dict(sacrebleu.sentence_bleu(h, [r[i] for r in refs]))
                                 for i, h in enumerate(hyps[:sentences])]
        case["sentence_chrf"] = [sacrebleu.sentence_chrf(h, [r[i] for r in refs]).score
                                 for i, h in enumerate(hyps[:sentences])]
    return case


def made_up_cases():
    en_ref = [
        "The cat sat on the mat.",
        "It costs $3.50, or 1,000 yen (roughly).",
        "She said: \"Don't go there!\" and left -- quickly.",
        "Results for 2019-2020 were 5.5% better; see www.example.com/page?id=7.",
        "Tom & Jerry &amp; friends <b>laughed</b> at the 3-4 jokes.",
    ]
    en_hyp = [
        "The cat sat on a mat.",
        "It costs $3.50 or 1,000 yen, roughly.",
        "She said \"Don't go there\" and left quickly.",
        "The results for 2019-2020 were 5.5 % better, see www.example.com/page?id=7",
        "Tom &amp; Jerry & friends <b>laughed</b> at 3-4 jokes...",
    ]
    fr_ref = [
        "L'homme âgé porte un chapeau rouge\u00a0!",
        "Où est la gare\u202f? Elle est là-bas, près de l'église.",
        "« Bonjour », dit-elle à l'élève.",
        "Deux garçons jouent au football sur la plage à Noël.",
        "Ça coûte 12,50\u00a0€ — c'est cher.",
    ]
    fr_hyp = [
        "L'homme agé porte un chapeau rouge !",
        "Où est la gare ? Elle est là bas près de l'église.",
        "\"Bonjour\", dit elle à l'élève.",
        "Deux garçons jouent au foot sur la plage à Noël.",
        "Ça coûte 12,50 € - c'est cher.",
    ]
    cjk_ref = [
        "我爱自然语言处理。",
        "東京は日本の首都です。",
        "오늘 날씨가 좋네요 😀",
        "Emoji 🎉🎉 party 👩‍👩‍👧 family",
        "混合 text 与 English, ok?",
    ]
    cjk_hyp = [
        "我喜欢自然语言处理。",
        "東京は日本の首都です。",
        "오늘 날씨가 좋아요 😀",
        "Emoji 🎉 party 👩‍👩‍👧 family!",
        "混合 text 和 English ok?",
    ]
    empty_ref = ["a man is walking", "", "   ", "\t", "two dogs play in the snow", "", "x"]
    empty_hyp = ["a man walks", "something", "", "   ", "", "", " x "]
    ws_ref = [
        "word\u3000ideographic\u2028line sep\u0085nel\x1cfs\x1fus end",
        "zero\u200bwidth is not a space",
        "no-break\u00a0space and\u2009thin",
        "trailing spaces   \u3000",
    ]
    ws_hyp = [
        "word ideographic line sep nel fs us end",
        "zero\u200bwidth is not a space",
        "no-break space and thin",
        "trailing spaces",
    ]
    multi_refs = [
        ["The cat is on the mat.", "A quick brown fox jumps.", "He reads a book every night."],
        ["There is a cat on the mat.", "The fast brown fox jumped.", "Every night he reads a book."],
        ["A cat sits on the mat.", "", "Each night, he reads books."],
    ]
    multi_hyp = ["The cat sits on the mat.", "A fast brown fox jumps over.", "He reads books."]
    cases = [
        score_case("english", en_hyp, [en_ref], sentences=99),
        score_case("french_unicode", fr_hyp, [fr_ref], sentences=99),
        score_case("cjk_emoji", cjk_hyp, [cjk_ref], sentences=99),
        score_case("empty_lines", empty_hyp, [empty_ref], sentences=99),
        score_case("unicode_whitespace", ws_hyp, [ws_ref], sentences=99),
        score_case("perfect", en_ref + fr_ref, [en_ref + fr_ref]),
        score_case("no_overlap", ["alpha beta gamma delta", "epsilon zeta"],
                   [["one two three four five", "six seven"]], sentences=99),
        score_case("multi_ref", multi_hyp, multi_refs, sentences=99),
        score_case("short_hyps", ["a b", "c", "a b c"], [["a b c d e", "c d", "a b c d"]],
                   sentences=99),
        score_case("long_hyps", ["the cat sat on the mat on the mat today ok", "yes yes yes"],
                   [["the cat sat on the mat", "yes"]], sentences=99),
        score_case("all_empty_hyps", ["", " ", ""], [["a b c", "d", ""]], sentences=99),
        score_case("all_empty", ["", ""], [["", ""]]),
        score_case("unigram_only", ["z a y b x c w", "q"], [["a b c d e f g", "q r"]],
                   sentences=99),
        score_case("markup_13a", [
            "line with <skipped> marker and hy-\nphen\nbreak",
            "&quot;quoted&quot; &amp;lt; less &gt; more &amp;amp;",
            "x.y 1.5 a,b 3,4 .5 ,z 9- -9 a- 1-2-3 ...,,, 2.. ,.",
            "trailing newline-\n",
        ], [[
            "line with marker and hyphen break",
            "\"quoted\" < less > more &amp;",
            "x . y 1.5 a , b 3,4 .5 , z 9 - -9 a- 1-2-3 ...",
            "trailing newline",
        ]], sentences=99),
    ]
    return cases


def random_case(rng):
    alphabet = (list("abcxyz ABC019 .,-'\"&;<>()[]{}/\\:@!?#$%^*_=+`~|") +
                ["é", "ß", "ø", "中", "文", "😀", "🎉", "\u00a0", "\u3000", "\u2028", "\u0085",
                 "\x1c", "\x1f", "\t", "\u200b", "\u0301", "\u2009", "&amp;", "&quot;", "<skipped>",
                 "  "])
    hyps, refs = [], []
    for _ in range(40):
        ref = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        chars = list(ref)
        for _ in range(rng.randint(0, 6)):
            if chars:
                chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        hyps.append("".join(chars))
        refs.append(ref)
    return score_case("random_chars", hyps, [refs], sentences=12)


def perturb(words, rng, pool):
    out = []
    for w in words:
        r = rng.random()
        if r < 0.12:
            continue  # drop
        if r < 0.17:
            out.append(rng.choice(pool))  # substitute
            continue
        out.append(w)
    for _ in range(rng.randint(0, 2)):  # swaps
        if len(out) > 1:
            i = rng.randrange(len(out) - 1)
            out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out)


def multi30k_cases(data_dir):
    lines = (Path(data_dir) / "test_2016_flickr.fr").read_text(encoding="utf-8").split("\n")[:200]
    assert len(lines) == 200 and all(lines)
    rng = random.Random(1234)
    pool = sorted({w for line in lines for w in line.split()})
    hyps = []
    for i, ref in enumerate(lines):
        if i % 50 == 17:
            hyps.append("")  # an empty system output
        elif i % 40 == 3:
            hyps.append(ref)  # an exact match
        else:
            hyps.append(perturb(ref.split(), rng, pool))
    ref2 = [perturb(ref.split(), rng, pool) for ref in lines]
    return [score_case("multi30k_fr_200", hyps, [lines]),
            score_case("multi30k_fr_200_2refs", hyps, [lines, ref2])]


def tokenizer_cases(cases):
    tok = Tokenizer13a()
    texts = []
    for c in cases:
        texts += c["hyps"] + [r for stream in c["refs"] for r in stream]
    texts = sorted(set(texts))
    return [[t, tok(t)] for t in texts]


def write_files(case, folder=None):
    """Moves the case's segments to text files (one per stream) unless one holds a newline or a
    carriage return; `folder` lets cases share files (written once)."""
    segs = case["hyps"] + [r for s in case["refs"] for r in s]
    if any("\n" in s or "\r" in s for s in segs):
        return
    folder = folder or case["name"]
    d = OUT / folder
    d.mkdir(parents=True, exist_ok=True)
    names = ["hyp.txt"] + [f"ref{k}.txt" for k in range(len(case["refs"]))]
    for name, lines in zip(names, [case["hyps"]] + case["refs"]):
        (d / name).write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
    case["files"] = {"hyp": f"{folder}/hyp.txt", "refs": [f"{folder}/{n}" for n in names[1:]]}
    del case["hyps"], case["refs"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "multi30k"))
    args = ap.parse_args()
    if not Path(args.data).exists():
        args.data = "/work/shared/data/multi30k"
    cases = made_up_cases() + [random_case(random.Random(7))] + multi30k_cases(args.data)
    OUT.mkdir(parents=True, exist_ok=True)
    tokenized = tokenizer_cases([c for c in cases if not c["name"].startswith("multi30k")])
    for c in cases:
        write_files(c, "multi30k_fr_200" if c["name"].startswith("multi30k") else None)
    dump = lambda x: json.dumps(x, ensure_ascii=False)  # noqa: E731
    text = (f'{{"sacrebleu_version": {dump(sacrebleu.__version__)},\n"cases": [\n' +
            ",\n".join(dump(c) for c in cases) + '],\n"tokenize_13a": [\n' +
            ",\n".join(dump(t) for t in tokenized) + "]}\n")
    assert json.loads(text)["cases"] == cases
    (OUT / "goldens.json").write_text(text, encoding="utf-8")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
