#!/usr/bin/env python3
"""Goldens for `lmforge evaluate` on translation models (lmf::train::evaluate_translation): the
tiny trained Marian of tests/fixtures/seq2seq_generate/translate translates a few lines of
tests/fixtures/marian_tokenizer/corpus.en (plus a Unicode line and a pair with an empty side,
which evaluate skips as finetune does) with transformers' generate(); sacrebleu scores the
decoded translations against the French lines (corpus BLEU, 13a, exp smoothing; chrF2), and
MarianMTModel's loss over the pairs in one padded batch gives eval_loss.

Writes tests/fixtures/translation_eval/:
  src.en, tgt.fr: the line-aligned data (line 4 has an empty target: skipped)
  golden.json: {"max_new_tokens": N, "cases": [{"num_beams": B, "hypotheses": [...],
      "bleu": ..., "chrf": ..., "gen_len": ...}], "eval_loss": ..., "samples": n,
      "skipped_empty": 1}
  Hypotheses: MarianTokenizer(sources, padding=True) -> generate(num_beams=B,
  max_new_tokens=N, the folder's generation_config otherwise) -> decode(skip_special_tokens).
  gen_len: mean generated tokens (without the decoder start token, up to and with </s>).
Regenerate with:  nice -n 19 python3 scripts/reference/gen_translation_eval_goldens.py
(from the repository root; torch, transformers 5.25, sacrebleu 2.x; no network; deterministic).
"""
import json
import os

import sacrebleu
import torch
from transformers import MarianMTModel, MarianTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
MODEL = os.path.join(FIX, "seq2seq_generate", "translate")
OUT = os.path.join(FIX, "translation_eval")
MAX_NEW = 12


def main():
    torch.set_num_threads(1)
    en = open(os.path.join(FIX, "marian_tokenizer", "corpus.en")).read().splitlines()
    fr = open(os.path.join(FIX, "marian_tokenizer", "corpus.fr")).read().splitlines()
    src = en[:4] + [en[4], "Un café à Zürich, s'il vous plaît."] + en[5:8]
    tgt = fr[:4] + ["", "Un café à Zürich, s’il vous plaît — merci."] + fr[5:8]
    os.makedirs(OUT, exist_ok=True)
    open(os.path.join(OUT, "src.en"), "w").write("\n".join(src) + "\n")
    open(os.path.join(OUT, "tgt.fr"), "w").write("\n".join(tgt) + "\n")
    pairs = [(s, t) for s, t in zip(src, tgt) if s.strip() and t.strip()]
    sources, refs = [p[0] for p in pairs], [p[1] for p in pairs]

    tok = MarianTokenizer.from_pretrained(MODEL)
    model = MarianMTModel.from_pretrained(MODEL, dtype=torch.float32).eval()
    eos = model.config.eos_token_id
    batch = tok(sources, text_target=refs, padding=True, return_tensors="pt")
    labels = batch["labels"].masked_fill(batch["labels"] == model.config.pad_token_id, -100)
    with torch.no_grad():
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     labels=labels).loss.item()
    cases = []
    for beams in (1, 3):
        with torch.no_grad():
            out = model.generate(input_ids=batch["input_ids"],
                                 attention_mask=batch["attention_mask"], num_beams=beams,
                                 max_new_tokens=MAX_NEW)
        rows = [r[1:] for r in out.tolist()]
        lens = [r.index(eos) + 1 if eos in r else len(r) for r in rows]
        hyps = [tok.decode(r[:n], skip_special_tokens=True) for r, n in zip(rows, lens)]
        cases.append({"num_beams": beams, "hypotheses": hyps,
                      "bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
                      "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
                      "gen_len": sum(lens) / len(lens)})
    golden = {"max_new_tokens": MAX_NEW, "cases": cases, "eval_loss": loss,
              "samples": len(pairs), "skipped_empty": len(src) - len(pairs),
              "references": refs}
    json.dump(golden, open(os.path.join(OUT, "golden.json"), "w"), indent=1, ensure_ascii=False)
    print(json.dumps(golden, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
