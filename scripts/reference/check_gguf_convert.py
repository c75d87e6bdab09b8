#!/usr/bin/env python3
"""Checks lmforge's GGUF conversions with transformers (and llama.cpp when llama-cpp-python imports).

    python3 scripts/reference/check_gguf_convert.py ORIG.gguf HF_DIR [OUT.gguf ...]

ORIG.gguf: the source GGUF; HF_DIR: what `lmforge convert ORIG.gguf -o HF_DIR` wrote
(tasks::write_hf_folder); OUT.gguf: files `lmforge convert HF_DIR --to gguf` wrote
(tasks::hf_to_gguf). Checks, printing one line each and exiting non-zero on a failure:
  - transformers loads HF_DIR with empty loading info, and its logits on a prompt equal (max abs
    difference printed, <= 1e-5 required) those of transformers loading ORIG.gguf (gguf_file=);
  - the tokenizer of HF_DIR gives the ids of transformers' GGUF tokenizer on a few prompts;
  - transformers loads each OUT.gguf (gguf_file=) and its logits are close to ORIG's
    (f32: <= 1e-4; f16/q8_0: printed only);
  - with llama_cpp: each OUT.gguf loads, tokenizes the prompts as transformers does, and its
    greedy continuation (16 tokens) equals transformers' greedy continuation on HF_DIR (required for
    f32; printed for the others). Not compared with llama.cpp on ORIG: llama.cpp multiplies quantized
    weights with quantized activations, which moves its greedy path (on SmolLM2 Q4_1 it parts after
    4 tokens from both transformers and llama.cpp on the f32 file, which agree).
"""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

PROMPTS = ["The capital of France is", "def fibonacci(n):", "<|im_start|>user\nHi!<|im_end|>\n"]


def load_gguf(path):
    d, f = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(d, gguf_file=f)


def logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def main():
    orig, hf_dir, outs = sys.argv[1], sys.argv[2], sys.argv[3:]
    ok = True
    ref_model, ref_tok = load_gguf(orig)
    ids = ref_tok(PROMPTS[0])["input_ids"]
    ref = logits(ref_model, ids)

    model, info = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32,
                                                       output_loading_info=True)
    empty = all(not v for v in info.values())
    diff = (logits(model.eval(), ids) - ref).abs().max().item()
    print(f"HF folder: loading info empty={empty}, logits max |diff| vs GGUF = {diff:.3g}")
    ok &= empty and diff <= 1e-5
    tok = AutoTokenizer.from_pretrained(hf_dir)
    same = all(tok(p)["input_ids"] == ref_tok(p)["input_ids"] for p in PROMPTS)
    print(f"HF folder tokenizer ids equal transformers' GGUF tokenizer: {same}")
    ok &= same

    try:
        import llama_cpp
    except ImportError:
        llama_cpp = None
        print("llama_cpp not importable: llama.cpp checks skipped")

    def greedy(path):
        llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=2, verbose=False)
        toks = [llm.tokenize(p.encode(), add_bos=False, special=True) for p in PROMPTS]
        out = []
        for t in llm.generate(toks[0], temp=0.0, top_k=1):
            out.append(t)
            if len(out) == 16:
                break
        return toks, out

    with torch.no_grad():
        gen = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)
    ref_greedy = ([tok(p)["input_ids"] for p in PROMPTS], gen[0, len(ids):].tolist())
    for path in outs:
        m, _ = load_gguf(path)
        d = (logits(m, ids) - ref).abs().max().item()
        line = f"{os.path.basename(path)}: transformers logits max |diff| vs ORIG = {d:.3g}"
        if "f32" in os.path.basename(path):
            ok &= d <= 1e-4
        if llama_cpp:
            g = greedy(path)
            line += (f"; llama.cpp prompt ids equal={g[0] == ref_greedy[0]}, "
                     f"greedy 16 equal to transformers on HF_DIR={g[1] == ref_greedy[1]}")
            ok &= g[0] == ref_greedy[0]
            if "f32" in os.path.basename(path):
                ok &= g[1] == ref_greedy[1]
        print(line)
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
