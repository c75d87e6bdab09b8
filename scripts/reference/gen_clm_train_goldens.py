#!/usr/bin/env python3
"""Causal-LM training as transformers' examples/pytorch/language-modeling/run_clm.py does it, for
tests/train/test_clm_train.cpp (tests/fixtures/clm/):

Data (blocks_<tokenizer>.json): tests/fixtures/clm/corpus.txt read by datasets' "text" builder with
keep_linebreaks=True (run_clm's default: one example per line, "\\n" kept, universal newlines),
the validation split run_clm makes without a validation file (train[:10%] / train[10%:] with
--validation_split_percentage 10), every line tokenized by the model's tokenizer with its special
tokens (tokenizer(examples["text"])), then group_texts with --block_size 16 (concatenate, drop the
remainder, cut into blocks; labels = input_ids). Two tokenizers: "gpt2" (the decoder fixtures'
byte-level BPE, no special tokens added) and "bos" (the same with a TemplateProcessing that puts <s>
before every line, as LLaMA's tokenizers do; written to clm/bos_tokenizer.json).

Steps (step_<model>.safetensors) for tests/fixtures/decoder/{gpt2,llama,llama_rope_linear} with
every dropout 0, in float64, on the first 4 training blocks of blocks_gpt2.json: "loss" (the
model's causal-LM loss, labels = input_ids), "grad.<name>" for a few parameters (not the
[vocab, hidden] ones, to keep the files small: their updates are in "param."), "grad_norm.<name>"
for every one, "grad_norm" (global, before clipping) and "param.<name>" after HF Trainer's step:
clip_grad_norm_(1.0), torch.optim.AdamW(lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01
on Trainer.get_decay_parameter_names, 0 on the rest). "eval_loss" and "eval_accuracy": run_clm's
evaluation of the model before the step on the validation blocks (the mean loss, and
compute_metrics' accuracy of argmax(logits[:, :-1]) against labels[:, 1:]).

Also checks a folder `lmforge pretrain --recipe gpt` saved (tests/cli/test_clm_cli.sh):
  python3 scripts/reference/gen_clm_train_goldens.py --check-folder OUT TEXT_FILE SPLIT BLOCK EVAL_LOSS
AutoModelForCausalLM.from_pretrained with no missing/unexpected/mismatched keys, AutoTokenizer,
and transformers' eval loss on run_clm's validation blocks of TEXT_FILE (the first SPLIT share of
its lines, read as datasets' text builder reads them) equal to lmforge's EVAL_LOSS (1e-4 relative).

Regenerate with:  python3 scripts/reference/gen_clm_train_goldens.py
(from the repository root; needs torch, transformers 5.x, datasets, safetensors; deterministic, no
network).
"""
import io
import json
import os
import sys
import tempfile
from itertools import chain

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
import transformers as T  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures")
OUT = os.path.join(FIX, "clm")
BLOCK, VAL_PCT, BATCH = 16, 10, 4
LR, WD, MAX_GRAD_NORM = 1e-3, 0.01, 1.0
MODELS = {
    "gpt2": ["transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
             "transformer.h.1.mlp.c_proj.bias", "transformer.ln_f.weight"],
    "llama": ["model.layers.0.self_attn.k_proj.weight",
              "model.layers.1.mlp.down_proj.weight", "model.norm.weight"],
    "llama_rope_linear": ["model.layers.0.self_attn.q_proj.bias",
                          "model.layers.1.mlp.up_proj.weight"],
}


def bos_tokenizer_json():
    with open(os.path.join(FIX, "decoder", "gpt2", "tokenizer.json")) as f:
        t = json.load(f)
    t["post_processor"] = {
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<s>", "type_id": 1}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}},
        ],
    }
    return t


