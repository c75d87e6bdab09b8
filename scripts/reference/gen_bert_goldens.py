#!/usr/bin/env python3
"""Writes random tiny Hugging Face checkpoints of every BERT-family class lmforge implements,
with golden inputs and outputs, under tests/fixtures/bert/<name>/ (config.json, model.safetensors,
golden.json), read by tests/models/test_bert.cpp.

Each model is built by transformers (AutoConfig -> class(config) -> save_pretrained), its
parameters perturbed (seeded) so that biases and LayerNorm weights are not trivially 0/1, saved,
then loaded back with from_pretrained (eager attention, eval mode) to compute the goldens, so the
goldens come from exactly what is on disk. bert_mlm is also loaded as BertModel (HF then
initialises the absent pooler at random) to give the last_hidden_state of the pooler-pitfall test.

Regenerate with:  python3 scripts/reference/gen_bert_goldens.py
(from the repository root; needs torch and transformers 5.x; deterministic, seeded, no network).
"""
import json
import os
import shutil

import torch
import transformers as T

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "bert")
TINY = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, max_position_embeddings=48, initializer_range=0.1)
FAMILY = {
    "bert": dict(),
    "roberta": dict(pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1),
    "albert": dict(embedding_size=16, num_hidden_groups=1, inner_group_num=1),
    "electra": dict(embedding_size=16),
}
B, C, S = 2, 3, 7  # batch, choices, sequence


def r(t):
    return [float(f"{v:.7g}") for v in t.detach().reshape(-1).tolist()]


def tensor_json(t):
    return {"shape": list(t.shape), "data": r(t) if t.is_floating_point() else
            [int(v) for v in t.reshape(-1).tolist()]}


def make_inputs(cfg, gen, shape):
    pad = cfg.pad_token_id
    ids = torch.randint(3, cfg.vocab_size, shape, generator=gen)
    ids[ids == pad] = pad + 1
    mask = torch.ones(shape, dtype=torch.long)
    flat_ids, flat_mask = ids.view(-1, S), mask.view(-1, S)
    for row in range(1, flat_ids.shape[0], 2):  # every other sequence is padded
        n = 2 + row % 3
        flat_ids[row, S - n:] = pad
        flat_mask[row, S - n:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if cfg.type_vocab_size > 1:
        types = torch.zeros(shape, dtype=torch.long)
        types.view(-1, S)[:, 3:] = 1
        types[mask == 0] = 0
        inputs["token_type_ids"] = types
    return inputs


def make_labels(cls_name, cfg, gen, inputs):
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    if cls_name.endswith("ForMaskedLM"):
        labels = torch.full(ids.shape, -100)
        labels[:, 1] = ids[:, 1]
        labels[0, 4] = 5
        return {"labels": labels}
    if cls_name == "ElectraForPreTraining":
        return {"labels": torch.randint(0, 2, ids.shape, generator=gen)}
    if cls_name.endswith("ForPreTraining"):
        labels = torch.full(ids.shape, -100)
        labels[:, 2] = ids[:, 2]
        key = "sentence_order_label" if cls_name.startswith("Albert") else "next_sentence_label"
        return {"labels": labels, key: torch.tensor([0, 1])}
    if cls_name.endswith("NextSentencePrediction"):
        return {"labels": torch.tensor([1, 0])}
    if cls_name.endswith("SequenceClassification"):
        if cfg.num_labels == 1:
            return {"labels": torch.tensor([0.5, -1.25])}
        return {"labels": torch.tensor([2, 0])}
    if cls_name.endswith("TokenClassification"):
        labels = torch.randint(0, cfg.num_labels, ids.shape, generator=gen)
        labels[mask == 0] = -100
        return {"labels": labels}
    if cls_name.endswith("QuestionAnswering"):
        return {"start_positions": torch.tensor([1, 3]), "end_positions": torch.tensor([4, 100])}
    if cls_name.endswith("MultipleChoice"):
        return {"labels": torch.tensor([2, 1])}
    return {}


OUTPUT_KEYS = ["logits", "prediction_logits", "seq_relationship_logits", "sop_logits",
               "start_logits", "end_logits", "last_hidden_state", "pooler_output"]


def run(model, inputs, labels, base):
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=base, output_attentions=base)
        res = {k: tensor_json(out[k]) for k in OUTPUT_KEYS if k in out and out[k] is not None}
        if base:
            res["hidden_states"] = [tensor_json(h) for h in out.hidden_states]
            res["attentions"] = [tensor_json(a) for a in out.attentions]
        if labels:
            res["loss"] = float(model(**inputs, **labels).loss)
    return res


