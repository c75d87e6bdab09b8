#!/usr/bin/env python3
"""Supervised fine-tuning data and one step as TRL's SFTTrainer (trl 1.16) prepares and takes them,
for tests/train/test_sft_train.cpp (tests/fixtures/sft/):

- tokenizer_config.json: a chat template (turns as "<s>ROLE\\n...</s>\\n", generation prompt
  "<s>assistant\\n") and special tokens for the byte-level BPE of tests/fixtures/decoder/llama
  (the test puts the two files in one folder, as done here in a temporary one);
- alpaca.json / chat.jsonl: records written by hand (not from the Alpaca data), some malformed
  (missing or empty answers, a conversation that does not end with the assistant, messages that
  are not a list), which lmforge skips and reports;
- examples.json: {"alpaca_chat", "chat", "alpaca_text"}: per valid record its "input_ids" and
  "labels" (-100 where not trained) with the completion-only loss, and "labels_all" without it.
  Alpaca records become a conversational prompt-completion (user: instruction, plus "\\n\\n" and
  the input when there is one; assistant: output) and go through SFTTrainer's _prepare_dataset
  (apply_chat_template of the prompt with the generation prompt vs of the whole conversation,
  the completion after their common prefix). Chat records: a single exchange is the same
  prompt-completion (prompt = every message before the last, completion = the last, an
  assistant's); with several assistant turns lmforge trains every assistant turn, each as the
  prompt-completion rule gives it for the conversation up to that turn (TRL's own multi-turn
  alternative, assistant_only_loss, needs {% generation %} markers in the template): computed here
  with apply_chat_template the same way. "alpaca_text": without a chat template, the Alpaca
  prompt format (Stanford Alpaca's two prompts) as a non-conversational prompt-completion (the
  tokenizer's special tokens, EOS appended to the completion by SFTTrainer).
- step.safetensors: one step of tests/fixtures/decoder/llama (float64) on the batch of the four
  alpaca_chat examples as TRL's DataCollatorForLanguageModeling pads them (right padding with the
  pad token, labels -100): "loss" (the model's loss over the trained tokens), "grad_norm",
  "grad_norm.<name>" and "param.<name>" after clip_grad_norm_(1.0) and AdamW(lr 1e-3, weight
  decay 0.01 on Trainer.get_decay_parameter_names).
- step_gpt2.safetensors: the same step (same batch, same token ids: the GPT-2 fixture has the same
  tokenizer.json) of tests/fixtures/decoder/gpt2 (GPT2LMHeadModel, float64), same keys. Its
  config's dropout (attn_pdrop, embd_pdrop, resid_pdrop, summary_first_dropout) is 0.1 and
  SFTTrainer leaves dropout on; the golden is computed with those (and attention_dropout) set to
  0.0, as tests/train_data_util.h's copy_decoder_without_dropout does for the C++ side. lm_head is
  tied to transformer.wte: named_parameters lists the shared tensor once, as
  "transformer.wte.weight" (no "param.lm_head.weight" / "grad_norm.lm_head.weight"); the Conv1D
  weights are stored as HF keeps them ([in, out]). The LLaMA step is also taken through this
  dropout-free config (its attention_dropout is already 0.0, so nothing changes).

Regenerate with:  python3 scripts/reference/gen_sft_goldens.py
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
from trl import SFTConfig, SFTTrainer  # noqa: E402
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures")
OUT = os.path.join(FIX, "sft")
MODEL = os.path.join(FIX, "decoder", "llama")
GPT2 = os.path.join(FIX, "decoder", "gpt2")
DROPOUT_KEYS = ("attn_pdrop", "embd_pdrop", "resid_pdrop", "summary_first_dropout",
                "attention_dropout")  # as tests/train_data_util.h copy_decoder_without_dropout
LR, WD, MAX_GRAD_NORM, MAX_LENGTH = 1e-3, 0.01, 1.0, 1024
TEMPLATE = ("{% for message in messages %}{{ '<s>' + message['role'] + '\\n' + message['content'] + "
            "'</s>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<s>assistant\\n' }}{% endif %}")
ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")


def tokenizer_dir(with_template):
    d = tempfile.mkdtemp()
    shutil.copy(os.path.join(MODEL, "tokenizer.json"), d)
    cfg = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
           "model_max_length": 96, "tokenizer_class": "PreTrainedTokenizerFast"}
    if with_template:
        cfg["chat_template"] = TEMPLATE
        with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f)
    return d


def valid_alpaca():
    out = []
    for r in json.load(open(os.path.join(OUT, "alpaca.json"))):
        if isinstance(r.get("output"), str) and r["output"].strip():
            out.append(r)
    return out


def valid_chat():
    out = []
    for line in open(os.path.join(OUT, "chat.jsonl")):
        if not line.strip():
            continue
        m = json.loads(line)["messages"]
        if isinstance(m, list) and m and m[-1]["role"] == "assistant" and m[-1]["content"].strip():
            out.append(m)
    return out


def user_text(r):
    return r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "")


def trl_prepare(tok, rows, completion_only=True):
    """SFTTrainer's _prepare_dataset on `rows` (a list of dicts): input_ids and labels."""
    model = T.AutoModelForCausalLM.from_pretrained(MODEL)
    args = SFTConfig(output_dir=tempfile.mkdtemp(), max_length=MAX_LENGTH, report_to=[],
                     completion_only_loss=completion_only, dataset_num_proc=None,
                     bf16=False, use_cpu=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tok)
    ds = trainer.train_dataset
    return [{"input_ids": ds[i]["input_ids"], "labels": ds[i]["labels"]} for i in range(len(ds))]


