#!/usr/bin/env python3
"""Writes tests/fixtures/finetune/: small fine-tuning data files (TSV/CSV/JSONL/CoNLL/SQuAD), a
tiny regression checkpoint, and goldens.json with
  - metrics from scikit-learn, seqeval, the official SQuAD v1.1/v2.0 scoring and scipy on random
    and edge-case inputs;
  - features made by transformers' fast tokenizer exactly as run_glue / run_ner / run_qa make them
    (input_ids, token_type_ids, labels, start/end positions, offsets), and run_qa's
    postprocess_qa_predictions on seeded random logits;
  - each fine-tuning loss on a fixed batch (transformers / sentence-transformers formulas, eval
    mode) and evaluate()'s metrics of the tiny pipeline checkpoints.
The tiny models and tokenizers are the ones of tests/fixtures/pipelines/.

Regenerate (from the repository root; torch, transformers, scikit-learn, scipy installed):
    pip install seqeval
    python3 scripts/reference/gen_finetune_goldens.py
"""
import collections
import json
import sys
import pathlib
import random
import re
import shutil
import string

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "finetune"
PIPE = ROOT / "tests" / "fixtures" / "pipelines"

FIRST = ["Alice", "Bob", "Maria", "John", "Yuki", "Olivia", "Pedro", "Chen", "Fatima", "José"]
LAST = ["Lopez", "Smith", "Tanaka", "Müller", "Okafor", "Novak", "Silva", "Brown"]
PLACES = ["Paris", "Berlin", "Tokyo", "New York", "São Paulo", "Zürich", "Lagos", "Oslo"]
THINGS = ["book", "guitar", "camera", "window", "bridge", "garden", "map", "letter"]
ADJ = ["old", "new", "small", "large", "quiet", "bright", "strange", "beautiful", "broken"]


def f(x):
    return float(f"{float(x):.12g}")


# ---- metrics --------------------------------------------------------------------------------------