def run_clm_blocks(tokenizer):
    """run_clm's lm_datasets (train and validation input_ids) for corpus.txt."""
    import datasets  # only for the goldens (not needed by --check-folder)
    files = {"train": os.path.join(OUT, "corpus.txt")}
    cache = tempfile.mkdtemp()
    val = datasets.load_dataset("text", data_files=files, split=f"train[:{VAL_PCT}%]",
                                keep_linebreaks=True, cache_dir=cache)
    train = datasets.load_dataset("text", data_files=files, split=f"train[{VAL_PCT}%:]",
                                  keep_linebreaks=True, cache_dir=cache)

    def group(lines):
        ids = list(chain(*[tokenizer(x)["input_ids"] for x in lines]))
        n = (len(ids) // BLOCK) * BLOCK
        return [ids[i:i + BLOCK] for i in range(0, n, BLOCK)]

    return {"block_size": BLOCK, "validation_split_percentage": VAL_PCT,
            "train_lines": len(train), "eval_lines": len(val),
            "train_blocks": group(train["text"]), "eval_blocks": group(val["text"])}


def load_model(name):
    src = os.path.join(FIX, "decoder", name)
    config = T.AutoConfig.from_pretrained(src)
    for k in ("attn_pdrop", "embd_pdrop", "resid_pdrop", "summary_first_dropout",
              "attention_dropout"):
        if hasattr(config, k):
            setattr(config, k, 0.0)
    model = T.AutoModelForCausalLM.from_pretrained(src, config=config, attn_implementation="eager")
    return model.double()


def evaluate(model, blocks):
    model.eval()
    ids = torch.tensor(blocks)
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    preds = out.logits.argmax(-1)[:, :-1]
    acc = (preds == ids[:, 1:]).double().mean().item()
    return out.loss.item(), acc


def step(name, blocks, eval_blocks):
    model = load_model(name)
    eval_loss, eval_acc = evaluate(model, eval_blocks)
    model.train()
    ids = torch.tensor(blocks[:BATCH])
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    named = dict(model.named_parameters())
    golden = {"loss": torch.tensor([loss.item()], dtype=torch.float32),
              "eval_loss": torch.tensor([eval_loss], dtype=torch.float32),
              "eval_accuracy": torch.tensor([eval_acc], dtype=torch.float32)}
    for k in MODELS[name]:
        golden["grad." + k] = named[k].grad.float().contiguous()
    for k, v in named.items():
        golden["grad_norm." + k] = torch.tensor([v.grad.norm().item()], dtype=torch.float32)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
    golden["grad_norm"] = torch.tensor([grad_norm.item()], dtype=torch.float32)
    decay = set(T.Trainer.get_decay_parameter_names(None, model))
    groups = [{"params": [p for n, p in named.items() if n in decay], "weight_decay": WD},
              {"params": [p for n, p in named.items() if n not in decay], "weight_decay": 0.0}]
    torch.optim.AdamW(groups, lr=LR).step()
    for k, v in named.items():
        golden["param." + k] = v.detach().float().contiguous()
    save_file(golden, os.path.join(OUT, f"step_{name}.safetensors"))
    print(f"{name}: loss {loss.item():.6f} grad_norm {grad_norm.item():.6f} eval_loss "
          f"{eval_loss:.6f} eval_accuracy {eval_acc:.4f} ({len(named)} parameters, "
          f"decay on {len(decay)})")


def check_folder(path, text_file, split, block, want):
    model, info = T.AutoModelForCausalLM.from_pretrained(path, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                        "mismatched_keys")}
    assert not bad, f"transformers reports {bad}"
    tok = T.AutoTokenizer.from_pretrained(path)
    with open(text_file, encoding="utf-8") as f:  # universal newlines, as datasets' text builder
        lines = io.StringIO(f.read()).readlines()
    n_eval = round(float(split) * len(lines))
    ids = list(chain(*[tok(x)["input_ids"] for x in lines[:n_eval]]))
    block = int(block)
    blocks = [ids[i:i + block] for i in range(0, (len(ids) // block) * block, block)]
    model.eval()
    with torch.no_grad():
        t = torch.tensor(blocks)
        loss = model(input_ids=t, labels=t).loss.item()
    rel = abs(loss - float(want)) / abs(loss)
    assert rel < 1e-4, f"transformers eval_loss {loss} vs lmforge {want}"
    print(f"transformers loads {path}: {type(model).__name__}, no missing/unexpected keys; eval_loss "
          f"{loss:.6f} on {len(blocks)} blocks = lmforge's {float(want):.6f}")


def main():
    if len(sys.argv) == 7 and sys.argv[1] == "--check-folder":
        check_folder(*sys.argv[2:])
        return
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "bos_tokenizer.json"), "w") as f:
        json.dump(bos_tokenizer_json(), f, ensure_ascii=False)
    toks = {"gpt2": T.PreTrainedTokenizerFast(
                tokenizer_file=os.path.join(FIX, "decoder", "gpt2", "tokenizer.json")),
            "bos": T.PreTrainedTokenizerFast(tokenizer_file=os.path.join(OUT, "bos_tokenizer.json"))}
    blocks = {}
    for tname, tok in toks.items():
        blocks[tname] = run_clm_blocks(tok)
        with open(os.path.join(OUT, f"blocks_{tname}.json"), "w") as f:
            json.dump(blocks[tname], f)
            f.write("\n")
        b = blocks[tname]
        print(f"tokenizer {tname}: {b['train_lines']} / {b['eval_lines']} lines -> "
              f"{len(b['train_blocks'])} / {len(b['eval_blocks'])} blocks of {BLOCK}")
    for name in MODELS:
        step(name, blocks["gpt2"]["train_blocks"], blocks["gpt2"]["eval_blocks"])


if __name__ == "__main__":
    main()
