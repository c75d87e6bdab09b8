#!/usr/bin/env python3
"""Golden losses of the pretraining objectives: a fixed, padded, masked batch for each tiny HF
checkpoint of tests/fixtures/bert/ (bert_pretraining: MLM+NSP, albert_pretraining: MLM+SOP,
roberta_mlm: MLM only), and the loss transformers computes on it in eval mode, with its parts
(MLM mean over the chosen tokens, NSP/SOP mean over the batch) and the evaluation metrics
(token-weighted MLM loss, masked-token accuracy, sentence accuracy) lmforge's evaluate() reports.
Read by tests/pretrain/test_pretrain_objective.cpp.

Regenerate with:  python3 scripts/reference/gen_pretrain_goldens.py
(from the repository root; needs torch and transformers 5.x; deterministic, no network).
"""
import json
import os

import torch
import torch.nn.functional as F
import transformers as T

HERE = os.path.dirname(os.path.abspath(__file__))
BERT = os.path.join(HERE, "..", "..", "tests", "fixtures", "bert")
OUT = os.path.join(HERE, "..", "..", "tests", "fixtures", "pretrain", "goldens.json")

# name -> (class, special ids cls/sep/mask/pad)
MODELS = {
    "bert_pretraining": (T.BertForPreTraining, dict(cls=2, sep=3, mask=4, pad=0)),
    "albert_pretraining": (T.AlbertForPreTraining, dict(cls=2, sep=3, mask=4, pad=0)),
    "roberta_mlm": (T.RobertaForMaskedLM, dict(cls=0, sep=2, mask=4, pad=1)),
}
LENGTHS = [11, 7, 9, 5]  # one row per example; padded to the longest


def make_batch(sp, vocab, pair, gen):
    rows, types, labels = [], [], []
    for n in LENGTHS:
        body = torch.randint(5, vocab, (n - (3 if pair else 2),), generator=gen).tolist()
        if pair:
            a = (n - 3) // 2
            ids = [sp["cls"]] + body[:a] + [sp["sep"]] + body[a:] + [sp["sep"]]
            tt = [0] * (a + 2) + [1] * (n - a - 2)
        else:
            ids = [sp["cls"]] + body + [sp["sep"]]
            tt = [0] * n
        lab = [-100] * n
        for j in range(1, n - 1):
            if ids[j] in (sp["sep"],):
                continue
            u = torch.rand((), generator=gen).item()
            if u < 0.3:  # chosen
                lab[j] = ids[j]
                v = torch.rand((), generator=gen).item()
                if v < 0.8:
                    ids[j] = sp["mask"]
                elif v < 0.9:
                    ids[j] = int(torch.randint(0, vocab, (1,), generator=gen))
        if all(x == -100 for x in lab):
            lab[1] = ids[1]
            ids[1] = sp["mask"]
        rows.append(ids), types.append(tt), labels.append(lab)
    t = max(LENGTHS)
    pad = lambda xs, v: [x + [v] * (t - len(x)) for x in xs]
    mask = [[1] * len(r) + [0] * (t - len(r)) for r in rows]
    return pad(rows, sp["pad"]), pad(types, 0), pad(labels, -100), mask


def main():
    gen = torch.Generator().manual_seed(1234)
    out = {}
    for name, (cls, sp) in MODELS.items():
        model = cls.from_pretrained(os.path.join(BERT, name), attn_implementation="eager").eval()
        cfg = model.config
        pair = name != "roberta_mlm"
        ids, types, labels, mask = make_batch(sp, cfg.vocab_size, pair, gen)
        sent = [0, 1, 1, 0] if pair else None
        kw = dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                  labels=torch.tensor(labels))
        if cfg.type_vocab_size > 1:
            kw["token_type_ids"] = torch.tensor(types)
        if pair:
            key = "sentence_order_label" if name.startswith("albert") else "next_sentence_label"
            kw[key] = torch.tensor(sent)
        with torch.no_grad():
            o = model(**kw)
        logits = o.prediction_logits if pair else o.logits
        lab = torch.tensor(labels).view(-1)
        flat = logits.view(-1, cfg.vocab_size)
        mlm = F.cross_entropy(flat, lab)
        chosen = lab != -100
        acc = (flat.argmax(-1)[chosen] == lab[chosen]).float().mean()
        g = dict(special=sp, input_ids=ids, token_type_ids=types, attention_mask=mask,
                 labels=labels, loss=float(o.loss), mlm_loss=float(mlm),
                 eval_masked_accuracy=float(acc), masked_tokens=int(chosen.sum()))
        if pair:
            sl = o.sop_logits if name.startswith("albert") else o.seq_relationship_logits
            s = F.cross_entropy(sl, torch.tensor(sent))
            g.update(sentence_labels=sent, sentence_loss=float(s),
                     sentence_accuracy=float((sl.argmax(-1) == torch.tensor(sent)).float().mean()))
            assert abs(float(mlm + s) - float(o.loss)) < 1e-5
        else:
            assert abs(float(mlm) - float(o.loss)) < 1e-6
        out[name] = g
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