def build(name, cls_name, family, seed, extra=None, labels_extra=None):
    torch.manual_seed(seed)
    cfg = T.AutoConfig.for_model(family, **TINY, **FAMILY[family], **(extra or {}))
    model = getattr(T, cls_name)(cfg)
    with torch.no_grad():  # every parameter non-trivial, ties kept (shared Parameters)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    out_dir = os.path.join(ROOT, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    model.save_pretrained(out_dir)
    model = getattr(T, cls_name).from_pretrained(out_dir, attn_implementation="eager").eval()
    gen = torch.Generator().manual_seed(seed + 1)
    shape = (B, C, S) if cls_name.endswith("MultipleChoice") else (B, S)
    inputs = make_inputs(model.config, gen, shape)
    labels = make_labels(cls_name, model.config, gen, inputs)
    golden = {"class": cls_name, "inputs": {k: tensor_json(v) for k, v in inputs.items()},
              "labels": {k: tensor_json(v) for k, v in labels.items()},
              "outputs": run(model, inputs, labels, cls_name.endswith("Model"))}
    for key, lab in (labels_extra or {}).items():  # another loss on the same logits
        model.config.problem_type = None  # HF stores its first choice in the config
        with torch.no_grad():
            golden.setdefault("extra_losses", {})[key] = {
                "labels": tensor_json(lab), "loss": float(model(**inputs, labels=lab).loss)}
    if name == "bert_mlm":  # the pooler pitfall: HF loads it as BertModel with a random pooler
        base = T.BertModel.from_pretrained(out_dir, attn_implementation="eager").eval()
        with torch.no_grad():
            golden["as_base_model"] = tensor_json(base(**inputs).last_hidden_state)
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))


HEADS = {
    "bert": ["Model", "ForMaskedLM", "ForNextSentencePrediction", "ForPreTraining",
             "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
             "ForMultipleChoice"],
    "roberta": ["Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
                "ForQuestionAnswering", "ForMultipleChoice"],
    "albert": ["Model", "ForMaskedLM", "ForPreTraining", "ForSequenceClassification",
               "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice"],
    "electra": ["Model", "ForMaskedLM", "ForPreTraining", "ForSequenceClassification",
                "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice"],
}
SHORT = {"Model": "base", "ForMaskedLM": "mlm", "ForNextSentencePrediction": "nsp",
         "ForPreTraining": "pretraining", "ForSequenceClassification": "seqcls",
         "ForTokenClassification": "tokcls", "ForQuestionAnswering": "qa",
         "ForMultipleChoice": "mc"}
# Per-class config variations: activations, label counts, dropouts.
EXTRA = {
    "bert_seqcls": dict(num_labels=3),
    "bert_tokcls": dict(num_labels=5, hidden_act="relu"),
    "bert_qa": dict(hidden_act="silu"),
    "roberta_seqcls": dict(num_labels=3),
    "roberta_tokcls": dict(num_labels=4, hidden_act="gelu_new"),
    "albert_seqcls": dict(num_labels=3),
    "albert_tokcls": dict(num_labels=4),
    "electra_seqcls": dict(num_labels=3),
    "electra_tokcls": dict(num_labels=4),
    "electra_pretraining": dict(hidden_act="gelu_new"),
}


def main():
    os.makedirs(ROOT, exist_ok=True)
    seed = 100
    for family, heads in HEADS.items():
        for head in heads:
            name = f"{family}_{SHORT[head]}"
            cls_name = {"bert": "Bert", "roberta": "Roberta", "albert": "Albert",
                        "electra": "Electra"}[family] + head
            labels_extra = None
            if head == "ForSequenceClassification":  # float labels: HF picks multi-label BCE
                labels_extra = {"multi_label": torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])}
            build(name, cls_name, family, seed, EXTRA.get(name), labels_extra)
            seed += 10
    build("bert_regression", "BertForSequenceClassification", "bert", seed, dict(num_labels=1))
    total = 0
    for dirpath, _, files in os.walk(ROOT):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    print(f"wrote {ROOT}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
