#!/usr/bin/env python3
"""Goldens for `lmforge tokenizer train` (tests/fixtures/tokenizer_train/).

Part "spm": the Python sentencepiece trainer on the committed Multi30k lines
(tests/fixtures/marian_tokenizer/corpus.{en,fr}) with several option sets; records every piece,
score and type -> spm_goldens.json. Use the sentencepiece release that lmforge links (Debian
libsentencepiece 0.1.97): 0.2.x changed the unigram trainer (same options, other scores); its BPE
trainer still gives identical models.
  python3 -m venv /tmp/spmvenv && /tmp/spmvenv/bin/pip install sentencepiece==0.1.97
  nice -n 19 /tmp/spmvenv/bin/python scripts/reference/gen_tokenizer_train_goldens.py spm

Part "marian": transformers' MarianTokenizer (5.25) on the folder that lmforge wrote,
tests/fixtures/tokenizer_train/marian/, made by
  build/lmforge tokenizer train --marian --vocab-size 300 --num-threads 1 \\
    --normalization identity --language-code '>>fr<<' --source-lang en --target-lang fr \\
    tests/fixtures/marian_tokenizer/corpus.en \\
    --target-files tests/fixtures/marian_tokenizer/corpus.fr -o tests/fixtures/tokenizer_train/marian
records encodings / decodes and what save_pretrained writes (vocab.json, tokenizer_config.json)
-> marian_goldens.json.
  HF_HUB_OFFLINE=1 nice -n 19 python3 scripts/reference/gen_tokenizer_train_goldens.py marian
"""
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer_train")
CORPUS = os.path.join(ROOT, "tests", "fixtures", "marian_tokenizer")

# (name, input files, keyword arguments of SentencePieceTrainer.train)
CASES = [
    ("unigram_en", ["corpus.en"], {"model_type": "unigram", "vocab_size": 400, "num_threads": 1}),
    ("bpe_fr", ["corpus.fr"], {"model_type": "bpe", "vocab_size": 300, "character_coverage": 1.0,
                               "user_defined_symbols": [">>fr<<", "<sep>"], "pad_id": 3,
                               "normalization_rule_name": "identity"}),
    ("unigram_both_defaults", ["corpus.en", "corpus.fr"],
     {"vocab_size": 500, "character_coverage": 1.0, "byte_fallback": True, "split_digits": True}),
]

TEXTS = ["A man in a blue shirt.", "Un homme en chemise bleue.", "", "Élève 😀 日本語 ωx",
         ">>fr<< Deux chiens courent.", "  spaces   here  ", "a </s> b <unk> <pad>"]


def spm_part():
    import sentencepiece as spm
    g = {"sentencepiece_version": spm.__version__, "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name, files, kw in CASES:
            prefix = os.path.join(tmp, name)
            spm.SentencePieceTrainer.train(input=",".join(os.path.join(CORPUS, f) for f in files),
                                           model_prefix=prefix, minloglevel=1, **kw)
            sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
            n = sp.get_piece_size()
            g["cases"].append({
                "name": name, "files": files, "options": kw,
                "pieces": [sp.id_to_piece(i) for i in range(n)],
                "scores": [sp.get_score(i) for i in range(n)],
                "types": ["control" if sp.is_control(i) else "unknown" if sp.is_unknown(i) else
                          "byte" if sp.is_byte(i) else "unused" if sp.is_unused(i) else "normal"
                          for i in range(n)],
                "ids": {"unk": sp.unk_id(), "bos": sp.bos_id(), "eos": sp.eos_id(),
                        "pad": sp.pad_id()}})
    with open(os.path.join(OUT, "spm_goldens.json"), "w", encoding="utf-8") as f:
        json.dump(g, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def marian_part():
    from transformers import MarianTokenizer
    d = os.path.join(OUT, "marian")
    tok = MarianTokenizer.from_pretrained(d)
    g = {"vocab_size": tok.vocab_size, "pad_token_id": tok.pad_token_id,
         "eos_token_id": tok.eos_token_id, "unk_token_id": tok.unk_token_id, "encodings": []}
    for t in TEXTS:
        src, tgt = tok(t)["input_ids"], tok(text_target=t)["input_ids"]
        g["encodings"].append({"text": t, "source_ids": src, "target_ids": tgt,
                               "decoded": tok.decode(tgt, skip_special_tokens=True),
                               "decoded_special": tok.decode(tgt, skip_special_tokens=False)})
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        for f in ("vocab.json", "tokenizer_config.json"):
            with open(os.path.join(tmp, f), encoding="utf-8") as fh:
                text = fh.read()
            if f == "tokenizer_config.json":  # loading-time keys, not part of the saved tokenizer
                cfg = json.loads(text)
                for k in ("is_local", "local_files_only"):
                    cfg.pop(k, None)
                text = json.dumps(cfg, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            g["saved_" + f.replace(".", "_")] = text
    with open(os.path.join(OUT, "marian_goldens.json"), "w", encoding="utf-8") as f:
        json.dump(g, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    part = sys.argv[1] if len(sys.argv) > 1 else ""
    if part == "spm":
        spm_part()
    elif part == "marian":
        marian_part()
    else:
        sys.exit("usage: gen_tokenizer_train_goldens.py spm|marian")
