#!/usr/bin/env python3
"""Writes tests/fixtures/attention_goldens.json: a grouped-query, key-padded, causal attention case
run through torch.nn.functional.scaled_dot_product_attention (kv heads expanded for GQA) with
q/k/v gradients for a random upstream gradient, plus HF LLaMA-convention RoPE outputs.

Regenerate (from the repository root):
    python3 scripts/reference/gen_attention_goldens.py
"""
import json
import pathlib

import torch

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "attention_goldens.json"


def pack(t):
    t = t.detach()
    if t.dtype == torch.bool:
        return {"dtype": "bool", "shape": list(t.shape), "data": t.int().flatten().tolist()}
    return {"dtype": "f32", "shape": list(t.shape),
            "data": [float(f"{x:.9g}") for x in t.float().flatten().tolist()]}


def attention_case():
    B, H, Hkv, Tq, Tk, D = 2, 4, 2, 3, 5, 8
    q = torch.randn(B, H, Tq, D, requires_grad=True)
    k = torch.randn(B, Hkv, Tk, D, requires_grad=True)
    v = torch.randn(B, Hkv, Tk, D, requires_grad=True)
    key_padding = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    # Bottom-right aligned causal mask (query i sees keys j <= i + Tk - Tq), like a KV cache.
    causal = torch.ones(Tq, Tk, dtype=torch.bool).tril(diagonal=Tk - Tq)
    mask = causal[None, None] & key_padding[:, None, None, :]
    rep = H // Hkv
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1), attn_mask=mask)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    return {"q": pack(q), "k": pack(k), "v": pack(v), "key_padding_mask": pack(key_padding),
            "causal": True, "out": pack(out), "grad_out": pack(grad_out),
            "grad_q": pack(q.grad), "grad_k": pack(k.grad), "grad_v": pack(v.grad)}


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_case():
    B, H, T, D, theta = 1, 2, 6, 16, 10000.0
    x = torch.randn(B, H, T, D)
    positions = torch.tensor([0, 1, 2, 5, 17, 300])
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    freqs = positions.double()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    out = x.double() * emb.cos() + rotate_half(x.double()) * emb.sin()
    return {"x": pack(x), "positions": positions.tolist(), "theta": theta, "out": pack(out)}


def main():
    torch.manual_seed(0)
    data = {"generator": "scripts/reference/gen_attention_goldens.py",
            "torch": torch.__version__, "attention": attention_case(), "rope": rope_case()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