def multi_turn(tok, messages):
    """Every assistant turn trained, each as the prompt-completion rule for the conversation up to
    that turn (the completion after the common prefix of prompt and prompt + completion)."""
    ids = tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    labels = [-100] * len(ids)

    def prefix(a, b):
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        p = tok.apply_chat_template(messages[:i], tokenize=True, return_dict=True,
                                    add_generation_prompt=True)["input_ids"]
        r = tok.apply_chat_template(messages[:i + 1], tokenize=True, return_dict=True)["input_ids"]
        start, end = prefix(p, ids), prefix(r, ids)
        for j in range(start, end):
            labels[j] = ids[j]
    return {"input_ids": ids, "labels": labels}


def load_without_dropout(model_dir):
    """The model (float64, eager attention) with every dropout of its config set to 0.0."""
    config = T.AutoConfig.from_pretrained(model_dir)
    for k in DROPOUT_KEYS:
        if hasattr(config, k):
            setattr(config, k, 0.0)
    return T.AutoModelForCausalLM.from_pretrained(model_dir, config=config,
                                                  attn_implementation="eager").double()


def one_step(model_dir, batch, path):
    model = load_without_dropout(model_dir)
    model.train()
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                labels=batch["labels"])
    out.loss.backward()
    named = dict(model.named_parameters())
    g = {"loss": torch.tensor([out.loss.item()], dtype=torch.float32)}
    for k, v in named.items():
        g["grad_norm." + k] = torch.tensor([v.grad.norm().item()], dtype=torch.float32)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
    g["grad_norm"] = torch.tensor([grad_norm.item()], dtype=torch.float32)
    decay = set(T.Trainer.get_decay_parameter_names(None, model))
    groups = [{"params": [p for n, p in named.items() if n in decay], "weight_decay": WD},
              {"params": [p for n, p in named.items() if n not in decay], "weight_decay": 0.0}]
    torch.optim.AdamW(groups, lr=LR).step()
    for k, v in named.items():
        g["param." + k] = v.detach().float().contiguous()
    save_file(g, path)
    return out.loss.item(), grad_norm.item()


def main():
    torch.manual_seed(0)
    tok = T.AutoTokenizer.from_pretrained(tokenizer_dir(True))
    tok_plain = T.AutoTokenizer.from_pretrained(tokenizer_dir(False))
    alpaca = valid_alpaca()
    chat = valid_chat()
    pc_rows = [{"prompt": [{"role": "user", "content": user_text(r)}],
                "completion": [{"role": "assistant", "content": r["output"]}]} for r in alpaca]
    golden = {"template": TEMPLATE}
    for name, rows in (("alpaca_chat", pc_rows),):
        a = trl_prepare(tok, rows, True)
        b = trl_prepare(tok, rows, False)
        golden[name] = [{"input_ids": x["input_ids"], "labels": x["labels"],
                         "labels_all": y["labels"]} for x, y in zip(a, b)]
    # chat: single exchanges through TRL's prompt-completion; several assistant turns by the rule
    golden["chat"] = []
    for m in chat:
        if sum(x["role"] == "assistant" for x in m) == 1:
            row = {"prompt": m[:-1], "completion": m[-1:]}
            x = trl_prepare(tok, [row], True)[0]
            y = trl_prepare(tok, [row], False)[0]
            golden["chat"].append({"input_ids": x["input_ids"], "labels": x["labels"],
                                   "labels_all": y["labels"]})
        else:
            x = multi_turn(tok, m)
            golden["chat"].append({"input_ids": x["input_ids"], "labels": x["labels"],
                                   "labels_all": x["input_ids"]})
    text_rows = [{"prompt": (ALPACA_WITH_INPUT if r.get("input") else ALPACA_NO_INPUT).format(**r),
                  "completion": r["output"]} for r in alpaca]
    a = trl_prepare(tok_plain, text_rows, True)
    b = trl_prepare(tok_plain, text_rows, False)
    golden["alpaca_text"] = [{"input_ids": x["input_ids"], "labels": x["labels"],
                              "labels_all": y["labels"]} for x, y in zip(a, b)]
    with open(os.path.join(OUT, "examples.json"), "w") as f:
        json.dump(golden, f)
        f.write("\n")

    # one step on the four alpaca_chat examples, padded by TRL's collator
    collator = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)
    batch = collator([{"input_ids": e["input_ids"], "labels": e["labels"]}
                      for e in golden["alpaca_chat"]])
    for model_dir, name in ((MODEL, "step.safetensors"), (GPT2, "step_gpt2.safetensors")):
        loss, grad_norm = one_step(model_dir, batch, os.path.join(OUT, name))
        print(f"sft {name}: {len(golden['alpaca_chat'])} alpaca, {len(golden['chat'])} chat "
              f"examples; step loss {loss:.6f} grad_norm {grad_norm:.6f}; padded batch "
              f"{list(batch['input_ids'].shape)}")


if __name__ == "__main__":
    main()
