#!/usr/bin/env python3
"""Goldens for lmforge's generation (tasks/generate) from transformers.

(a) tests/fixtures/generate/processors.json: each logits processor generate() uses
    (RepetitionPenalty with and without prompt_ignore_length, NoRepeatNGram, MinLength,
    MinNewTokensLength, Temperature, TopK, TopP, MinP, with min_tokens_to_keep variants) run by
    transformers' own classes on the same seeded random scores / input_ids, plus log_softmax.
(b) tests/fixtures/generate/mock_generate_goldens.json: model.generate() (greedy, beam search
    variants, processors, eos, left-padded batches) on a mock causal LM whose logits are a hash of
    the attended tokens (the same function as the C++ test's MockLM), so the search algorithms are
    checked token for token without a real model.
(c) tests/fixtures/generate/generate_goldens.json: model.generate() outputs (greedy, beam search
    with num_beams 3, length_penalty, early_stopping True/False/"never", num_return_sequences,
    eos ids, single prompts and left-padded batches) of the tiny decoder checkpoints in
    tests/fixtures/decoder/<name>/ (gpt2, llama, qwen2, mistral) for 64 new tokens or as many as
    the context allows. Skipped when those folders are absent.

Regenerate (from the repository root; needs torch + transformers, no network):
    python3 scripts/reference/gen_generate_goldens.py              # both
    python3 scripts/reference/gen_generate_goldens.py --processors-only
"""
import argparse
import hashlib
import json
import math
import os
import pathlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers.generation import logits_process as lp

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "tests" / "fixtures" / "generate"
DECODER_DIR = ROOT / "tests" / "fixtures" / "decoder"


def floats(t):
    # -inf as null (JSON has no infinities); 9 significant digits round-trip float32.
    out = []
    for x in t.float().flatten().tolist():
        if math.isinf(x):
            out.append(None if x < 0 else "inf")
        else:
            out.append(float(f"{x:.9g}"))
    return out


