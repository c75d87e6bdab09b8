#!/usr/bin/env python3
"""Optimizer goldens for tests/optim/test_optim_goldens.cpp, made with torch.optim and
transformers' schedules (formulas copied below when transformers is absent).

Regenerate:  python3 scripts/reference/gen_optim_goldens.py > tests/fixtures/optim_goldens.json

Three f32 parameters with fixed initial values ("encoder.dense.weight" decays, ".bias" and
"LayerNorm.weight" do not), a fixed sequence of 10 gradients (null = the parameter has no
gradient that step), and for each scenario the lr used and the parameters after every step.
"""
import json
import math

import torch

STEPS = 10
torch.manual_seed(1234)

names = ["encoder.dense.weight", "encoder.dense.bias", "encoder.LayerNorm.weight"]
shapes = [[3, 4], [3], [4]]
init = [torch.randn(s) for s in shapes]
init[2] = 1.0 + 0.1 * init[2]
grads = []
for step in range(STEPS):
    scale = 0.5 + step / 4.0  # growing gradients so that clipping kicks in part of the time
    g = [scale * torch.randn(s) for s in shapes]
    if step == 4:
        g[1] = None  # bias has no gradient: the optimizer must skip it (state untouched)
    grads.append(g)


def linear_factor(step, warmup, total):
    if step < warmup:
        return float(step) / float(max(1, warmup))
    return max(0.0, float(total - step) / float(max(1, total - warmup)))


def cosine_factor(step, warmup, total, cycles=0.5):
    if step < warmup:
        return float(step) / float(max(1, warmup))
    progress = float(step - warmup) / float(max(1, total - warmup))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * progress)))


def make_schedule(opt, sc):
    try:
        import transformers

        if sc["schedule"] == "linear":
            return transformers.get_linear_schedule_with_warmup(opt, sc["warmup"], sc["total"])
        if sc["schedule"] == "cosine":
            return transformers.get_cosine_schedule_with_warmup(opt, sc["warmup"], sc["total"])
        return transformers.get_constant_schedule(opt)
    except ImportError:
        f = {"linear": lambda s: linear_factor(s, sc["warmup"], sc["total"]),
             "cosine": lambda s: cosine_factor(s, sc["warmup"], sc["total"]),
             "constant": lambda s: 1.0}[sc["schedule"]]
        return torch.optim.lr_scheduler.LambdaLR(opt, f)


def run(sc):
    params = [t.clone().requires_grad_(True) for t in init]
    decay = [params[0]]
    no_decay = [params[1], params[2]]
    groups = [{"params": decay, "weight_decay": sc["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    if sc["optimizer"] == "adamw":
        opt = torch.optim.AdamW(groups, lr=sc["lr"], betas=tuple(sc["betas"]), eps=sc["eps"],
                                foreach=False)
    else:
        opt = torch.optim.SGD(groups, lr=sc["lr"], momentum=sc["momentum"],
                              nesterov=sc["nesterov"], foreach=False)
    sched = make_schedule(opt, sc)
    lrs, norms, after = [], [], []
    for step in range(STEPS):
        for p, g in zip(params, grads[step]):
            p.grad = None if g is None else g.clone()
        if sc["clip"] is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, sc["clip"], foreach=False)))
        lrs.append([grp["lr"] for grp in opt.param_groups])
        opt.step()
        sched.step()
        after.append([p.detach().flatten().tolist() for p in params])
    out = dict(sc)
    out.update(lrs=lrs, norms=norms, after=after)
    return out


scenarios = [
    dict(name="adamw_linear_warmup", optimizer="adamw", lr=0.1, betas=[0.9, 0.999], eps=1e-8,
         weight_decay=0.1, momentum=0.0, nesterov=False, schedule="linear", warmup=3, total=10,
         clip=None),
    dict(name="adamw_cosine_clip", optimizer="adamw", lr=0.05, betas=[0.8, 0.99], eps=1e-6,
         weight_decay=0.01, momentum=0.0, nesterov=False, schedule="cosine", warmup=2, total=10,
         clip=3.0),
    dict(name="sgd_momentum", optimizer="sgd", lr=0.05, betas=[0.9, 0.999], eps=0.0,
         weight_decay=0.01, momentum=0.9, nesterov=False, schedule="constant", warmup=0,
         total=10, clip=None),
    dict(name="sgd_nesterov_clip", optimizer="sgd", lr=0.05, betas=[0.9, 0.999], eps=0.0,
         weight_decay=0.05, momentum=0.9, nesterov=True, schedule="linear", warmup=2, total=10,
         clip=1.5),
]

doc = {
    "generator": "scripts/reference/gen_optim_goldens.py",
    "torch": torch.__version__,
    "names": names,
    "shapes": shapes,
    "init": [t.flatten().tolist() for t in init],
    "grads": [[None if g is None else g.flatten().tolist() for g in gs] for gs in grads],
    "scenarios": [run(sc) for sc in scenarios],
}
print(json.dumps(doc))
