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
(AutoModelForSeq2SeqLM.from_pretrained with no missing/unexpected keys, and a forward pass; with tokenizer
files, MarianTokenizer.from_pretrained and a short generate().)

Regenerate with:  python3 scripts/reference/gen_translation_train_goldens.py
and the T5 ones (tests/fixtures/translation/t5_step_*.safetensors: one step of tests/fixtures/t5's
t5_relu_tied and t5_gated_untied with dropout 0 on T5_PAIRS, written as t5_train.jsonl; t5_text.json(l): features of text
pairs with --source-prefix through t5_translate's tokenizer) with
   python3 scripts/reference/gen_translation_train_goldens.py --t5
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
    model, info = T.AutoModelForSeq2SeqLM.from_pretrained(path, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                        "mismatched_keys")}
    assert not bad, f"transformers reports {bad}"
    ids = torch.tensor([PAIRS[0][0]])
    out = model(input_ids=ids, decoder_input_ids=torch.tensor([[model.config.decoder_start_token_id]]))
    assert torch.isfinite(out.logits).all()
    print(f"transformers loads {path}: {type(model).__name__}, no missing/unexpected keys, logits finite")
    if os.path.exists(os.path.join(path, "source.spm")):
        tok = T.MarianTokenizer.from_pretrained(path)
        ids = tok("A man is walking.", return_tensors="pt")["input_ids"]
        out = model.generate(ids, max_new_tokens=5)
        print(f"  MarianTokenizer loads it too: {ids.tolist()} -> generate {out.tolist()}")


# T5 (eos = 1, pad = 0 = decoder start, vocabulary 64): the same lengths as PAIRS.
T5_PAIRS = [
    ([12, 7, 45, 3, 1], [8, 22, 5, 1]),
    ([5, 61, 1], [33, 17, 60, 41, 2, 1]),
    ([57, 18, 26, 9, 14, 52, 1], [50, 1]),
    ([40, 2, 38, 1], [11, 63, 29, 3, 1]),
]
T5_GRAD_KEYS = ["shared.weight", "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                "decoder.block.1.layer.1.EncDecAttention.v.weight"]
T5_SOURCE_PREFIX = "translate English to French: "


def trainer_step(model, pairs, grad_keys, with_updates):
    """Seq2SeqTrainer's step on the padded batch of `pairs` (model in float64, train mode): the
    golden tensors "loss", "grad.<k>" for grad_keys, "grad_norm.<name>", "grad_norm", "param.<name>"
    after the step and, with_updates, "update.<name>" = (after - before) / lr."""
    pad = model.config.pad_token_id
    S = max(len(s) for s, _ in pairs)
    L = max(len(t) for _, t in pairs)
    input_ids = torch.tensor([s + [pad] * (S - len(s)) for s, _ in pairs])
    attention_mask = torch.tensor([[1] * len(s) + [0] * (S - len(s)) for s, _ in pairs])
    labels = torch.tensor([t + [-100] * (L - len(t)) for _, t in pairs])
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids)
    loss = LabelSmoother(epsilon=EPS_LS)(out, labels)
    loss.backward()
    named = dict(model.named_parameters())
    golden = {"loss": torch.tensor([loss.item()], dtype=torch.float32)}
    for k in grad_keys:
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
        if with_updates:
            golden["update." + k] = ((v.detach() - before[k]) / LR).float().contiguous()
    return golden


def t5_step(name):
    """One Seq2SeqTrainer step of tests/fixtures/t5/<name> with dropout_rate 0 (the test sets it
    in a copy of the folder), written to translation/t5_step_<name>.safetensors: "loss", "grad_norm",
    "grad_norm.<name>", "grad.<k>" for T5_GRAD_KEYS and "param.<name>" after the step."""
    src = os.path.join(FIX, "t5", name)
    model = T.T5ForConditionalGeneration.from_pretrained(src, dropout_rate=0.0).double()
    model.train()
    golden = trainer_step(model, T5_PAIRS, T5_GRAD_KEYS, with_updates=False)
    save_file(golden, os.path.join(OUT, f"t5_step_{name}.safetensors"))
    print(f"T5 {name}: loss {golden['loss'].item():.6f} grad_norm {golden['grad_norm'].item():.6f}")


def t5_text_features():
    """run_translation's features of two text pairs through tests/fixtures/t5/t5_translate's
    tokenizer with --source_prefix: translation/t5_text.json {"pairs", "prefix", "input_ids",
    "labels"}; the pairs are also written as translation/t5_text.jsonl."""
    tok = T.AutoTokenizer.from_pretrained(os.path.join(FIX, "t5", "t5_translate"))
    pairs = [("A man is walking a dog.", "Un homme promène un chien."),
             ("Two children play in the park.", "Deux enfants jouent dans le parc.")]
    with open(os.path.join(OUT, "t5_text.jsonl"), "w") as f:
        for en, fr in pairs:
            f.write(json.dumps({"en": en, "fr": fr}) + "\n")
    enc = tok([T5_SOURCE_PREFIX + en for en, _ in pairs], text_target=[fr for _, fr in pairs])
    with open(os.path.join(OUT, "t5_text.json"), "w") as f:
        json.dump({"prefix": T5_SOURCE_PREFIX, "input_ids": enc["input_ids"],
                   "labels": enc["labels"]}, f)
        f.write("\n")


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--t5":
        torch.manual_seed(0)
        with open(os.path.join(OUT, "t5_train.jsonl"), "w") as f:
            for src, tgt in T5_PAIRS:
                f.write(json.dumps({"en": src, "fr": tgt}) + "\n")
        for name in ("t5_relu_tied", "t5_gated_untied"):
            t5_step(name)
        t5_text_features()
        return
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
    golden = trainer_step(model, PAIRS, GRAD_KEYS, with_updates=True)
    # No metadata: safetensors writes a metadata map in hash order (not byte-deterministic).
    save_file(golden, os.path.join(OUT, "step.safetensors"))
    print(f"loss {golden['loss'].item():.6f} grad_norm {golden['grad_norm'].item():.6f}; wrote {OUT}")


if __name__ == "__main__":
    main()