def processor_cases():
    g = torch.Generator().manual_seed(1234)
    rows, vocab, seq = 4, 40, 12
    scores = torch.randn(rows, vocab, generator=g) * 3
    # Repeated tokens (a small id range) so repetition / n-gram rules fire; ids >= vocab too.
    input_ids = torch.randint(0, 12, (rows, seq), generator=g)
    input_ids[1, 3] = vocab + 2  # an id past the output vocabulary (ignored by both)
    # A repeated n-gram suffix in row 0: ... 5 6 7 ... 5 6
    input_ids[0, 2:5] = torch.tensor([5, 6, 7])
    input_ids[0, -2:] = torch.tensor([5, 6])
    # Scores with ties for top-k / min_p.
    tied = scores.clone()
    tied[2, :6] = 1.5
    eos = [3, 7]

    cases = []

    def add(name, proc, kind, args, sc=scores, ids=input_ids):
        out = proc(ids.clone(), sc.clone())
        cases.append({"name": name, "kind": kind, "args": args, "input_ids": ids.tolist(),
                      "scores": floats(sc), "rows": rows, "vocab": vocab, "expected": floats(out)})

    for pen in (1.3, 0.7):
        add(f"repetition_penalty_{pen}", lp.RepetitionPenaltyLogitsProcessor(pen), "repetition_penalty",
            {"penalty": pen})
    ignore = [0, 2, 5, 11]
    add("repetition_penalty_ignore", lp.RepetitionPenaltyLogitsProcessor(1.5, prompt_ignore_length=torch.tensor(ignore)),
        "repetition_penalty", {"penalty": 1.5, "prompt_ignore_length": ignore})
    for n in (1, 2, 3):
        add(f"no_repeat_ngram_{n}", lp.NoRepeatNGramLogitsProcessor(n), "no_repeat_ngram", {"ngram_size": n})
    for m in (5, 13):
        add(f"min_length_{m}", lp.MinLengthLogitsProcessor(m, eos), "min_length", {"min_length": m, "eos": eos})
    for skip, m in ((10, 3), (10, 2)):
        add(f"min_new_tokens_{skip}_{m}", lp.MinNewTokensLengthLogitsProcessor(skip, m, eos), "min_new_tokens",
            {"prompt_length_to_skip": skip, "min_new_tokens": m, "eos": eos})
    for t in (0.7, 1.6):
        add(f"temperature_{t}", lp.TemperatureLogitsWarper(t), "temperature", {"temperature": t})
    for k, keep in ((1, 1), (5, 1), (5, 8), (100, 1)):
        add(f"top_k_{k}_{keep}", lp.TopKLogitsWarper(k, min_tokens_to_keep=keep), "top_k",
            {"top_k": k, "min_tokens_to_keep": keep})
    add("top_k_ties", lp.TopKLogitsWarper(3), "top_k", {"top_k": 3, "min_tokens_to_keep": 1}, sc=tied)
    for p, keep in ((0.9, 1), (0.5, 1), (0.05, 1), (0.05, 3), (1.0, 1)):
        add(f"top_p_{p}_{keep}", lp.TopPLogitsWarper(p, min_tokens_to_keep=keep), "top_p",
            {"top_p": p, "min_tokens_to_keep": keep})
    for p, keep in ((0.1, 1), (0.5, 1), (0.9, 4), (0.0, 1), (1.0, 1)):
        add(f"min_p_{p}_{keep}", lp.MinPLogitsWarper(p, min_tokens_to_keep=keep), "min_p",
            {"min_p": p, "min_tokens_to_keep": keep})
    add("min_p_ties", lp.MinPLogitsWarper(0.9), "min_p", {"min_p": 0.9, "min_tokens_to_keep": 1}, sc=tied)
    # generate()'s sampling chain on one row set: temperature, top-k, top-p, min-p in that order.
    chain = lp.LogitsProcessorList([lp.RepetitionPenaltyLogitsProcessor(1.2), lp.NoRepeatNGramLogitsProcessor(2),
                                    lp.TemperatureLogitsWarper(0.8), lp.TopKLogitsWarper(10),
                                    lp.TopPLogitsWarper(0.9), lp.MinPLogitsWarper(0.05)])
    add("sampling_chain", chain, "chain",
        {"repetition_penalty": 1.2, "no_repeat_ngram_size": 2, "temperature": 0.8, "top_k": 10, "top_p": 0.9,
         "min_p": 0.05})
    add("log_softmax", lambda ids, s: torch.nn.functional.log_softmax(s, dim=-1), "log_softmax", {})
    return cases


# ---- generate() on a mock LM: logits = hash of the attended tokens (tests' mock_logits) ----

MASK64 = (1 << 64) - 1
MOCK_VOCAB = 23


def mock_logits(seq, vocab=MOCK_VOCAB):
    h = 1469598103934665603
    for t in seq:
        h = ((h ^ (t + 1)) * 1099511628211) & MASK64
    out = []
    for v in range(vocab):
        z = (h + 0x9E3779B97F4A7C15 * (v + 1)) & MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
        out.append((z >> 11) / 9007199254740992.0 * 8.0 - 4.0)
    return out


def make_mock_model():
    from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutputWithPast

    class MockConfig(PretrainedConfig):
        model_type = "lmf_mock"

        def __init__(self, vocab_size=MOCK_VOCAB, **kw):
            self.vocab_size = vocab_size
            super().__init__(**kw)

    class MockLM(PreTrainedModel, GenerationMixin):
        config_class = MockConfig

        def __init__(self, config):
            super().__init__(config)
            self.dummy = torch.nn.Parameter(torch.zeros(1))
            self.post_init()

        def forward(self, input_ids=None, attention_mask=None, logits_to_keep=0, **kw):
            B, T = input_ids.shape
            mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
            ids, m = input_ids.tolist(), mask.tolist()
            logits = torch.empty(B, 1, MOCK_VOCAB)  # the last position only (no cache)
            for b in range(B):
                seq = [ids[b][q] for q in range(T) if m[b][q]]
                logits[b, 0] = torch.tensor(mock_logits(seq), dtype=torch.float32)
            return CausalLMOutputWithPast(logits=logits)

    m = MockLM(MockConfig())
    m.generation_config.use_cache = False
    return m.eval()