def squad_normalize(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def squad_f1_v1(pred, gold):
    p, g = squad_normalize(pred).split(), squad_normalize(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0
    pr, rc = same / len(p), same / len(g)
    return 2 * pr * rc / (pr + rc)


def squad_f1_v2(pred, gold):
    p, g = squad_normalize(pred).split(), squad_normalize(gold).split()
    if len(p) == 0 or len(g) == 0:
        return int(p == g)
    return squad_f1_v1(pred, gold)


def squad_scores(preds, golds, v2):
    em = f1 = 0.0
    for p, g in zip(preds, golds):
        g = g if g else [""]
        em += max(float(squad_normalize(p) == squad_normalize(a)) for a in g)
        f1 += max((squad_f1_v2 if v2 else squad_f1_v1)(p, a) for a in g)
    n = len(preds)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}


def metric_goldens():
    from scipy import stats
    from seqeval import metrics as sq
    from seqeval.metrics.sequence_labeling import get_entities
    from sklearn import metrics as sk

    rng = random.Random(7)
    cls = []
    for case in range(8):
        n = [1, 5, 30, 100, 7, 50, 12, 200][case]
        k = [2, 3, 5, 4, 6, 3, 2, 10][case]
        t = [rng.randrange(k) for _ in range(n)]
        p = [rng.randrange(k) for _ in range(n)]
        if case == 4:  # a label only ever predicted, another never predicted
            p = [k + 1 if i % 3 == 0 else x for i, x in enumerate(p)]
        if case == 6:
            p = list(t)
        row = {"y_true": t, "y_pred": p, "accuracy": f(sk.accuracy_score(t, p))}
        for avg in ["macro", "micro", "weighted"]:
            pr, rc, f1, _ = sk.precision_recall_fscore_support(t, p, average=avg, zero_division=0)
            row[avg] = [f(pr), f(rc), f(f1)]
        cls.append(row)
    multi = []
    for case in range(4):
        n, k = [6, 20, 40, 3][case], [3, 4, 5, 2][case]
        t = [[rng.randrange(2) for _ in range(k)] for _ in range(n)]
        p = [[rng.randrange(2) for _ in range(k)] for _ in range(n)]
        if case == 3:
            p = [[0] * k for _ in range(n)]
        row = {"y_true": t, "y_pred": p}
        for avg in ["macro", "micro", "weighted"]:
            pr, rc, f1, _ = sk.precision_recall_fscore_support(np.array(t), np.array(p),
                                                               average=avg, zero_division=0)
            row[avg] = [f(pr), f(rc), f(f1)]
        multi.append(row)

    tagsets = [["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
               ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"],
               ["O", "I-PER", "I-LOC", "B-LOC", "I-MISC"],
               ["O", "B-PER", "I-LOC", "E-MISC", "S-PER", "I-PER", "B-X-Y", "PER", "B-", "I"]]
    seqs = []
    for case in range(10):
        tags = tagsets[case % len(tagsets)]
        sents = rng.randrange(1, 6)
        yt, yp = [], []
        for _ in range(sents):
            n = rng.randrange(0 if case == 9 else 1, 12)
            yt.append([rng.choice(tags) for _ in range(n)])
            yp.append([rng.choice(tags) if rng.random() < 0.5 else x for x in yt[-1]])
        if case == 8:
            yp = [["O"] * len(s) for s in yt]
        row = {"y_true": yt, "y_pred": yp,
               "precision": f(sq.precision_score(yt, yp)), "recall": f(sq.recall_score(yt, yp)),
               "f1": f(sq.f1_score(yt, yp)), "accuracy": f(sq.accuracy_score(yt, yp)),
               "entities_true": [list(e) for e in get_entities(yt)]}
        seqs.append(row)

    answers = ["The Eiffel Tower", "the  eiffel tower!", "an apple a day", "A", "Paris, France",
               "", "  ", "the the the", "théâtre", "Théâtre, a play", "co-operate", "x_y z",
               "ΑΒΓ the δ", "an", "Anne and the bread", "1,000 people", "“quoted”", "a.b.c"]
    norm = [[a, squad_normalize(a)] for a in answers]
    squad = []
    for case in range(6):
        v2 = case % 2 == 1
        preds, golds = [], []
        for _ in range(12):
            preds.append(rng.choice(answers))
            golds.append([] if (v2 and rng.random() < 0.3) else
                         rng.sample(answers, rng.randrange(1, 4)))
        squad.append({"predictions": preds, "golds": golds, "version_2": v2,
                      **{k: f(v) for k, v in squad_scores(preds, golds, v2).items()}})
    pairs = [[p, g, f(squad_f1_v1(p, g)), f(squad_f1_v2(p, g))] for p in answers[:8]
             for g in answers[:8]]

    corr = []
    for case in range(6):
        n = [5, 20, 50, 8, 30, 3][case]
        x = [rng.gauss(0, 1) for _ in range(n)]
        y = [xi * 0.5 + rng.gauss(0, 1) for xi in x]
        if case in (1, 3):  # ties
            x = [round(v) for v in x]
            y = [round(v * 2) / 2 for v in y]
        corr.append({"x": x, "y": y, "pearson": f(stats.pearsonr(x, y)[0]),
                     "spearman": f(stats.spearmanr(x, y)[0])})
    return {"classification": cls, "multilabel": multi, "seqeval": seqs, "squad_normalize": norm,
            "squad": squad, "squad_f1_pairs": pairs, "correlation": corr}


# ---- data files -----------------------------------------------------------------------------------

def write_data():
    rng = random.Random(11)
    OUT.mkdir(parents=True, exist_ok=True)
    # Sentiment (TSV, labels by name) for bert_cls.
    good, bad = ["beautiful", "bright", "quiet", "new"], ["broken", "strange", "old", "small"]
    rows = []
    for i in range(24):
        pos = i % 2 == 0
        a = rng.choice(good if pos else bad)
        rows.append((("POSITIVE" if pos else "NEGATIVE"),
                     f"the {a} {rng.choice(THINGS)} in {rng.choice(PLACES)} is {a}"))
    with open(OUT / "cls_train.tsv", "w") as fh:
        fh.write("label\tsentence\n")
        for lab, s in rows[:16]:
            fh.write(f"{lab}\t{s}\n")
    with open(OUT / "cls_eval.tsv", "w") as fh:
        fh.write("label\tsentence\n")
        for lab, s in rows[16:]:
            fh.write(f"{lab}\t{s}\n")
    # Pairs with scores (CSV with quoting) for regression / the bi-encoder.
    with open(OUT / "sts.csv", "w") as fh:
        fh.write("sentence1,sentence2,label\n")
        for i in range(12):
            t1, t2 = rng.choice(THINGS), rng.choice(THINGS)
            p = rng.choice(PLACES)
            s1 = f"the {rng.choice(ADJ)} {t1} in {p}"
            s2 = f"\"{rng.choice(ADJ)}, {t2}\" near {rng.choice(PLACES)}"
            score = round(rng.uniform(0, 1), 2) if i != 3 else 0.5
            fh.write(f"{s1},\"{s2.replace(chr(34), chr(34) * 2)}\",{score}\n")
    # Multi-label JSONL for bert_cls_multi.
    with open(OUT / "multi.jsonl", "w") as fh:
        for i in range(10):
            labs = sorted(rng.sample(["NEWS", "SPORT", "TRAVEL"], rng.randrange(1, 3)))
            fh.write(json.dumps({"text": f"{rng.choice(FIRST)} saw a {rng.choice(THINGS)} in "
                                         f"{rng.choice(PLACES)}", "label": labs},
                                ensure_ascii=False) + "\n")
    # NER CoNLL for bert_ner (words split by spaces, multi-word places tagged B/I).
    sents = []
    for i in range(14):
        f_, l_, p_ = rng.choice(FIRST), rng.choice(LAST), rng.choice(PLACES)
        words = [(f_, "B-PER"), (l_, "I-PER"), ("found", "O"), ("a", "O"),
                 (rng.choice(ADJ), "O"), (rng.choice(THINGS), "O"), ("in", "O")]
        for j, w in enumerate(p_.split()):
            words.append((w, "B-LOC" if j == 0 else "I-LOC"))
        words.append((".", "O"))
        sents.append(words)
    with open(OUT / "ner_train.conll", "w") as fh:
        fh.write("-DOCSTART- -X- -X- O\n\n")
        for s in sents[:10]:
            for w, t in s:
                fh.write(f"{w} NNP O {t}\n")
            fh.write("\n")
    with open(OUT / "ner_eval.jsonl", "w") as fh:
        for s in sents[10:]:
            fh.write(json.dumps({"tokens": [w for w, _ in s], "ner_tags": [t for _, t in s]},
                                ensure_ascii=False) + "\n")
    # SQuAD v2 JSON for bert_qa: long contexts so that windows overflow.
    paragraphs = []
    for i in range(4):
        parts = []
        for j in range(6):
            parts.append(f"{rng.choice(FIRST)} {rng.choice(LAST)} found the {rng.choice(ADJ)} "
                         f"{rng.choice(THINGS)} in {rng.choice(PLACES)}.")
        context = " ".join(parts)
        qas = []
        for k, idx in enumerate([0, 3, 5]):
            sent = parts[idx]
            place = sent.split(" in ")[-1].rstrip(".")
            start = context.index(sent) + sent.index(" in ") + 4
            assert context[start:start + len(place)] == place
            qas.append({"id": f"q{i}_{k}", "question": f"  Where was the thing found {k}?",
                        "answers": [{"text": place, "answer_start": start}],
                        "is_impossible": False})
        qas.append({"id": f"q{i}_x", "question": "Who painted the bridge?", "answers": [],
                    "is_impossible": True})
        paragraphs.append({"context": context, "qas": qas})
    with open(OUT / "squad.json", "w") as fh:
        json.dump({"version": "v2.0", "data": [{"title": "t", "paragraphs": paragraphs}]}, fh,
                  ensure_ascii=False, indent=1)


def write_swag():
    import csv
    rng = random.Random(13)
    with open(OUT / "swag.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sent1", "sent2", "ending0", "ending1", "ending2", "ending3", "label"])
        for i in range(10):
            name, place = rng.choice(FIRST), rng.choice(PLACES)
            label = rng.randrange(4)  # the right ending is the beautiful one (learnable)
            ends = [f"the {'beautiful' if k == label else rng.choice(['broken', 'strange', 'old'])}"
                    f" {rng.choice(THINGS)}, then left." for k in range(4)]
            w.writerow([f"{name} travelled to {place}.", f"There, {name} found", *ends, label])


def make_tiny_model(name, cls, **cfg_kw):
    import torch
    from transformers import BertConfig
    src = PIPE / "bert_cls"
    cfg = BertConfig.from_pretrained(src)
    for k, v in cfg_kw.items():
        setattr(cfg, k, v)
    torch.manual_seed(3)
    model = cls(cfg).eval()
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    model.save_pretrained(d)
    for f_ in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(src / f_, d / f_)


def make_regression_model():
    import torch
    from transformers import BertConfig, BertForSequenceClassification
    src = PIPE / "bert_cls"
    cfg = BertConfig.from_pretrained(src)
    cfg.num_labels = 1
    cfg.problem_type = "regression"
    cfg.id2label = {0: "LABEL_0"}
    cfg.label2id = {"LABEL_0": 0}
    torch.manual_seed(3)
    model = BertForSequenceClassification(cfg).eval()
    d = OUT / "bert_reg"
    if d.exists():
        shutil.rmtree(d)
    model.save_pretrained(d)
    for name in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(src / name, d / name)


# ---- features -------------------------------------------------------------------------------------

def read_tsv(path):
    lines = open(path).read().splitlines()[1:]
    return [tuple(l.split("\t")) for l in lines]


def read_conll(path):
    sents, cur = [], []
    for line in open(path):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if cur:
                sents.append(cur)
            cur = []
            continue
        cur.append((cols[0], cols[-1]))
    if cur:
        sents.append(cur)
    return sents


def squad_examples(path):
    out = []
    for art in json.load(open(path))["data"]:
        for p in art["paragraphs"]:
            for q in p["qas"]:
                out.append({"id": q["id"], "question": q["question"], "context": p["context"],
                            "answers": {"text": [a["text"] for a in q["answers"]],
                                        "answer_start": [a["answer_start"] for a in q["answers"]]}})
    return out


def prepare_qa(tok, examples, max_len, stride):
    """run_qa prepare_train_features + prepare_validation_features in one."""
    questions = [e["question"].lstrip() for e in examples]
    contexts = [e["context"] for e in examples]
    t = tok(questions, contexts, truncation="only_second", max_length=max_len, stride=stride,
            return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)
    feats = []
    for i, offsets in enumerate(t["offset_mapping"]):
        ids = t["input_ids"][i]
        cls = ids.index(tok.cls_token_id) if tok.cls_token_id in ids else 0
        seq = t.sequence_ids(i)
        ex = t["overflow_to_sample_mapping"][i]
        ans = examples[ex]["answers"]
        if len(ans["answer_start"]) == 0:
            s, e = cls, cls
        else:
            sc = ans["answer_start"][0]
            ec = sc + len(ans["text"][0])
            ts = 0
            while seq[ts] != 1:
                ts += 1
            te = len(ids) - 1
            while seq[te] != 1:
                te -= 1
            if not (offsets[ts][0] <= sc and offsets[te][1] >= ec):
                s, e = cls, cls
            else:
                while ts < len(offsets) and offsets[ts][0] <= sc:
                    ts += 1
                s = ts - 1
                while offsets[te][1] >= ec:
                    te -= 1
                e = te + 1
        feats.append({"input_ids": ids, "token_type_ids": t["token_type_ids"][i],
                      "start_position": s, "end_position": e, "example_index": ex,
                      "offsets": [list(o) if seq[k] == 1 else [-1, -1]
                                  for k, o in enumerate(offsets)]})
    return feats


def postprocess_qa(examples, features, all_start, all_end, v2, n_best=20, max_answer_length=30):
    """transformers/examples/pytorch/question-answering/utils_qa.py postprocess_qa_predictions."""
    per = collections.defaultdict(list)
    for i, ft in enumerate(features):
        per[ft["example_index"]].append(i)
    out = []
    for ei, ex in enumerate(examples):
        min_null = None
        prelim = []
        for fi in per[ei]:
            sl, el = all_start[fi], all_end[fi]
            om = [None if o[0] < 0 else o for o in features[fi]["offsets"]]
            null = sl[0] + el[0]
            if min_null is None or min_null["score"] > null:
                min_null = {"offsets": (0, 0), "score": null, "start_logit": sl[0],
                            "end_logit": el[0]}
            si = np.argsort(sl, kind="stable")[-1:-n_best - 1:-1].tolist()
            ej = np.argsort(el, kind="stable")[-1:-n_best - 1:-1].tolist()
            for s in si:
                for e in ej:
                    if s >= len(om) or e >= len(om) or om[s] is None or om[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    prelim.append({"offsets": (om[s][0], om[e][1]), "score": sl[s] + el[e],
                                   "start_logit": sl[s], "end_logit": el[e]})
        if v2 and min_null is not None:
            prelim.append(min_null)
            null_score = min_null["score"]
        preds = sorted(prelim, key=lambda x: x["score"], reverse=True)[:n_best]
        if v2 and min_null is not None and not any(p["offsets"] == (0, 0) for p in preds):
            preds.append(min_null)
        for p in preds:
            o = p.pop("offsets")
            p["text"] = ex["context"][o[0]:o[1]]
        if len(preds) == 0 or (len(preds) == 1 and preds[0]["text"] == ""):
            preds.insert(0, {"text": "empty", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0})
        if not v2:
            out.append(preds[0]["text"])
        else:
            i = 0
            while preds[i]["text"] == "":
                i += 1
            best = preds[i]
            diff = null_score - best["start_logit"] - best["end_logit"]
            out.append("" if diff > 0.0 else best["text"])
    return out


def ner_train_features(tok, max_length):
    """run_ner's tokenize_and_align_labels on ner_train.conll: (label list, encoding, labels)."""
    sents = read_conll(OUT / "ner_train.conll")
    label_list = sorted({t for s in sents for _, t in s})
    enc = tok([[w for w, _ in s] for s in sents], truncation=True, max_length=max_length,
              is_split_into_words=True)
    labels = []
    for i, s in enumerate(sents):
        prev, lab = None, []
        for w in enc.word_ids(i):
            lab.append(-100 if w is None or w == prev else label_list.index(s[w][1]))
            prev = w
        labels.append(lab)
    return label_list, enc, labels


def feature_goldens(tok):
    g = {}
    rows = read_tsv(OUT / "cls_train.tsv")
    enc = tok([s for _, s in rows], truncation=True, max_length=12)
    g["cls_single"] = {"max_length": 12, "input_ids": enc["input_ids"],
                       "token_type_ids": enc["token_type_ids"],
                       "labels": [["NEGATIVE", "POSITIVE"].index(l) for l, _ in rows]}
    import csv
    sts = list(csv.DictReader(open(OUT / "sts.csv")))
    enc = tok([r["sentence1"] for r in sts], [r["sentence2"] for r in sts], truncation=True,
              max_length=16)
    g["cls_pair"] = {"max_length": 16, "input_ids": enc["input_ids"],
                     "token_type_ids": enc["token_type_ids"],
                     "scores": [float(r["label"]) for r in sts]}
    label_list, enc, labels = ner_train_features(tok, 14)
    g["ner"] = {"max_length": 14, "label_list": label_list, "input_ids": enc["input_ids"],
                "token_type_ids": enc["token_type_ids"], "labels": labels}
    exs = squad_examples(OUT / "squad.json")
    feats = prepare_qa(tok, exs, 48, 16)
    rs = np.random.RandomState(5)
    starts = [rs.randn(len(ft["input_ids"])).astype(np.float32).tolist() for ft in feats]
    ends = [rs.randn(len(ft["input_ids"])).astype(np.float32).tolist() for ft in feats]
    g["qa"] = {"max_length": 48, "doc_stride": 16, "features": feats, "start_logits": starts,
               "end_logits": ends,
               "predictions_v1": postprocess_qa(exs, feats, starts, ends, False),
               "predictions_v2": postprocess_qa(exs, feats, starts, ends, True)}
    return g


# ---- losses and evaluation ------------------------------------------------------------------------

def pad(batch, pad_id=0):
    import torch
    t = max(len(x) for x in batch)
    ids = torch.tensor([x + [pad_id] * (t - len(x)) for x in batch])
    mask = torch.tensor([[1] * len(x) + [0] * (t - len(x)) for x in batch])
    return ids, mask, t


def loss_goldens(tok, feats):
    import torch
    import torch.nn.functional as F
    from seqeval import metrics as sq
    from seqeval.metrics.sequence_labeling import get_entities
    from sklearn import metrics as sk
    from transformers import (AutoModel, AutoModelForQuestionAnswering,
                              AutoModelForSequenceClassification, AutoModelForTokenClassification)
    torch.set_grad_enabled(False)
    g = {}
    batch = [0, 1, 2, 3]

    def run(model, feats_ids, types, **labels):
        ids, mask, t = pad(feats_ids)
        tt = torch.tensor([x + [0] * (t - len(x)) for x in types])
        return model(input_ids=ids, attention_mask=mask, token_type_ids=tt, **labels)

    m = AutoModelForSequenceClassification.from_pretrained(PIPE / "bert_cls").eval()
    c = feats["cls_single"]
    rows = read_tsv(OUT / "cls_train.tsv")
    enc = tok([s for _, s in rows], truncation=True, max_length=128)
    out = run(m, [enc["input_ids"][i] for i in batch], [enc["token_type_ids"][i] for i in batch],
              labels=torch.tensor([c["labels"][i] for i in batch]))
    g["cls_loss"] = f(out.loss)
    ev = read_tsv(OUT / "cls_eval.tsv")
    enc = tok([s for _, s in ev], truncation=True, max_length=128)
    y = [m.config.label2id[l] for l, _ in ev]
    losses, preds = [], []
    for i in range(0, len(ev), 32):
        sl = slice(i, i + 32)
        o = run(m, enc["input_ids"][sl], enc["token_type_ids"][sl], labels=torch.tensor(y[sl]))
        losses.append((o.loss.item(), len(y[sl])))
        preds += o.logits.argmax(-1).tolist()
    g["cls_eval"] = {"eval_loss": f(sum(a * b for a, b in losses) / len(ev)),
                     "eval_accuracy": f(sk.accuracy_score(y, preds)),
                     "eval_f1": f(sk.f1_score(y, preds, average="macro", zero_division=0)),
                     "eval_micro_f1": f(sk.f1_score(y, preds, average="micro", zero_division=0))}

    m = AutoModelForSequenceClassification.from_pretrained(PIPE / "bert_cls_multi").eval()
    mrows = [json.loads(l) for l in open(OUT / "multi.jsonl")]
    enc = tok([r["text"] for r in mrows], truncation=True, max_length=128)
    names = [m.config.id2label[i] for i in range(m.config.num_labels)]
    y = torch.tensor([[1.0 if n in mrows[i]["label"] else 0.0 for n in names] for i in batch])
    out = run(m, [enc["input_ids"][i] for i in batch], [enc["token_type_ids"][i] for i in batch],
              labels=y)
    g["multi_loss"] = f(out.loss)

    m = AutoModelForSequenceClassification.from_pretrained(OUT / "bert_reg").eval()
    p = feats["cls_pair"]
    import csv
    sts = list(csv.DictReader(open(OUT / "sts.csv")))
    enc = tok([r["sentence1"] for r in sts], [r["sentence2"] for r in sts], truncation=True,
              max_length=128)
    out = run(m, [enc["input_ids"][i] for i in batch], [enc["token_type_ids"][i] for i in batch],
              labels=torch.tensor([p["scores"][i] for i in batch]))
    g["regression_loss"] = f(out.loss)

    m = AutoModelForTokenClassification.from_pretrained(PIPE / "bert_ner").eval()
    sents = read_conll(OUT / "ner_train.conll")
    l2i = m.config.label2id

    def ner_feats(sents):
        enc = tok([[w for w, _ in s] for s in sents], truncation=True, max_length=128,
                  is_split_into_words=True)
        labels = []
        for i, s in enumerate(sents):
            prev, lab = None, []
            for w in enc.word_ids(i):
                lab.append(-100 if w is None or w == prev else l2i[s[w][1]])
                prev = w
            labels.append(lab)
        return enc, labels

    enc, labels = ner_feats(sents)
    ids, mask, t = pad([enc["input_ids"][i] for i in batch])
    lab = torch.tensor([labels[i] + [-100] * (t - len(labels[i])) for i in batch])
    out = m(input_ids=ids, attention_mask=mask, labels=lab)
    g["ner_loss"] = f(out.loss)
    ev = [[(w, t_) for w, t_ in zip(j["tokens"], j["ner_tags"])]
          for j in map(json.loads, open(OUT / "ner_eval.jsonl"))]
    enc, labels = ner_feats(ev)
    ids, mask, t = pad(enc["input_ids"])
    lab = torch.tensor([x + [-100] * (t - len(x)) for x in labels])
    out = m(input_ids=ids, attention_mask=mask, labels=lab)
    pred = out.logits.argmax(-1).tolist()
    i2l = m.config.id2label
    yt = [[i2l[l] for l in labels[i] if l != -100] for i in range(len(ev))]
    yp = [[i2l[pp] for pp, l in zip(pred[i], labels[i]) if l != -100] for i in range(len(ev))]
    g["ner_eval"] = {"eval_loss": f(out.loss), "eval_precision": f(sq.precision_score(yt, yp)),
                     "eval_recall": f(sq.recall_score(yt, yp)), "eval_f1": f(sq.f1_score(yt, yp)),
                     "eval_accuracy": f(sq.accuracy_score(yt, yp))}

    m = AutoModelForQuestionAnswering.from_pretrained(PIPE / "bert_qa").eval()
    exs = squad_examples(OUT / "squad.json")
    qf = prepare_qa(tok, exs, 48, 16)
    out = run(m, [qf[i]["input_ids"] for i in batch], [qf[i]["token_type_ids"] for i in batch],
              start_positions=torch.tensor([qf[i]["start_position"] for i in batch]),
              end_positions=torch.tensor([qf[i]["end_position"] for i in batch]))
    g["qa_loss"] = f(out.loss)
    g["qa_num_features"] = len(qf)
    # evaluate() on the same file (train == eval here): loss over batches of 32 + SQuAD v2.
    losses, starts, ends = [], [], []
    for i in range(0, len(qf), 32):
        part = qf[i:i + 32]
        o = run(m, [x["input_ids"] for x in part], [x["token_type_ids"] for x in part],
                start_positions=torch.tensor([x["start_position"] for x in part]),
                end_positions=torch.tensor([x["end_position"] for x in part]))
        losses.append((o.loss.item(), len(part)))
        for r, x in enumerate(part):
            starts.append(o.start_logits[r, :len(x["input_ids"])].tolist())
            ends.append(o.end_logits[r, :len(x["input_ids"])].tolist())
    preds = postprocess_qa(exs, qf, starts, ends, True)
    sc = squad_scores(preds, [e["answers"]["text"] for e in exs], True)
    g["qa_eval"] = {"eval_loss": f(sum(a * b for a, b in losses) / len(qf)),
                    "eval_exact_match": f(sc["exact_match"]), "eval_f1": f(sc["f1"])}

    # Bi-encoder on the base model of bert_cls: mean pooling; MNRL (scale 20) and cosine loss.
    m = AutoModel.from_pretrained(PIPE / "bert_cls").eval()

    def embed(texts):
        e = tok(texts, truncation=True, max_length=128, padding=True, return_tensors="pt")
        h = m(**e).last_hidden_state
        mk = e["attention_mask"].unsqueeze(-1).float()
        return (h * mk).sum(1) / mk.sum(1).clamp(min=1e-9)

    a = embed([sts[i]["sentence1"] for i in batch])
    b = embed([sts[i]["sentence2"] for i in batch])
    scores = F.normalize(a, p=2, dim=1) @ F.normalize(b, p=2, dim=1).T * 20.0
    g["mnrl_loss"] = f(F.cross_entropy(scores, torch.arange(len(batch))))
    cos = torch.cosine_similarity(a, b)
    g["cosine_loss"] = f(F.mse_loss(cos, torch.tensor([float(sts[i]["label"]) for i in batch])))
    return g


def swag_goldens(tok):
    import csv
    import torch
    from transformers import AutoModelForMultipleChoice
    torch.set_grad_enabled(False)
    rows = list(csv.DictReader(open(OUT / "swag.csv")))
    ends = [f"ending{i}" for i in range(4)]

    def feats(max_len):
        first = [r["sent1"] for r in rows for _ in ends]
        second = [f"{r['sent2']} {r[e]}" for r in rows for e in ends]
        t = tok(first, second, truncation=True, max_length=max_len)
        return ([t["input_ids"][i * 4:(i + 1) * 4] for i in range(len(rows))],
                [t["token_type_ids"][i * 4:(i + 1) * 4] for i in range(len(rows))])

    ids, types = feats(14)
    g = {"max_length": 14, "input_ids": ids, "token_type_ids": types,
         "labels": [int(r["label"]) for r in rows]}
    m = AutoModelForMultipleChoice.from_pretrained(OUT / "bert_mc").eval()
    ids, types = feats(128)

    def run(sel):
        flat = [x for i in sel for x in ids[i]]
        ft = [x for i in sel for x in types[i]]
        t = max(len(x) for x in flat)
        pad = lambda v: [x + [0] * (t - len(x)) for x in v]
        mask = [[1] * len(x) + [0] * (t - len(x)) for x in flat]
        shape = (len(sel), 4, t)
        return m(input_ids=torch.tensor(pad(flat)).view(shape),
                 attention_mask=torch.tensor(mask).view(shape),
                 token_type_ids=torch.tensor(pad(ft)).view(shape),
                 labels=torch.tensor([int(rows[i]["label"]) for i in sel]))

    g["loss"] = f(run([0, 1, 2, 3]).loss)
    out = run(list(range(len(rows))))
    pred = out.logits.argmax(-1).tolist()
    g["eval"] = {"eval_loss": f(out.loss), "eval_accuracy":
                 f(sum(int(p == int(r["label"])) for p, r in zip(pred, rows)) / len(rows))}
    return g


def roberta_ner_golden():
    """run_ner's features with a byte-level BPE tokenizer: run_ner loads RoBERTa/GPT-2 tokenizers
    with add_prefix_space=True (their fast tokenizers refuse pre-split words otherwise), so every
    word is encoded as if preceded by a space. Written to ner_roberta_goldens.json."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(PIPE / "roberta_mlm", add_prefix_space=True)
    label_list, enc, labels = ner_train_features(tok, 14)
    g = {"tokenizer": "pipelines/roberta_mlm", "max_length": 14, "label_list": label_list,
         "input_ids": enc["input_ids"], "labels": labels}
    with open(OUT / "ner_roberta_goldens.json", "w") as fh:
        json.dump(g, fh, ensure_ascii=False, separators=(",", ":"))
    print("wrote", OUT / "ner_roberta_goldens.json")


def main():
    if "--roberta-ner-only" in sys.argv:
        return roberta_ner_golden()
    roberta_ner_golden()
    from transformers import BertForMultipleChoice
    write_data()
    write_swag()
    make_regression_model()
    make_tiny_model("bert_mc", BertForMultipleChoice)
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(PIPE / "bert_cls")
    feats = feature_goldens(tok)
    goldens = {"metrics": metric_goldens(), "features": feats, "losses": loss_goldens(tok, feats),
               "swag": swag_goldens(tok)}
    with open(OUT / "goldens.json", "w") as fh:
        json.dump(goldens, fh, ensure_ascii=False, separators=(",", ":"))
    print("wrote", OUT, "goldens", (OUT / "goldens.json").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
