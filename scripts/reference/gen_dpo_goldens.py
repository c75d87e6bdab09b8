#!/usr/bin/env python3
"""Direct preference optimisation as TRL's DPOTrainer (trl 1.16) does it, for
tests/train/test_dpo_train.cpp (tests/fixtures/dpo/):

- pairs.jsonl: four HH-RLHF-style pairs written by hand (implicit prompt);
- ids.json: per pair "prompt_ids", "chosen_ids", "rejected_ids" from DPOTrainer's _prepare_dataset
  with the tiny models' tokenizer (tests/fixtures/decoder/llama/tokenizer.json; eos "</s>", pad
  "<pad>"): extract_prompt (the longest common string prefix, a trailing space given back to the
  answers), EOS appended to each answer, tokenizer(prompt) / tokenizer(prompt + answer) with the
  tokenizer's special tokens, the answers after their common prefix;
- step_llama.safetensors: one step of tests/fixtures/decoder/llama (float64; the reference is the
  same starting weights, frozen) on the four pairs collated by TRL's DataCollatorForPreference
  (chosen rows then rejected rows, right-padded, completion mask): sequence log-probabilities =
  sum of log p(token) over the answer tokens (shifted), DPO's sigmoid loss
  -logsigmoid(beta ((pi_c - ref_c) - (pi_r - ref_r))) with beta 0.1, averaged: "loss",
  "rewards_chosen" / "rewards_rejected" (beta * mean log-ratio), "rewards_accuracy", "grad_norm"
  and "param.<name>" after clip_grad_norm_(1.0) and AdamW(lr 1e-3, weight decay 0.01 on
  Trainer.get_decay_parameter_names). With the policy equal to the reference the first loss is
  log 2; the step's gradients are not zero.
- step_gpt2.safetensors: the same step (same pairs, ids.json token ids: the GPT-2 fixture has the
  same tokenizer.json; same hyper-parameters) of tests/fixtures/decoder/gpt2 (GPT2LMHeadModel,
  float64), same keys. DPOTrainer disables dropout anyway; the policy and the reference are both
  loaded with the config's dropout (attn_pdrop, embd_pdrop, resid_pdrop, summary_first_dropout,
  attention_dropout) set to 0.0, as tests/train_data_util.h's copy_decoder_without_dropout does.
  lm_head is tied to transformer.wte: named_parameters lists the shared tensor once, as
  "transformer.wte.weight" (no "param.lm_head.weight"); the Conv1D weights are stored as HF keeps
  them ([in, out]). The LLaMA models are loaded the same way (attention_dropout already 0.0).

Regenerate with:  python3 scripts/reference/gen_dpo_goldens.py
(from the repository root; needs torch, transformers 5.x, trl 1.16, datasets, safetensors;
deterministic, no network).
"""
import json
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers as T  # noqa: E402
from datasets import Dataset  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402
from trl.trainer.dpo_trainer import DataCollatorForPreference  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures")
OUT = os.path.join(FIX, "dpo")
MODEL = os.path.join(FIX, "decoder", "llama")
GPT2 = os.path.join(FIX, "decoder", "gpt2")
DROPOUT_KEYS = ("attn_pdrop", "embd_pdrop", "resid_pdrop", "summary_first_dropout",
                "attention_dropout")  # as tests/train_data_util.h copy_decoder_without_dropout
LR, WD, MAX_GRAD_NORM, BETA = 1e-3, 0.01, 1.0, 0.1


def tokenizer():
    d = tempfile.mkdtemp()
    shutil.copy(os.path.join(MODEL, "tokenizer.json"), d)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                   "unk_token": "<unk>", "tokenizer_class": "PreTrainedTokenizerFast"}, f)
    return T.AutoTokenizer.from_pretrained(d)


def load_without_dropout(model_dir):
    """The model (float64, eager attention) with every dropout of its config set to 0.0."""
    config = T.AutoConfig.from_pretrained(model_dir)
    for k in DROPOUT_KEYS:
        if hasattr(config, k):
            setattr(config, k, 0.0)
    return T.AutoModelForCausalLM.from_pretrained(model_dir, config=config,
                                                  attn_implementation="eager").double()


def one_step(model_dir, batch, path):
    def seq_logps(model):
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits, labels = logits[:, :-1], labels[:, 1:]
        mask = labels != -100
        lp = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (lp * mask).sum(1)

    ref = load_without_dropout(model_dir).eval()
    with torch.no_grad():
        ref_c, ref_r = seq_logps(ref).chunk(2)
    model = load_without_dropout(model_dir)
    model.train()
    pc, pr = seq_logps(model).chunk(2)
    cr, rr = pc - ref_c, pr - ref_r
    loss = -F.logsigmoid(BETA * (cr - rr)).mean()
    loss.backward()
    g = {"loss": torch.tensor([loss.item()], dtype=torch.float32),
         "rewards_chosen": torch.tensor([(BETA * cr).mean().item()], dtype=torch.float32),
         "rewards_rejected": torch.tensor([(BETA * rr).mean().item()], dtype=torch.float32),
         "rewards_accuracy": torch.tensor([(cr > rr).double().mean().item()], dtype=torch.float32),
         "ref_logps": torch.cat([ref_c, ref_r]).float()}
    named = dict(model.named_parameters())
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
    g["grad_norm"] = torch.tensor([grad_norm.item()], dtype=torch.float32)
    decay = set(T.Trainer.get_decay_parameter_names(None, model))
    groups = [{"params": [p for n, p in named.items() if n in decay], "weight_decay": WD},
              {"params": [p for n, p in named.items() if n not in decay], "weight_decay": 0.0}]
    torch.optim.AdamW(groups, lr=LR).step()
    for k, v in named.items():
        g["param." + k] = v.detach().float().contiguous()
    save_file(g, path)
    return loss.item(), grad_norm.item()


def main():
    tok = tokenizer()
    rows = [json.loads(l) for l in open(os.path.join(OUT, "pairs.jsonl")) if l.strip()]
    args = DPOConfig(output_dir=tempfile.mkdtemp(), report_to=[], bf16=False, use_cpu=True,
                     beta=BETA)
    policy = T.AutoModelForCausalLM.from_pretrained(MODEL, attn_implementation="eager")
    trainer = DPOTrainer(model=policy, args=args, processing_class=tok,
                         train_dataset=Dataset.from_list(rows))
    ds = trainer.train_dataset
    ex = [{k: ds[i][k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")}
          for i in range(len(ds))]
    with open(os.path.join(OUT, "ids.json"), "w") as f:
        json.dump(ex, f)
        f.write("\n")
    batch = DataCollatorForPreference(pad_token_id=tok.pad_token_id, max_length=1024)(ex)

    for model_dir, name in ((MODEL, "step_llama.safetensors"), (GPT2, "step_gpt2.safetensors")):
        loss, grad_norm = one_step(model_dir, batch, os.path.join(OUT, name))
        print(f"dpo {name}: {len(ex)} pairs, loss {loss:.6f} (log 2 = 0.693147) grad_norm "
              f"{grad_norm:.6f}; prompts {[len(e['prompt_ids']) for e in ex]}")


if __name__ == "__main__":
    main()