def mock_cases():
    model = make_mock_model()
    single = [[3, 9, 1, 4]]
    batch = [[5], [1, 2, 3, 4, 5, 6, 7], [8, 8, 9]]
    pad_id = 22
    base = {"max_new_tokens": 24, "do_sample": False, "eos_token_id": None, "use_cache": False}
    greedy = run_generate(model, single, dict(base), pad_id)[0]["output_ids"]
    eos_a, eos_b = greedy[5], greedy[2]
    variants = [
        ("greedy", {}),
        ("greedy_eos", {"eos_token_id": eos_a}),
        ("greedy_processors", {"eos_token_id": [eos_a, eos_b], "repetition_penalty": 1.3,
                               "no_repeat_ngram_size": 2, "min_new_tokens": 3, "min_length": 9}),
        ("beam3", {"num_beams": 3, "num_return_sequences": 3}),
        ("beam3_eos", {"num_beams": 3, "eos_token_id": eos_a, "num_return_sequences": 3}),
        ("beam3_eos2_lp05", {"num_beams": 3, "eos_token_id": [eos_a, eos_b], "length_penalty": 0.5,
                             "num_return_sequences": 2}),
        ("beam3_early_true", {"num_beams": 3, "eos_token_id": [eos_a, eos_b], "early_stopping": True,
                              "num_return_sequences": 3}),
        ("beam3_never_lp2", {"num_beams": 3, "eos_token_id": [eos_a, eos_b], "early_stopping": "never",
                             "length_penalty": 2.0, "num_return_sequences": 3}),
        ("beam3_neg_lp", {"num_beams": 3, "eos_token_id": [eos_a, eos_b], "length_penalty": -1.0}),
        ("beam4_processors", {"num_beams": 4, "eos_token_id": eos_a, "repetition_penalty": 1.5,
                              "no_repeat_ngram_size": 2, "min_new_tokens": 4, "num_return_sequences": 2}),
        ("beam2_short", {"num_beams": 2, "eos_token_id": eos_b, "max_new_tokens": 5}),
    ]
    cases = []
    for vname, extra in variants:
        kw = dict(base)
        kw.update(extra)
        for pname, prompts in (("single", single), ("batch", batch)):
            res = run_generate(model, prompts, kw, pad_id)
            cfg = {k: v for k, v in kw.items() if v is not None and k != "use_cache"}
            cfg["pad_token_id"] = pad_id
            cases.append({"name": f"mock_{vname}_{pname}", "config": cfg, "prompts": prompts, "sequences": res})
    return cases


# ---- generate() goldens on the tiny checkpoints ----

def trim_greedy(row, eos):
    out = []
    for t in row:
        out.append(t)
        if t in eos:
            break
    return out


def run_generate(model, prompts, gen_kwargs, pad_id):
    """Left-pads `prompts`, runs generate, returns per returned sequence its generated ids."""
    L = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), L), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, L - len(p):] = torch.tensor(p)
        mask[i, L - len(p):] = 1
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, return_dict_in_generate=True,
                             output_scores=True, pad_token_id=pad_id, **gen_kwargs)
    seqs = out.sequences[:, L:].tolist()
    eos = gen_kwargs.get("eos_token_id")
    eos = [] if eos is None else (eos if isinstance(eos, list) else [eos])
    res = []
    if gen_kwargs.get("num_beams", 1) > 1:
        lengths = (out.beam_indices != -1).sum(dim=1).tolist()
        for s, n, sc in zip(seqs, lengths, out.sequences_scores.tolist()):
            res.append({"output_ids": s[:n], "score": sc})
    else:
        for s in seqs:
            res.append({"output_ids": trim_greedy(s, eos)})
    return res


