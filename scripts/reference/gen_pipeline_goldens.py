#!/usr/bin/env python3
"""Writes tests/fixtures/pipelines/: tiny random BERT-family checkpoints (hidden 32, 2 layers, 4
heads) with WordPiece / byte-level BPE tokenizers trained here on our own sentences, and the
outputs of transformers' pipelines on them (fill-mask, text-classification, token-classification,
question-answering) plus next-sentence probabilities, in goldens.json.

goldens_extra.json adds: sentence-transformers CrossEncoder.predict scores on a one-label
(bert_ce) and a two-label (bert_cls) checkpoint, token classification with stride windows on a
model with 32 positions (bert_ner_short), and fill-mask with targets. `--extra-only` regenerates
just these, reusing the WordPiece tokenizer saved in bert_cls (no QA run, no transformers 4).

transformers 5 dropped the question-answering pipeline, so the QA goldens come from the last
release that has it (4.57.1), run in a subprocess on the same saved folder.

Regenerate (from the repository root; torch, transformers 5, tokenizers installed):
    pip install --no-deps --target /tmp/tf4 transformers==4.57.1
    python3 scripts/reference/gen_pipeline_goldens.py [--tf4 /tmp/tf4]
    python3 scripts/reference/gen_pipeline_goldens.py --extra-only   # goldens_extra.json only
(--extra-only needs sentence-transformers: pip install sentence-transformers)
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "pipelines"

FIRST = ["Alice", "Bob", "Maria", "John", "Yuki", "Olivia", "Pedro", "Chen", "Fatima", "José",
         "Hannah", "Omar"]
LAST = ["Lopez", "Smith", "Tanaka", "Müller", "Okafor", "Novak", "Silva", "Brown"]
PLACES = ["Paris", "Berlin", "Tokyo", "New York", "São Paulo", "Zürich", "Lagos", "Oslo",
          "Lake Geneva", "the Alps", "Cairo", "Lima"]
THINGS = ["book", "bicycle", "letter", "guitar", "painting", "map", "camera", "garden", "kitchen",
          "window", "river", "bridge"]
VERBS = ["found", "bought", "painted", "repaired", "sold", "opened", "cleaned", "described"]
ADJ = ["old", "new", "small", "large", "quiet", "bright", "strange", "beautiful", "broken",
       "famous"]
TIMES = ["yesterday", "last week", "in the morning", "after lunch", "every summer", "at night"]


def corpus():
    s = []
    for i in range(220):
        f, l = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        p, t = PLACES[(i * 5) % len(PLACES)], THINGS[(i * 3) % len(THINGS)]
        v, a, w = VERBS[(i * 11) % len(VERBS)], ADJ[(i * 13) % len(ADJ)], TIMES[i % len(TIMES)]
        k = i % 6
        if k == 0:
            s.append(f"{f} {l} {v} the {a} {t} in {p} {w}.")
        elif k == 1:
            s.append(f"The {a} {t} was {v} by {f} near {p}.")
        elif k == 2:
            s.append(f"Did {f} really travel to {p} {w}? Yes, with a {a} {t}!")
        elif k == 3:
            s.append(f"In {p}, people say the {t} is {a}; {f} {l} doesn't agree.")
        elif k == 4:
            s.append(f"{f} lives in {p} and works on a {a} {t} project with {l}.")
        else:
            s.append(f"It's {a} weather in {p} today, so {f} stays home with the {t}.")
    return s


def train_wordpiece(sentences, tmp):
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizer
    wp = BertWordPieceTokenizer(lowercase=True, strip_accents=None)
    wp.train_from_iterator(sentences, vocab_size=360, min_frequency=2,
                           special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return BertTokenizer(vocab=wp.get_vocab(), model_max_length=256)


def train_bytelevel(sentences, tmp):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer
    bl = ByteLevelBPETokenizer()
    bl.train_from_iterator(sentences, vocab_size=420, min_frequency=2,
                           special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bl.save_model(str(tmp))
    merges = [tuple(m.split(" ")) for m in (tmp / "merges.txt").read_text().splitlines()
              if m and not m.startswith("#version")]
    return RobertaTokenizer(vocab=bl.get_vocab(), merges=merges, model_max_length=256)


def bert_config(tok, **kw):
    from transformers import BertConfig
    return BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=64, max_position_embeddings=256,
                      initializer_range=0.3, pad_token_id=tok.pad_token_id, **kw)


def save(name, model_cls, cfg, tok, seed, center_on=None):
    import torch
    torch.manual_seed(seed)
    model = model_cls(cfg).eval()
    if center_on:  # shift the classifier bias so that every label gets predicted somewhere
        with torch.no_grad():
            logits = torch.cat([model(**tok(s, return_tensors="pt")).logits[0] for s in center_on])
            model.classifier.bias -= logits.mean(0)
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


def f(x):
    return float(f"{float(x):.8g}")


def clean(obj):
    """numpy / torch scalars -> JSON numbers, recursively."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (str, bool)) or obj is None:
        return obj
    if isinstance(obj, int):
        return obj
    if hasattr(obj, "item"):
        obj = obj.item()
    return f(obj) if isinstance(obj, float) else obj


