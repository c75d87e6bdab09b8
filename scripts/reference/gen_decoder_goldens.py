#!/usr/bin/env python3
"""Writes tiny seeded random decoder checkpoints (GPT-2, LLaMA with GQA and rope_scaling, Qwen2,
Mistral with a sliding window) with golden outputs under tests/fixtures/decoder/<name>/
(config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
golden.json), read by tests/models/test_gpt2.cpp and tests/models/test_llama.cpp.

Each model is built by transformers (AutoConfig.for_model -> AutoModelForCausalLM.from_config),
its parameters redrawn from a seeded generator (norm weights around 1, biases non-zero), saved with
save_pretrained and loaded back with from_pretrained (eager attention, eval mode, f32), so the
goldens come from exactly what is on disk. The tokenizer is the byte-level BPE of
tests/fixtures/tokenizers/bpe_tokenizer.json (vocab 3000: <s>=0, <pad>=1, </s>=2).

golden.json per model:
  input_ids / attention_mask / position_ids  [2, S]: row 0 left-padded, position ids as
      transformers' generate() makes them (cumsum(mask) - 1, 1 where masked).
  logits_head  [2, S, 128]: logits[..., :128] (compared at attended positions only);
  logits_lse / logits_argmax [2, S]: logsumexp and argmax over the whole vocabulary.
  loss: causal LM loss with labels = input_ids, -100 at padding and at each padded row's first
      token (its predictor is a padding position); grads: {parameter name: gradient} of a few.
  seqcls: {num_labels, score_weight, logits}: the ForSequenceClassification head on the same base
      weights with a seeded score matrix (pad_token_id 1).

Regenerate with:  python3 scripts/reference/gen_decoder_goldens.py
(from the repository root; needs torch and transformers 5.x; deterministic, seeded, no network).
"""
import json
import os
import shutil

import torch
import transformers as T

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "tests", "fixtures", "decoder")
TOKENIZER = os.path.join(HERE, "..", "..", "tests", "fixtures", "tokenizers", "bpe_tokenizer.json")
VOCAB, PAD, BOS, EOS = 3000, 1, 0, 2
S = 10  # sequence length (row 0 has 3 padding positions)
KEEP = 128  # vocabulary columns stored

LLAMA_TINY = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=96,
                  initializer_range=0.1, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
MODELS = {
    "gpt2": ("gpt2", dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=96,
                          initializer_range=0.1, pad_token_id=PAD, bos_token_id=BOS,
                          eos_token_id=EOS, scale_attn_by_inverse_layer_idx=True),
             ["transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_fc.weight",
              "transformer.ln_f.weight", "transformer.wpe.weight"]),
    "llama": ("llama", dict(LLAMA_TINY, tie_word_embeddings=False, attention_bias=False),
              ["model.layers.0.self_attn.k_proj.weight", "model.layers.1.mlp.down_proj.weight",
               "model.norm.weight", "model.layers.0.input_layernorm.weight"]),
    "llama_rope_linear": ("llama", dict(LLAMA_TINY, tie_word_embeddings=True, attention_bias=True,
                                        mlp_bias=True, rope_theta=500.0,
                                        rope_scaling={"rope_type": "linear", "factor": 2.0}),
                          ["model.layers.0.self_attn.q_proj.weight",
                           "model.layers.0.self_attn.o_proj.bias"]),
    "llama_rope_llama3": ("llama", dict(LLAMA_TINY, tie_word_embeddings=True, hidden_size=64,
                                        num_attention_heads=4, num_key_value_heads=1,
                                        rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                      "low_freq_factor": 1.0,
                                                      "high_freq_factor": 4.0,
                                                      "original_max_position_embeddings": 16}),
                          ["model.layers.1.self_attn.v_proj.weight"]),
    "llama_rope_dynamic": ("llama", dict(LLAMA_TINY, tie_word_embeddings=True,
                                         max_position_embeddings=6,
                                         rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
                           ["model.layers.0.self_attn.q_proj.weight"]),
    "qwen2": ("qwen2", dict(LLAMA_TINY, tie_word_embeddings=True),
              ["model.layers.0.self_attn.q_proj.bias", "model.layers.1.self_attn.v_proj.weight"]),
    "mistral": ("mistral", dict(LLAMA_TINY, tie_word_embeddings=True, sliding_window=4),
                ["model.layers.0.self_attn.k_proj.weight", "model.layers.1.mlp.gate_proj.weight"]),
}


def r(t):
    return [float(f"{v:.7g}") for v in t.detach().reshape(-1).tolist()]


def tensor_json(t):
    return {"shape": list(t.shape), "data": r(t) if t.is_floating_point() else
            [int(v) for v in t.reshape(-1).tolist()]}


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def inputs(gen):
    ids = torch.randint(3, VOCAB, (2, S), generator=gen)
    mask = torch.ones(2, S, dtype=torch.long)
    ids[0, :3] = PAD
    mask[0, :3] = 0
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    labels = ids.masked_fill(mask == 0, -100)
    labels[0, 3] = -100  # its predictor (position 2) is padding
    return ids, mask, pos, labels


def main():
    torch.manual_seed(0)
    tok_json = open(TOKENIZER, encoding="utf-8").read()
    for name, (model_type, kw, grad_names) in MODELS.items():
        gen = torch.Generator().manual_seed(sum(map(ord, name)))
        cfg = T.AutoConfig.for_model(model_type, **kw)
        model = T.AutoModelForCausalLM.from_config(cfg)
        randomize(model, gen)
        out_dir = os.path.join(ROOT, name)
        shutil.rmtree(out_dir, ignore_errors=True)
        model.save_pretrained(out_dir)
        with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(tok_json)
        with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                       "unk_token": "<unk>", "model_max_length": cfg.max_position_embeddings
                       if model_type != "gpt2" else cfg.n_positions,
                       "tokenizer_class": "PreTrainedTokenizerFast"}, f, indent=2)
            f.write("\n")

        model = T.AutoModelForCausalLM.from_pretrained(out_dir, attn_implementation="eager",
                                                       dtype=torch.float32)
        model.eval()
        ids, mask, pos, labels = inputs(gen)
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, labels=labels)
        out.loss.backward()
        params = dict(model.named_parameters())
        logits = out.logits.detach()
        g = {"input_ids": tensor_json(ids), "attention_mask": tensor_json(mask),
             "position_ids": tensor_json(pos), "labels": tensor_json(labels),
             "logits_head": tensor_json(logits[..., :KEEP]),
             "logits_lse": tensor_json(torch.logsumexp(logits, -1)),
             "logits_argmax": tensor_json(logits.argmax(-1)),
             "loss": float(out.loss), "grads": {n: tensor_json(params[n].grad) for n in grad_names}}

        # Sequence classification on the same base weights with a seeded score matrix.
        seq = T.AutoModelForSequenceClassification.from_pretrained(
            out_dir, num_labels=3, attn_implementation="eager", dtype=torch.float32)
        seq.eval()
        with torch.no_grad():
            seq.score.weight.copy_(0.3 * torch.randn(seq.score.weight.shape, generator=gen))
            sl = seq(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        g["seqcls"] = {"num_labels": 3, "score_weight": tensor_json(seq.score.weight),
                       "logits": tensor_json(sl)}
        with open(os.path.join(out_dir, "golden.json"), "w") as f:
            json.dump(g, f)
        print(name, "loss", float(out.loss), "->", out_dir)


if __name__ == "__main__":
    main()
