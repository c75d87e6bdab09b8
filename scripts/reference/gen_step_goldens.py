#!/usr/bin/env python3
"""One training step of every tiny BERT/RoBERTa/ALBERT/ELECTRA head checkpoint in
tests/fixtures/bert/<name>/ (made by gen_bert_goldens.py): the loss, every parameter gradient and
every parameter update of one torch.optim.AdamW step, written to tests/fixtures/step/<case>.safetensors
and read by tests/models/test_train_step.cpp.

Each model is loaded by transformers with every dropout probability set to 0 (eager attention,
train mode), in float64 so that the golden carries no float32 rounding of its own, and given a
fixed padded batch with labels (-100 where ignored). The AdamW step uses lr 1e-3, betas/eps
defaults, weight decay 0.01 on the parameters HF Trainer decays (get_decay_parameter_names) and
0 on the rest (biases, LayerNorm).

Stored per case: "input.<key>" / "label.<key>" (i64 or f32), "loss" [1] f32, "grad.<name>" f32
for every parameter that receives a gradient (torch's named_parameters names: a tied tensor
appears once, with both gradients summed), "step.<name>" f16 = (p_new - p_old) / lr (about
+-1 after one Adam step, so f16 keeps it to 5e-4 relative; f32 would double the fixture size),
and in the metadata "decay": the comma-separated names HF Trainer puts in the decay group.

Regenerate with:  python3 scripts/reference/gen_step_goldens.py
(from the repository root; needs torch, transformers 5.x, safetensors; deterministic, no network).
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
import transformers as T  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BERT = os.path.join(HERE, "..", "..", "tests", "fixtures", "bert")
OUT = os.path.join(HERE, "..", "..", "tests", "fixtures", "step")
LR, WD = 1e-3, 0.01
B, C, S = 3, 3, 8  # batch, choices, sequence

# case name -> (fixture folder, label variant)
CASES = {}
for fam in ["bert", "roberta", "albert", "electra"]:
    for head in ["mlm", "nsp", "pretraining", "seqcls", "tokcls", "qa", "mc"]:
        if os.path.isdir(os.path.join(BERT, f"{fam}_{head}")):
            CASES[f"{fam}_{head}"] = (f"{fam}_{head}", None)
CASES["bert_regression"] = ("bert_regression", None)
CASES["electra_multilabel"] = ("electra_seqcls", "multi_label")

DROPOUTS = ["hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout",
            "classifier_dropout_prob", "summary_first_dropout", "summary_last_dropout"]


def make_inputs(cfg, gen, shape):
    pad = cfg.pad_token_id
    ids = torch.randint(3, cfg.vocab_size, shape, generator=gen)
    ids[ids == pad] = pad + 2
    mask = torch.ones(shape, dtype=torch.long)
    flat_ids, flat_mask = ids.view(-1, S), mask.view(-1, S)
    for row in range(flat_ids.shape[0]):  # rows padded by 0, 3, 1, 0, 3, 1, ... tokens
        n = [0, 3, 1][row % 3]
        if n:
            flat_ids[row, S - n:] = pad
            flat_mask[row, S - n:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if cfg.type_vocab_size > 1:
        types = torch.zeros(shape, dtype=torch.long)
        types.view(-1, S)[:, 4:] = 1
        types[mask == 0] = 0
        inputs["token_type_ids"] = types
    return inputs


def mlm_labels(ids, mask, gen):
    labels = torch.full(ids.shape, -100)
    chosen = (torch.rand(ids.shape, generator=gen) < 0.4) & (mask == 1)
    chosen[:, 1] = True  # every row has a label
    labels[chosen] = ids[chosen]
    return labels


def make_labels(cls_name, cfg, variant, gen, inputs):
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    if cls_name.endswith("ForMaskedLM"):
        return {"labels": mlm_labels(ids, mask, gen)}
    if cls_name == "ElectraForPreTraining":  # padded positions carry labels the loss ignores
        return {"labels": torch.randint(0, 2, ids.shape, generator=gen)}
    if cls_name.endswith("ForPreTraining"):
        key = "sentence_order_label" if cls_name.startswith("Albert") else "next_sentence_label"
        return {"labels": mlm_labels(ids, mask, gen), key: torch.tensor([0, 1, 1])}
    if cls_name.endswith("NextSentencePrediction"):
        return {"labels": torch.tensor([1, 0, 1])}
    if cls_name.endswith("SequenceClassification"):
        if cfg.num_labels == 1:
            return {"labels": torch.tensor([0.5, -1.25, 2.0])}
        if variant == "multi_label":
            return {"labels": torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])}
        return {"labels": torch.tensor([2, 0, 1])}
    if cls_name.endswith("TokenClassification"):
        labels = torch.randint(0, cfg.num_labels, ids.shape, generator=gen)
        labels[mask == 0] = -100
        labels[:, 0] = -100  # [CLS]
        labels[0, 3] = -100  # a continuation sub-token
        return {"labels": labels}
    if cls_name.endswith("QuestionAnswering"):  # 100 is clamped to S and ignored, as in HF
        return {"start_positions": torch.tensor([1, 3, 0]),
                "end_positions": torch.tensor([4, 100, 6])}
    if cls_name.endswith("MultipleChoice"):
        return {"labels": torch.tensor([2, 1, 0])}
    raise ValueError(cls_name)


def run_case(case, folder, variant, seed):
    path = os.path.join(BERT, folder)
    cfg = T.AutoConfig.from_pretrained(path)
    for k in DROPOUTS:
        if hasattr(cfg, k):
            setattr(cfg, k, 0.0)
    cls_name = cfg.architectures[0]
    gen = torch.Generator().manual_seed(seed)
    shape = (B, C, S) if cls_name.endswith("MultipleChoice") else (B, S)
    inputs = make_inputs(cfg, gen, shape)
    labels = make_labels(cls_name, cfg, variant, gen, inputs)

    def step(dtype):
        model = getattr(T, cls_name).from_pretrained(path, config=cfg, attn_implementation="eager")
        model = model.to(dtype).train()
        model.config.problem_type = None
        out = model(**inputs, **{k: v.to(dtype) if v.is_floating_point() else v
                                 for k, v in labels.items()})
        out.loss.backward()
        named = list(model.named_parameters())
        old = {n: p.detach().clone() for n, p in named}
        grads = {n: p.grad.detach().clone() for n, p in named if p.grad is not None}
        decay = set(T.Trainer.get_decay_parameter_names(None, model))
        groups = [{"params": [p for n, p in named if n in decay], "weight_decay": WD},
                  {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}]
        torch.optim.AdamW(groups, lr=LR).step()
        steps = {n: (p.detach() - old[n]) / LR for n, p in named}
        return out.loss.detach(), grads, steps, sorted(decay)

    loss, grads, steps, decay = step(torch.float64)
    loss32, grads32, _, _ = step(torch.float32)  # the noise floor of torch's own float32 run
    # The absolute floor torch's float32 gradients need to pass |a - b| <= 1e-3 |b| + floor,
    # as a fraction of the largest gradient of the model.
    gmax = max(float(g.abs().max()) for g in grads.values())
    noise = max(float(((grads32[n].double() - g).abs() - 1e-3 * g.abs()).clamp(min=0).max())
                for n, g in grads.items()) / gmax
    tensors = {"loss": loss.reshape(1).float()}
    for k, v in inputs.items():
        tensors["input." + k] = v.contiguous()
    for k, v in labels.items():
        tensors["label." + k] = (v.float() if v.is_floating_point() else v).contiguous()
    for n, g in grads.items():
        tensors["grad." + n] = g.float().contiguous()
    for n, s in steps.items():
        tensors["step." + n] = s.half().contiguous()
    save_file(tensors, os.path.join(OUT, case + ".safetensors"),
              metadata={"model": folder, "class": cls_name, "lr": str(LR), "weight_decay": str(WD),
                       "decay": ",".join(decay)})
    print(f"{case:22s} {cls_name:34s} loss {float(loss):.6f}  torch f32 grads need a floor of "
          f"{noise:.1e} x max|grad| (f32 loss {float(loss32):.6f})")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".safetensors"):
            os.remove(os.path.join(OUT, f))
    for i, (case, (folder, variant)) in enumerate(sorted(CASES.items())):
        run_case(case, folder, variant, 1000 + 7 * i)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(CASES)} cases to {OUT}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
