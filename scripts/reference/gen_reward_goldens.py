#!/usr/bin/env python3
"""Reward modelling as TRL's RewardTrainer (trl 1.16) does it, for tests/train/test_reward_train.cpp
(tests/fixtures/reward/):

- pairs.jsonl: preference records written by hand in HH-RLHF's layout ({"chosen", "rejected"}
  texts sharing an implicit prompt, or an explicit "prompt"), some malformed (chosen equal to
  rejected, a missing or empty side) that lmforge skips and reports;
- ids.json: per valid record "chosen_ids" / "rejected_ids" as RewardTrainer's _prepare_dataset
  makes them with the tiny models' tokenizer (tests/fixtures/decoder/llama/tokenizer.json;
  tokenizer_config.json with eos "</s>" and pad "<pad>"): prompt + side, EOS appended, tokenized
  with the tokenizer's special tokens;
- step_<model>.safetensors for tests/fixtures/decoder/{llama,gpt2} loaded as
  AutoModelForSequenceClassification(num_labels=1) with dropout 0 and a seeded score head
  ("score.weight" in the file, which the test copies), in float64, on the four pairs collated by
  TRL's DataCollatorForPreference (chosen rows then rejected rows, right-padded): "loss"
  (-logsigmoid(r_chosen - r_rejected), mean), "accuracy", "margin" (mean r_c - r_r) of the model
  before the step, "grad_norm" and "param.<name>" after clip_grad_norm_(1.0) and AdamW(lr 1e-3,
  weight decay 0.01 on Trainer.get_decay_parameter_names).

Regenerate with:  python3 scripts/reference/gen_reward_goldens.py
(from the repository root; needs torch, transformers 5.x, trl 1.16, datasets, safetensors;
deterministic, no network).
"""
import json
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
import transformers as T  # noqa: E402
from datasets import Dataset  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from trl import RewardConfig, RewardTrainer  # noqa: E402
from trl.trainer.reward_trainer import DataCollatorForPreference  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures")
OUT = os.path.join(FIX, "reward")
LR, WD, MAX_GRAD_NORM = 1e-3, 0.01, 1.0


def tokenizer():
    d = tempfile.mkdtemp()
    shutil.copy(os.path.join(FIX, "decoder", "llama", "tokenizer.json"), d)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                   "unk_token": "<unk>", "tokenizer_class": "PreTrainedTokenizerFast"}, f)
    return T.AutoTokenizer.from_pretrained(d)


def valid_rows():
    rows = []
    for line in open(os.path.join(OUT, "pairs.jsonl")):
        if not line.strip():
            continue
        r = json.loads(line)
        c, j = r.get("chosen"), r.get("rejected")
        if not c or not j or c == j:
            continue
        rows.append(r)
    return rows


def model(name):
    src = os.path.join(FIX, "decoder", name)
    config = T.AutoConfig.from_pretrained(src, num_labels=1)
    for k in ("attn_pdrop", "embd_pdrop", "resid_pdrop", "summary_first_dropout",
              "attention_dropout"):
        if hasattr(config, k):
            setattr(config, k, 0.0)
    m = T.AutoModelForSequenceClassification.from_pretrained(src, config=config,
                                                             attn_implementation="eager")
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        m.score.weight.copy_(torch.randn(m.score.weight.shape, generator=gen) * 0.1)
    return m


def main():
    tok = tokenizer()
    rows = valid_rows()
    # RewardTrainer's own preparation (EOS, tokenization) of the valid records
    args = RewardConfig(output_dir=tempfile.mkdtemp(), report_to=[], bf16=False, use_cpu=True,
                        max_length=1024)
    trainer = RewardTrainer(model=model("llama"), args=args, processing_class=tok,
                            train_dataset=Dataset.from_list(
                                [{k: r[k] for k in ("prompt", "chosen", "rejected") if k in r}
                                 for r in rows]) if all("prompt" in r for r in rows) else
                            Dataset.from_list([{"prompt": r.get("prompt", ""), "chosen": r["chosen"],
                                                "rejected": r["rejected"]} for r in rows]))
    ds = trainer.train_dataset
    examples = [{"chosen_ids": ds[i]["chosen_ids"], "rejected_ids": ds[i]["rejected_ids"]}
                for i in range(len(ds))]
    with open(os.path.join(OUT, "ids.json"), "w") as f:
        json.dump(examples, f)
        f.write("\n")
    batch = DataCollatorForPreference(pad_token_id=tok.pad_token_id)(examples)
    for name in ("llama", "gpt2"):
        m = model(name).double()
        m.train()
        g = {"score.weight": m.score.weight.detach().float().contiguous()}
        r = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
        rc, rr = torch.chunk(r, 2)
        loss = -torch.nn.functional.logsigmoid(rc - rr).mean()
        g["loss"] = torch.tensor([loss.item()], dtype=torch.float32)
        g["accuracy"] = torch.tensor([(rc > rr).double().mean().item()], dtype=torch.float32)
        g["margin"] = torch.tensor([(rc - rr).mean().item()], dtype=torch.float32)
        loss.backward()
        named = dict(m.named_parameters())
        grad_norm = torch.nn.utils.clip_grad_norm_(m.parameters(), MAX_GRAD_NORM)
        g["grad_norm"] = torch.tensor([grad_norm.item()], dtype=torch.float32)
        decay = set(T.Trainer.get_decay_parameter_names(None, m))
        groups = [{"params": [p for n, p in named.items() if n in decay], "weight_decay": WD},
                  {"params": [p for n, p in named.items() if n not in decay], "weight_decay": 0.0}]
        torch.optim.AdamW(groups, lr=LR).step()
        for k, v in named.items():
            g["param." + k] = v.detach().float().contiguous()
        save_file(g, os.path.join(OUT, f"step_{name}.safetensors"))
        print(f"{name}: loss {loss.item():.6f} accuracy {g['accuracy'].item():.2f} grad_norm "
              f"{grad_norm.item():.6f}")


if __name__ == "__main__":
    main()
