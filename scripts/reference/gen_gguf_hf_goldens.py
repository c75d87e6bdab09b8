#!/usr/bin/env python3
"""transformers' GGUF loading of the real SmolLM2 file, for lmforge's gguf_to_hf tests.

Called by gen_gguf_goldens.py when transformers + torch import (see its docstring for the command);
writes tests/fixtures/gguf/smollm2_hf.json: the folder transformers saves after
`from_pretrained(dir, gguf_file=...)` (config and generation config as the model serializes them,
tokenizer_config.json,
tokenizer.json without its vocab/merges plus samples of them), the loading info, every tensor's
shape and a checksum of its f32 bits (wsum64: sum of bits[k] * (k + 1) mod 2**64), and the token
ids of a set of sentences.
"""
import json
import os
import tempfile

import numpy as np

SENTENCES = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    " leading space and  double  spaces",
    "Numbers: 1234567 and 3.14159, dates 2024-12-06.",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "Unicode: café, naïve, Ünïcödé, 日本語のテキスト, 한국어, русский текст.",
    "Emoji 😀🎉👍🏽 and symbols ©®™ ∑∫√",
    "def f(x):\n    return x ** 2  # square\n",
    "\t\ttabs\tand\nnewlines\r\n",
    "I'm sure you've heard they'll say it's done, we'd.",
    "URL: https://example.com/path?q=1&r=two#frag",
    "<|endoftext|>end of text<|endoftext|>",
    "<repo_name>lmforge<file_sep>main.cpp",
    "SmolLM2 is a family of compact language models.",
    "A" * 50,
    "   ",
    "",
    "mixed<|im_end|>special<|im_start|>tokens",
    "Ça va? ¿Qué tal? Grüß Gott!",
    "x = [1, 2, 3]; y = {'a': 1}",
    "The year 1999 and 2000000000000 big numbers.",
    "trailing space ",
    "\n\n\n",
    "email@example.org, #hashtag, @mention",
    "Ελληνικά και العربية",
    "They said \"quote\" and 'single'.",
    "tokens-with-hyphens_and_underscores",
    "What's 2+2? It's 4.",
    "Long words: antidisestablishmentarianism, pneumonoultramicroscopic",
    "<|im_start|>system\nYou are helpful.<|im_end|>",
]


def wsum64(a):
    bits = np.ascontiguousarray(a, dtype="<f4").reshape(-1).view(np.uint32).astype(np.uint64)
    with np.errstate(over="ignore"):
        w = bits * np.arange(1, bits.size + 1, dtype=np.uint64)
        return f"{int(np.sum(w, dtype=np.uint64)):016x}"


def main(smol, out_dir):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d, f = os.path.dirname(smol), os.path.basename(smol)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model, info = AutoModelForCausalLM.from_pretrained(
        d, gguf_file=f, dtype=torch.float32, output_loading_info=True)
    # save_pretrained refuses a model loaded from GGUF ("not serializable"): take the config the
    # way it serializes it, without the loader's quantization_config (a dequantized save drops it).
    files = {"config.json": json.loads(model.config.to_json_string()),
             "generation_config.json": json.loads(model.generation_config.to_json_string())}
    files["config.json"].pop("quantization_config", None)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        files["tokenizer_config.json"] = json.load(open(os.path.join(tmp, "tokenizer_config.json")))
        tj = json.load(open(os.path.join(tmp, "tokenizer.json")))
        chat = os.path.join(tmp, "chat_template.jinja")
        chat_template = open(chat).read() if os.path.exists(chat) else None
    vocab, merges = tj["model"].pop("vocab"), tj["model"].pop("merges")
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    out = {
        "files": files,
        "chat_template": chat_template,
        "tokenizer_skeleton": tj,
        "vocab_size": len(vocab),
        "vocab_sample": [[t, i] for t, i in by_id[::97]] + [list(by_id[-1])],
        "merges_count": len(merges),
        "merges_sample": [list(m) if not isinstance(m, str) else m.split(" ") for m in merges[::101]],
        "loading_info": {k: sorted(list(v)) for k, v in info.items()},
        "sentences": SENTENCES,
        "ids": [tok(s)["input_ids"] for s in SENTENCES],
        "decoded": [tok.decode(tok(s)["input_ids"]) for s in SENTENCES],
        "tensors": {k: {"shape": list(v.shape), "wsum64": wsum64(v.detach().numpy())}
                    for k, v in model.state_dict().items()},
    }
    (out_dir / "smollm2_hf.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print("smollm2_hf.json written")


SPM_SENTENCES = ["the cat and the dog", " hello caf\u00e9\n", "is <tool> x", "  two  spaces",
                 "unknown \u65e5\u672c zz", "</s> the<s>", "", "hello\tworld"]


def spm_golden(out_dir):
    """transformers' tokenizer for tiny_spm.gguf (tokenizer.json in full: the vocabulary is small)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out_dir), gguf_file="tiny_spm.gguf")
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        tj = json.load(open(os.path.join(tmp, "tokenizer.json")))
        tc = json.load(open(os.path.join(tmp, "tokenizer_config.json")))
    out = {"tokenizer": tj, "tokenizer_config": {k: tc.get(k) for k in
                                                 ["bos_token", "eos_token", "unk_token", "pad_token"]},
           "sentences": SPM_SENTENCES, "ids": [tok(s)["input_ids"] for s in SPM_SENTENCES],
           "decoded": [tok.decode(tok(s)["input_ids"]) for s in SPM_SENTENCES]}
    (out_dir / "tiny_spm_hf.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print("tiny_spm_hf.json written")


def gpt2_golden(out_dir):
    """transformers' GPT-2 model from tiny_gpt2.gguf: config, loading info, tensor checksums."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(
        str(out_dir), gguf_file="tiny_gpt2.gguf", dtype=torch.float32, output_loading_info=True)
    config = json.loads(model.config.to_json_string())
    config.pop("quantization_config", None)
    out = {"config": config, "generation_config": json.loads(model.generation_config.to_json_string()),
           "loading_info": {k: sorted(list(v)) for k, v in info.items()},
           "tensors": {k: {"shape": list(v.shape), "wsum64": wsum64(v.detach().numpy())}
                       for k, v in model.state_dict().items()}}
    (out_dir / "tiny_gpt2_hf.json").write_text(json.dumps(out, indent=1) + "\n")
    print("tiny_gpt2_hf.json written")