def fill_mask_goldens(d, texts, top_ks):
    from transformers import pipeline
    p = pipeline("fill-mask", model=d, device="cpu")
    cases = []
    for text, k in zip(texts, top_ks):
        r = p(text, top_k=k)
        rows = r if r and isinstance(r[0], list) else [r]
        cases.append({"text": text, "top_k": k, "result": clean(rows)})
    return cases


def classify_goldens(d, inputs):
    from transformers import pipeline
    p = pipeline("text-classification", model=d, device="cpu")
    cases = []
    for inp, kw in inputs:
        r = p(inp, **kw)
        if isinstance(r, dict):
            r = [r]
        if len(r) == 1 and isinstance(r[0], list):
            r = r[0]
        c = {"text": inp if isinstance(inp, str) else inp["text"],
             "top_k": kw.get("top_k", 1), "result": clean(r)}
        if isinstance(inp, dict):
            c["text_pair"] = inp["text_pair"]
        if "function_to_apply" in kw:
            c["function_to_apply"] = kw["function_to_apply"]
        cases.append(c)
    return cases


def ner_goldens(d, texts):
    from transformers import pipeline
    cases = []
    for strategy in ["none", "simple", "first", "average", "max"]:
        p = pipeline("token-classification", model=d, device="cpu",
                     aggregation_strategy=strategy)
        use = texts if strategy in ("none", "simple") else texts[:4]
        for text in use:
            cases.append({"text": text, "aggregation_strategy": strategy,
                          "result": clean(p(text))})
    return cases


def nsp_goldens(d, pairs):
    import torch
    from transformers import AutoTokenizer, BertForNextSentencePrediction
    tok = AutoTokenizer.from_pretrained(d)
    model = BertForNextSentencePrediction.from_pretrained(d).eval()
    cases = []
    with torch.no_grad():
        for a, b in pairs:
            logits = model(**tok(a, b, return_tensors="pt")).logits[0]
            probs = logits.softmax(-1)
            cases.append({"text": a, "text_pair": b, "logits": clean(logits.tolist()),
                          "is_next": f(probs[0]), "probs": clean(probs.tolist())})
    return cases


