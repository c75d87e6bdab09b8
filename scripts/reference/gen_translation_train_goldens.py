#!/usr/bin/env python3
"""One translation training step of a tiny random MarianMTModel in PyTorch, as transformers'
Seq2SeqTrainer takes it, for tests/train/test_translation_train.cpp:

- tests/fixtures/translation/marian_tiny/: tests/fixtures/marian/marian (gen_marian_goldens.py)
  with every dropout set to 0, saved by transformers' save_pretrained (config.json,
  model.safetensors, generation_config.json);
- tests/fixtures/translation/train.jsonl: a fixed batch of pre-tokenized id pairs
  {"en": [...], "fr": [...]} of different lengths, each ending with </s> (id 0), plus one pair with
  an empty side (skipped by lmforge);
- tests/fixtures/translation/step.safetensors (sinusoidal position tables frozen, see below): "loss" [1] (before the step), "grad_norm" [1] (the
  global L2 norm before clipping), "grad.<name>" for a few parameters, "grad_norm.<name>" [1] for every one, and "param.<name>" for every
  parameter after the step (torch's named_parameters: a tied tensor once).

The batch is DataCollatorForSeq2Seq's: sources right-padded with pad (attention_mask 0), labels
padded with -100, decoder_input_ids = shift_tokens_right(labels). The loss is
trainer_pt_utils.LabelSmoother(epsilon=0.1) over the logits (what Seq2SeqTrainer computes with
label_smoothing_factor=0.1). The step is HF Trainer's: clip_grad_norm_(max_grad_norm=1.0), then
torch.optim.AdamW(lr=1e-3, betas (0.9, 0.999), eps 1e-8) with weight decay 0.01 on
Trainer.get_decay_parameter_names and 0 on the rest; the linear schedule's first step uses the
full lr (no warm-up). Computed in float64 (the goldens carry no float32 rounding of their own).

Also checks that transformers loads a folder lmforge saved the same way, when given one:
  python3 scripts/reference/gen_translation_train_goldens.py --check-folder OUT
(MarianMTModel.from_pretrained with no missing/unexpected keys, and a forward pass; with tokenizer
files, MarianTokenizer.from_pretrained and a short generate().)

Regenerate with:  python3 scripts/reference/gen_translation_train_goldens.py
(from the repository root; needs torch, transformers 5.x, safetensors; deterministic, no network).
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
import transformers as T  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers.trainer_pt_utils import LabelSmoother  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures")
SRC = os.path.join(FIX, "marian", "marian")
OUT = os.path.join(FIX, "translation")
LR, WD, EPS_LS, MAX_GRAD_NORM = 1e-3, 0.01, 0.1, 1.0

# (source ids, target ids); eos = 0, pad = 99, vocabulary 100.
PAIRS = [
    ([12, 7, 45, 3, 0], [8, 22, 5, 0]),
    ([5, 61, 0], [33, 17, 90, 41, 2, 0]),
    ([77, 18, 26, 9, 14, 52, 0], [70, 0]),
    ([40, 2, 88, 0], [11, 64, 29, 3, 0]),
]  # target lengths 4, 6, 2, 5: any split into two micro-batches has unequal label counts
GRAD_KEYS = ["model.shared.weight", "model.encoder.layers.0.self_attn.q_proj.weight",
             "model.decoder.layers.1.encoder_attn.v_proj.weight", "model.decoder.layers.1.fc2.bias"]


def check_folder(path):
    model, info = T.MarianMTModel.from_pretrained(path, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                        "mismatched_keys")}
    assert not bad, f"transformers reports {bad}"
    ids = torch.tensor([PAIRS[0][0]])
    out = model(input_ids=ids, decoder_input_ids=torch.tensor([[model.config.decoder_start_token_id]]))
    assert torch.isfinite(out.logits).all()
    print(f"transformers loads {path}: MarianMTModel, no missing/unexpected keys, logits finite")
    if os.path.exists(os.path.join(path, "source.spm")):
        tok = T.MarianTokenizer.from_pretrained(path)
        ids = tok("A man is walking.", return_tensors="pt")["input_ids"]
        out = model.generate(ids, max_new_tokens=5)
        print(f"  MarianTokenizer loads it too: {ids.tolist()} -> generate {out.tolist()}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check-folder":
        check_folder(sys.argv[2])
        return
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    config = T.MarianConfig.from_pretrained(SRC)
    config.dropout = config.attention_dropout = config.activation_dropout = 0.0
    model = T.MarianMTModel.from_pretrained(SRC, config=config)
    tiny = os.path.join(OUT, "marian_tiny")
    model.save_pretrained(tiny)
    with open(os.path.join(OUT, "train.jsonl"), "w") as f:
        for s, t in PAIRS:
            f.write(json.dumps({"en": s, "fr": t}) + "\n")
        f.write(json.dumps({"en": [4, 0], "fr": []}) + "\n")  # an empty side: skipped

    model = T.MarianMTModel.from_pretrained(tiny).double()
    # The sinusoidal tables are frozen (nn.Embedding _freeze=True, as MarianMTModel(config) has
    # them), but transformers 5.25's from_pretrained turns requires_grad back on, so its Trainer
    # would update them and then not save them (MarianMTModel leaves them out). lmforge keeps them
    # frozen; the reference does the same.
    for stack in (model.model.encoder, model.model.decoder):
        stack.embed_positions.weight.requires_grad_(False)
    model.train()
    pad = model.config.pad_token_id
    S = max(len(s) for s, _ in PAIRS)
    L = max(len(t) for _, t in PAIRS)
    input_ids = torch.tensor([s + [pad] * (S - len(s)) for s, _ in PAIRS])
    attention_mask = torch.tensor([[1] * len(s) + [0] * (S - len(s)) for s, _ in PAIRS])
    labels = torch.tensor([t + [-100] * (L - len(t)) for _, t in PAIRS])
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids)
    loss = LabelSmoother(epsilon=EPS_LS)(out, labels)
    loss.backward()
    named = dict(model.named_parameters())
    golden = {"loss": torch.tensor([loss.item()], dtype=torch.float32)}
    for k in GRAD_KEYS:
        golden["grad." + k] = named[k].grad.float().contiguous()
    for k, v in named.items():
        if v.grad is not None:
            golden["grad_norm." + k] = torch.tensor([v.grad.norm().item()], dtype=torch.float32)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
    golden["grad_norm"] = torch.tensor([grad_norm.item()], dtype=torch.float32)
    decay = set(T.Trainer.get_decay_parameter_names(None, model))
    groups = [{"params": [p for n, p in named.items() if n in decay], "weight_decay": WD},
              {"params": [p for n, p in named.items() if n not in decay], "weight_decay": 0.0}]
    before = {k: v.detach().clone() for k, v in named.items()}
    torch.optim.AdamW(groups, lr=LR).step()
    for k, v in named.items():
        golden["param." + k] = v.detach().float().contiguous()
        golden["update." + k] = ((v.detach() - before[k]) / LR).float().contiguous()
    # No metadata: safetensors writes a metadata map in hash order (not byte-deterministic).
    save_file(golden, os.path.join(OUT, "step.safetensors"))
    print(f"loss {loss.item():.6f} grad_norm {grad_norm.item():.6f}; wrote {OUT}")


if __name__ == "__main__":
    main()
