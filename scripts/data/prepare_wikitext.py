#!/usr/bin/env python3
"""Turns raw WikiText-2 files (the word-level text of Merity et al. 2016, CC BY-SA 3.0, as
committed in the public repository pytorch/examples under word_language_model/data/wikitext-2/)
into lmforge's pretraining text format: one sentence per line, a blank line between documents
(one Wikipedia article = one document). WikiText's tokenisation is undone where it is cheap
(" @-@ " -> "-", " @,@ " -> ",", " @.@ " -> ".", spaces before punctuation); <unk> is kept.

Usage: python3 scripts/data/prepare_wikitext.py RAW.txt OUT.txt
"""
import re
import sys


def detok(s):
    s = s.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    s = re.sub(r" ([.,;:!?)\]'])", r"\1", s)
    s = re.sub(r"([(\[]) ", r"\1", s)
    s = s.replace(" n't", "n't").replace(" 's", "'s")
    return s.strip()


def sentences(par):
    # WikiText separates tokens by spaces; a sentence ends at " . " / " ! " / " ? ".
    parts = re.split(r"(?<= [.!?]) (?=[A-Z\"'(])", " " + par.strip() + " ")
    return [detok(p) for p in parts if len(p.split()) >= 3]


def main():
    raw, out = sys.argv[1], sys.argv[2]
    docs, cur = [], []
    for line in open(raw, encoding="utf-8"):
        line = line.strip()
        if not line:
            continue
        if re.fullmatch(r"= [^=].* =", line):  # a new article
            if cur:
                docs.append(cur)
            cur = []
            continue
        if line.startswith("= ="):  # section heading
            continue
        cur.extend(sentences(line))
    if cur:
        docs.append(cur)
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n\n".join("\n".join(d) for d in docs) + "\n")
    print(f"{out}: {len(docs)} documents, {sum(map(len, docs))} sentences")


if __name__ == "__main__":
    main()
