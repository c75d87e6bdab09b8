#!/usr/bin/env python3
"""Module goldens for tests/nn (key names and forward/backward of lmf::nn modules), made with
torch and Hugging Face transformers (BertLayer, LlamaAttention, LlamaMLP).

Regenerate:  python3 scripts/reference/gen_module_goldens.py > tests/fixtures/module_goldens.json

Every case holds its weights (HF state-dict keys), inputs, the output, and the gradients of
sum(output) with respect to every weight and the float input. Weights and inputs are rounded to 5
significant digits *before* running torch, so the JSON text holds them exactly; outputs and
gradients are written with 7 significant digits. Sizes are tiny to keep the file < 500 KB.
"""
import json
import math

import torch
from transformers import BertConfig, LlamaConfig
from transformers.models.bert.modeling_bert import BertLayer
from transformers.models.llama.modeling_llama import LlamaAttention, LlamaMLP, LlamaRotaryEmbedding

torch.manual_seed(20240611)
torch.set_grad_enabled(True)


def short(v, digits):
    return float(f"{v:.{digits}g}")


def rounded(t, digits=5):
    return torch.tensor([short(v, digits) for v in t.flatten().tolist()], dtype=torch.float32).reshape(t.shape)


def enc(t, digits=7):
    t = t.detach()
    vals = t.flatten().tolist()
    if t.is_floating_point():
        vals = [short(v, digits) for v in vals]
    return {"shape": list(t.shape), "data": vals}


def randomise(module, std=0.2):
    """Rounded random weights (larger than HF's 0.02 init so every path matters)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            base = 1.0 if name.endswith("LayerNorm.weight") or name.endswith("norm.weight") else 0.0
            p.copy_(rounded(base + std * torch.randn(p.shape)))


def run_case(module, inputs, forward, float_inputs=()):
    """forward(module, *inputs) -> output; gradients of output.sum()."""
    module.eval()
    module.zero_grad()
    for x in float_inputs:
        x.requires_grad_(True)
    out = forward(module, *inputs)
    out.sum().backward()
    return {
        "weights": {n: enc(p, 9) for n, p in module.state_dict().items()},
        "output": enc(out),
        "grads": {n: enc(p.grad) for n, p in module.named_parameters()},
        "input_grads": [enc(x.grad) for x in float_inputs],
    }


doc = {"generator": "scripts/reference/gen_module_goldens.py", "torch": torch.__version__}

# ---- BertLayer: key names and forward/backward (hidden 32, heads 4, intermediate 64). ----------
bert_cfg = BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64,
                      hidden_act="gelu", layer_norm_eps=1e-12, attention_probs_dropout_prob=0.1,
                      hidden_dropout_prob=0.1)
bert_cfg._attn_implementation = "eager"
bert = BertLayer(bert_cfg)
doc["bert_layer_keys"] = [n for n, _ in bert.named_parameters()]
randomise(bert)
x = rounded(torch.randn(2, 5, 32))
mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def bert_forward(m, h, a):
    out = m(h, attention_mask=a)
    return out[0] if isinstance(out, tuple) else out


case = run_case(bert, (x, additive), bert_forward, float_inputs=(x,))
case.update(config=dict(hidden=32, heads=4, intermediate=64, eps=1e-12), input=enc(x, 9),
            mask=mask.tolist())
doc["bert_layer"] = case

# ---- Linear, LayerNorm, RMSNorm, Embedding. ----------------------------------------------------
lin = torch.nn.Linear(6, 5)
randomise(lin, 0.5)
x = rounded(torch.randn(2, 3, 6))
case = run_case(lin, (x,), lambda m, a: m(a), float_inputs=(x,))
case.update(input=enc(x, 9))
doc["linear"] = case

ln = torch.nn.LayerNorm(8, eps=1e-5)
randomise(ln, 0.5)
x = rounded(3.0 + 2.0 * torch.randn(3, 8))
case = run_case(ln, (x,), lambda m, a: m(a) * torch.arange(8.0), float_inputs=(x,))
case.update(input=enc(x, 9), eps=1e-5, output_weights=list(range(8)))
doc["layer_norm"] = case

rms = torch.nn.RMSNorm(8, eps=1e-6)
randomise(rms, 0.5)
x = rounded(torch.randn(3, 8))
case = run_case(rms, (x,), lambda m, a: m(a) * torch.arange(8.0), float_inputs=(x,))
case.update(input=enc(x, 9), eps=1e-6, output_weights=list(range(8)))
doc["rms_norm"] = case

emb = torch.nn.Embedding(10, 4, padding_idx=0)
randomise(emb, 0.5)
ids = torch.tensor([[1, 0, 3], [3, 9, 1]])
case = run_case(emb, (ids,), lambda m, i: m(i) * torch.arange(1.0, 5.0))
case.update(ids=ids.tolist(), padding_idx=0, output_weights=[1.0, 2.0, 3.0, 4.0])
doc["embedding"] = case

# ---- LLaMA attention (GQA 4 query heads / 2 kv heads, rotary, causal) and LlamaMLP. ------------
llama_cfg = LlamaConfig(hidden_size=16, num_attention_heads=4, num_key_value_heads=2,
                        intermediate_size=24, rope_theta=10000.0, attention_bias=False)
llama_cfg._attn_implementation = "eager"
attn = LlamaAttention(llama_cfg, layer_idx=0)
randomise(attn, 0.3)
rope = LlamaRotaryEmbedding(llama_cfg)
x = rounded(torch.randn(2, 5, 16))
pos = torch.arange(5)[None, :].expand(2, 5)
causal = torch.full((5, 5), torch.finfo(torch.float32).min).triu(1)[None, None]


def llama_forward(m, h):
    return m(h, position_embeddings=rope(h, pos), attention_mask=causal)[0]


case = run_case(attn, (x,), llama_forward, float_inputs=(x,))
case.update(input=enc(x, 9), heads=4, kv_heads=2, rope_theta=10000.0)
doc["llama_attention"] = case

mlp = LlamaMLP(llama_cfg)
randomise(mlp, 0.3)
x = rounded(torch.randn(2, 3, 16))
case = run_case(mlp, (x,), lambda m, a: m(a), float_inputs=(x,))
case.update(input=enc(x, 9), intermediate=24)
doc["swiglu"] = case


# ---- Cross-attention with default names query/key/value/output, torch primitives. -------------
class CrossAttention(torch.nn.Module):
    def __init__(self, dim, kv_dim, heads):
        super().__init__()
        self.heads = heads
        self.query = torch.nn.Linear(dim, dim)
        self.key = torch.nn.Linear(kv_dim, dim)
        self.value = torch.nn.Linear(kv_dim, dim)
        self.output = torch.nn.Linear(dim, dim)

    def forward(self, x, ctx, ctx_mask):
        b, t, d = x.shape
        hd = d // self.heads
        split = lambda y: y.view(b, -1, self.heads, hd).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(ctx)), split(self.value(ctx))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        scores = scores.masked_fill(~ctx_mask[:, None, None, :].bool(), float("-inf"))
        o = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        return self.output(o)


cross = CrossAttention(16, 12, 4)
randomise(cross, 0.3)
x = rounded(torch.randn(2, 3, 16))
ctx = rounded(torch.randn(2, 6, 12))
ctx_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
case = run_case(cross, (x, ctx, ctx_mask), lambda m, a, c, k: m(a, c, k), float_inputs=(x, ctx))
case.update(input=enc(x, 9), context=enc(ctx, 9), context_mask=ctx_mask.tolist(), heads=4)
doc["cross_attention"] = case

print(json.dumps(doc, separators=(",", ":")))