QA_V4 = r"""
import importlib.metadata as md, json, sys
real = md.version
fake = {"tokenizers": "0.22.1", "huggingface-hub": "0.35.0", "huggingface_hub": "0.35.0"}
md.version = lambda n: fake.get(n, real(n))
import transformers
from transformers import pipeline
assert transformers.__version__.startswith("4."), transformers.__version__
d, cases = sys.argv[1], json.load(open(sys.argv[2]))
p = pipeline("question-answering", model=d, tokenizer=d, device="cpu")
out = []
for c in cases:
    kw = {k: c[k] for k in ("top_k", "max_seq_len", "doc_stride", "max_answer_len") if k in c}
    r = p(question=c["question"], context=c["context"], **kw)
    if isinstance(r, dict):
        r = [r]
    enc = p.tokenizer(c["question"], c["context"], truncation="only_second",
                      max_length=kw.get("max_seq_len", 256),
                      stride=kw.get("doc_stride", 128), return_overflowing_tokens=True)
    out.append(dict(c, result=[{k: (float(v) if k == "score" else v) for k, v in a.items()}
                               for a in r], windows=len(enc["input_ids"])))
json.dump({"transformers": transformers.__version__, "cases": out}, open(sys.argv[3], "w"))
"""


def qa_goldens(d, cases, tf4):
    with tempfile.TemporaryDirectory() as tmp:
        script, cin, cout = (pathlib.Path(tmp) / n for n in ("qa.py", "in.json", "out.json"))
        script.write_text(QA_V4)
        cin.write_text(json.dumps(cases))
        env = dict(os.environ, PYTHONPATH=tf4)
        subprocess.run([sys.executable, str(script), d, str(cin), str(cout)], env=env, check=True)
        res = json.loads(cout.read_text())
    for c in res["cases"]:
        for a in c["result"]:
            a["score"] = f(a["score"])
    return res


LONG_CONTEXT = (
    "Maria Lopez grew up in a small house near Lake Geneva. Every summer she repaired old "
    "bicycles with her brother, and in the morning they sold them at the market in Zürich. "
    "Later she moved to Berlin, where she worked on a strange painting project with John Smith. "
    "The project took three years and the painting was famous in Paris and Tokyo. After that, "
    "Maria bought a quiet garden in Oslo and opened a kitchen for the whole street. People say "
    "the garden is beautiful at night; Omar Okafor doesn't agree, he prefers the river. "
    "Yuki Tanaka described the bridge in a letter, and the letter was found in Lima last week.")


# ---- goldens_extra.json: cross-encoder, NER with stride windows, fill-mask targets ---------------

CE_PAIRS = [
    ("Where does Maria live?", "Maria lives in Paris with her brother."),
    ("Who repaired the bicycle?", "The old bicycle was repaired by John Smith near Berlin."),
    ("Did Pedro really travel to Cairo?", "It's strange weather in Lagos today."),
    ("a", "b"),
    ("São Paulo is large and bright at night!", "Zürich is small."),
    ("The famous bridge over the river in Lima.", "The famous bridge over the river in Lima."),
]


def cross_encoder_goldens(d, pairs):
    import torch
    from sentence_transformers import CrossEncoder
    ce = CrossEncoder(d, device="cpu")
    out = {"num_labels": ce.num_labels, "pairs": [list(p) for p in pairs]}
    out["default"] = clean(ce.predict(pairs, batch_size=4).tolist())
    out["identity"] = clean(ce.predict(pairs, activation_fn=torch.nn.Identity()).tolist())
    if ce.num_labels > 1:
        out["softmax"] = clean(ce.predict(pairs, apply_softmax=True).tolist())
    return out


def ner_stride_goldens(d, texts, strides):
    from transformers import pipeline
    cases = []
    for strategy in ["simple", "first", "average", "max"]:
        for stride in strides:
            p = pipeline("token-classification", model=d, device="cpu",
                         aggregation_strategy=strategy, stride=stride)
            for text in texts:
                n = len(p.tokenizer(text, truncation=True, stride=stride,
                                    return_overflowing_tokens=True)["input_ids"])
                cases.append({"text": text, "aggregation_strategy": strategy, "stride": stride,
                              "windows": n, "result": clean(p(text))})
    p = pipeline("token-classification", model=d, device="cpu", aggregation_strategy="simple")
    for text in texts[:2]:  # no stride: truncated to model_max_length
        cases.append({"text": text, "aggregation_strategy": "simple", "stride": None,
                      "windows": 1, "result": clean(p(text))})
    return cases