def generate_cases(decoder_dir, names):
    from transformers import AutoModelForCausalLM

    models = []
    for name in names:
        d = decoder_dir / name
        if (d / "config.json").exists() and any(d.glob("*.safetensors")):
            models.append(d)
    cases = []
    for d in models:
        model = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32).eval()
        vocab = model.config.vocab_size
        # Which checkpoint the outputs belong to (regenerate when the fixture changes).
        sha = hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()
        g = torch.Generator().manual_seed(7)
        single = [torch.randint(0, vocab, (9,), generator=g).tolist()]
        batch = [torch.randint(0, vocab, (n,), generator=g).tolist() for n in (5, 11, 8)]
        pad_id = 0
        # 64 new tokens where the context allows it (lmforge stops at max_position_embeddings).
        max_pos = getattr(model.config, "max_position_embeddings", None) or model.config.n_positions
        new_tokens = min(64, max_pos - max(len(p) for p in batch + single))
        base = {"max_new_tokens": new_tokens, "do_sample": False, "eos_token_id": None}
        # An eos id the model actually produces mid-way (from a greedy run), so eos handling runs.
        greedy = run_generate(model, single, dict(base), pad_id)[0]["output_ids"]
        eos_id = greedy[len(greedy) // 3]
        variants = [
            ("greedy", {}),
            ("greedy_eos", {"eos_token_id": eos_id}),
            ("greedy_eos_list_rep", {"eos_token_id": [eos_id, greedy[1]], "repetition_penalty": 1.3,
                                     "no_repeat_ngram_size": 3, "min_new_tokens": 4}),
            ("beam3", {"num_beams": 3}),
            ("beam3_eos_lp", {"num_beams": 3, "eos_token_id": eos_id, "length_penalty": 0.6,
                              "num_return_sequences": 3}),
            ("beam3_eos_early_true", {"num_beams": 3, "eos_token_id": eos_id, "early_stopping": True,
                                      "num_return_sequences": 2}),
            ("beam3_eos_never_lp2", {"num_beams": 3, "eos_token_id": eos_id, "early_stopping": "never",
                                     "length_penalty": 2.0, "num_return_sequences": 2}),
            ("beam3_eos_neg_lp", {"num_beams": 3, "eos_token_id": eos_id, "length_penalty": -1.0}),
        ]
        for vname, extra in variants:
            kw = dict(base)
            kw.update(extra)
            for pname, prompts in (("single", single), ("batch", batch)):
                res = run_generate(model, prompts, kw, pad_id)
                cfg = {k: v for k, v in kw.items() if v is not None}
                cfg["pad_token_id"] = pad_id
                cases.append({"model": d.name, "name": f"{d.name}_{vname}_{pname}", "config": cfg,
                              "prompts": prompts, "sequences": res, "weights_sha256": sha})
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--processors-only", action="store_true")
    ap.add_argument("--decoder-dir", default=str(DECODER_DIR),
                    help="folder holding the tiny checkpoints (default tests/fixtures/decoder)")
    ap.add_argument("--models", default="gpt2,llama,qwen2,mistral", help="checkpoint folder names, comma-separated")
    a = ap.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    (OUT_DIR / "processors.json").write_text(json.dumps(
        {"source": "transformers " + __import__("transformers").__version__ + " logits_process classes",
         "cases": processor_cases()}) + "\n")
    print("wrote", OUT_DIR / "processors.json")
    if a.processors_only:
        return
    (OUT_DIR / "mock_generate_goldens.json").write_text(json.dumps(
        {"source": "transformers " + __import__("transformers").__version__ + " generate() on the hashed mock LM",
         "vocab": MOCK_VOCAB, "cases": mock_cases()}) + "\n")
    print("wrote", OUT_DIR / "mock_generate_goldens.json")
    cases = generate_cases(pathlib.Path(a.decoder_dir), a.models.split(","))
    if not cases:
        print("no tiny decoder checkpoints in", a.decoder_dir, "- generate goldens skipped")
        return
    (OUT_DIR / "generate_goldens.json").write_text(json.dumps(
        {"source": "transformers " + __import__("transformers").__version__ + " generate()",
         "cases": cases}) + "\n")
    print("wrote", OUT_DIR / "generate_goldens.json", len(cases), "cases")


if __name__ == "__main__":
    main()