def fill_mask_target_goldens(d, cases):
    from transformers import pipeline
    p = pipeline("fill-mask", model=d, device="cpu")
    out = []
    for text, targets, k in cases:
        r = p(text, targets=targets, top_k=k)
        rows = r if r and isinstance(r[0], list) else [r]
        out.append({"text": text, "targets": targets, "top_k": k, "result": clean(rows)})
    return out


def long_text(n):
    words = []
    for i in range(n):
        f, l = FIRST[(i * 5) % len(FIRST)], LAST[(i * 3) % len(LAST)]
        p, t = PLACES[(i * 7) % len(PLACES)], THINGS[i % len(THINGS)]
        words.append([f"{f} {l} met", f"in {p} with the", f"{t}, then", f"{f} went to {p}."][i % 4])
    return " ".join(words)


def extra_goldens(wp, bl_dir):
    from transformers import (AutoTokenizer, BertForSequenceClassification,
                              BertForTokenClassification)
    g = {}
    import transformers, sentence_transformers
    g["transformers"] = transformers.__version__
    g["sentence_transformers"] = sentence_transformers.__version__
    d = save("bert_ce", BertForSequenceClassification, bert_config(wp, num_labels=1), wp, 8)
    long_a = long_text(60)
    g["cross_encoder"] = cross_encoder_goldens(d, CE_PAIRS + [(long_a, long_a[::-1])])
    g["cross_encoder_2"] = cross_encoder_goldens(str(OUT / "bert_cls"), CE_PAIRS)

    short = AutoTokenizer.from_pretrained(str(OUT / "bert_cls"), model_max_length=32)
    ner_labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    cfg = bert_config(short, id2label=dict(enumerate(ner_labels)),
                      label2id={l: i for i, l in enumerate(ner_labels)})
    cfg.max_position_embeddings = 32
    d = save("bert_ner_short", BertForTokenClassification, cfg, short, 12, corpus()[:40])
    texts = [long_text(12), long_text(20) + " Maria Lopez lives in São Paulo.",
             "Omar   Novak  bought a camera in  New York yesterday. " * 4]
    g["ner_stride"] = {"model": "bert_ner_short", "cases": ner_stride_goldens(d, texts, [4, 12])}

    g["fill_mask_targets"] = {"model": "bert_mlm", "cases": fill_mask_target_goldens(
        str(OUT / "bert_mlm"), [
            ("Alice [MASK] the old book in Paris yesterday.", ["found", "sold", "bought"], 5),
            ("Alice [MASK] the old book in Paris yesterday.", ["found", "sold", "bought"], 2),
            ("The [MASK] was painted by Bob near Berlin.", ["Paris", "book", "book", "map"], 5),
            ("The [MASK] was painted by Bob near Berlin.", ["xylophone", "guitar"], 5),
            ("Hannah [MASK] the [MASK] guitar after lunch.", ["old", "sold", "new"], 2),
            ("Omar found it at [MASK].", ["night", "\u200b", "zzz"], 5),
        ])}
    g["roberta_fill_mask_targets"] = {"model": "roberta_mlm", "cases": fill_mask_target_goldens(
        bl_dir, [
            ("Alice <mask> the old book in Paris yesterday.", [" found", "Ġsold", "bought"], 5),
            ("The <mask> was painted by Bob near Berlin.", ["book", " map", " xylophone"], 3),
        ])}
    (OUT / "goldens_extra.json").write_text(json.dumps(g, ensure_ascii=False, indent=1) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tf4", default="/tmp/tf4", help="pip --target dir with transformers 4.57.1")
    ap.add_argument("--extra-only", action="store_true",
                    help="only goldens_extra.json (reuses the tokenizer saved in bert_cls)")
    args = ap.parse_args()
    if args.extra_only:
        import torch
        from transformers import AutoTokenizer
        torch.set_num_threads(1)
        extra_goldens(AutoTokenizer.from_pretrained(str(OUT / "bert_cls")),
                      str(OUT / "roberta_mlm"))
        return
    import torch
    import transformers
    from transformers import (BertForMaskedLM, BertForNextSentencePrediction,
                              BertForQuestionAnswering, BertForSequenceClassification,
                              BertForTokenClassification, RobertaConfig, RobertaForMaskedLM)
    torch.set_num_threads(1)
    sents = corpus()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "wp").mkdir()
        (tmp / "bl").mkdir()
        wp = train_wordpiece(sents, tmp / "wp")
        bl = train_bytelevel(sents, tmp / "bl")

    g = {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0]}

    d = save("bert_mlm", BertForMaskedLM, bert_config(wp), wp, 1)
    mask_texts = [
        "Alice [MASK] the old book in Paris yesterday.",
        "The [MASK] was painted by Bob near Berlin.",
        "[MASK] lives in Tokyo and works on a small garden project.",
        "Did Maria really travel to Oslo? Yes, with a [MASK] map!",
        "In São Paulo, people say the camera is strange; José Müller doesn't [MASK].",
        "It's bright weather in Zürich today, so Yuki stays home with the [MASK]",
        "The quiet river [MASK].",
        "Hannah [MASK] the [MASK] guitar after lunch.",
        "[MASK] [MASK] [MASK]",
        "Omar found a famous painting in Cairo at [MASK].",
        "Chen   bought   the   window   [MASK]   Lima.",
    ]
    g["fill_mask"] = {"model": "bert_mlm", "cases": fill_mask_goldens(
        d, mask_texts, [5, 5, 5, 5, 5, 3, 10, 5, 2, 5, 5])}

    rb_cfg = RobertaConfig(vocab_size=len(bl), hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64,
                           max_position_embeddings=258, type_vocab_size=1, initializer_range=0.3,
                           pad_token_id=bl.pad_token_id, bos_token_id=bl.bos_token_id,
                           eos_token_id=bl.eos_token_id)
    d = save("roberta_mlm", RobertaForMaskedLM, rb_cfg, bl, 2)
    rb_texts = [
        "Alice <mask> the old book in Paris yesterday.",
        "The <mask> was painted by Bob near Berlin.",
        "<mask> lives in Tokyo and works on a small garden project.",
        "In São Paulo, people say the camera is strange; José doesn't <mask>.",
        "Hannah <mask> the<mask> guitar after lunch.",
        "It's quiet in Zürich today!<mask>",
    ]
    g["roberta_fill_mask"] = {"model": "roberta_mlm", "cases": fill_mask_goldens(
        d, rb_texts, [5] * len(rb_texts))}

    cls_texts = [
        "Alice found the beautiful painting in Paris.",
        "The broken bicycle was sold by Bob near Berlin.",
        "It's strange weather in Lagos today.",
        "Did Pedro really travel to Cairo?",
        "Fatima Novak repaired the small camera every summer.",
        "São Paulo is large and bright at night!",
        "a",
        "The famous bridge over the river in Lima.",
    ]
    d = save("bert_cls", BertForSequenceClassification,
             bert_config(wp, id2label={0: "NEGATIVE", 1: "POSITIVE"},
                         label2id={"NEGATIVE": 0, "POSITIVE": 1}), wp, 3)
    inputs = [(t, {}) for t in cls_texts]
    inputs += [(cls_texts[0], {"top_k": None}), (cls_texts[1], {"top_k": 2}),
               (cls_texts[2], {"top_k": None, "function_to_apply": "sigmoid"}),
               (cls_texts[3], {"top_k": None, "function_to_apply": "none"}),
               ({"text": "Where is the old map?", "text_pair": "The map is in Oslo."}, {}),
               ({"text": "Alice lives in Paris.", "text_pair": "Bob works in Berlin."},
                {"top_k": None})]
    g["classify"] = {"model": "bert_cls", "cases": classify_goldens(d, inputs)}

    labels = ["NEWS", "SPORT", "TRAVEL"]
    d = save("bert_cls_multi", BertForSequenceClassification,
             bert_config(wp, id2label=dict(enumerate(labels)),
                         label2id={l: i for i, l in enumerate(labels)},
                         problem_type="multi_label_classification"), wp, 4)
    inputs = [(t, {"top_k": None}) for t in cls_texts[:5]] + [(cls_texts[5], {})]
    g["classify_multi"] = {"model": "bert_cls_multi", "cases": classify_goldens(d, inputs)}

    ner_labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    d = save("bert_ner", BertForTokenClassification,
             bert_config(wp, id2label=dict(enumerate(ner_labels)),
                         label2id={l: i for i, l in enumerate(ner_labels)}), wp, 5, sents[:40])
    ner_texts = [
        "Maria Lopez moved from Berlin to São Paulo last year.",
        "John Smith and Yuki Tanaka visited the Alps.",
        "Fatima lives in Lagos.",
        "The strange bicycle was repaired by Okafor near Lake Geneva!",
        "Hannah Müller wrote: \"Zürich, Oslo, Cairo\" — three cities.",
        "Pedro Silva's garden in Lima is beautiful.",
        "unbelievably xylophonic quizzical words",
        "Bob",
        "Omar   Novak  bought a camera in  New York yesterday.",
        "Did Chen really travel to Tokyo? Yes, with a small map!",
    ]
    g["ner"] = {"model": "bert_ner", "cases": ner_goldens(d, ner_texts)}

    d = save("bert_qa", BertForQuestionAnswering, bert_config(wp), wp, 6)
    qa_cases = [
        {"question": "Where does Maria live?", "context": "Maria lives in Paris with her brother."},
        {"question": "Who repaired the bicycle?",
         "context": "The old bicycle was repaired by John Smith near Berlin yesterday."},
        {"question": "What did Alice find?", "context": "Alice found a famous painting in Cairo."},
        {"question": "When did Bob travel?",
         "context": "Bob travelled to São Paulo last week, with a small camera and a map."},
        {"question": "Which city?", "context": "Zürich."},
        {"question": "What is beautiful?",
         "context": "People say the garden is beautiful at night; Omar doesn't agree.",
         "top_k": 3},
        {"question": "Who wrote the letter?", "context": LONG_CONTEXT},
        {"question": "Who wrote the letter?", "context": LONG_CONTEXT, "max_seq_len": 48,
         "doc_stride": 16},
        {"question": "Where did Maria grow up?", "context": LONG_CONTEXT, "max_seq_len": 40,
         "doc_stride": 12, "top_k": 3},
        {"question": "What was famous in Paris and Tokyo?", "context": LONG_CONTEXT,
         "max_seq_len": 64, "doc_stride": 24, "max_answer_len": 5},
    ]
    g["qa"] = {"model": "bert_qa", **qa_goldens(d, qa_cases, args.tf4)}

    d = save("bert_nsp", BertForNextSentencePrediction, bert_config(wp), wp, 7)
    g["nsp"] = {"model": "bert_nsp", "cases": nsp_goldens(d, [
        ("Alice found the old book.", "She read it in Paris."),
        ("The river is quiet at night.", "Bob bought a guitar in Tokyo."),
        ("Did Pedro travel to Cairo?", "Yes, with a small map!"),
        ("It's strange weather today.", "So Yuki stays home."),
        ("São Paulo is large.", "Zürich is small."),
        ("a", "b"),
    ])}

    (OUT / "goldens.json").write_text(json.dumps(g, ensure_ascii=False, indent=1) + "\n")
    extra_goldens(wp, str(OUT / "roberta_mlm"))
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(ROOT)}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
