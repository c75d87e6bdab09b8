#!/usr/bin/env python3
"""Writes tests/fixtures/loss_goldens.json: torch.nn.functional.cross_entropy losses and logits
gradients for a few logits/targets/ignore_index/label_smoothing/reduction combinations, read by
tests/ops/test_loss.cpp (CrossEntropyGolden).

Regenerate with:  python3 scripts/reference/gen_loss_goldens.py
(from the repository root; needs torch; deterministic, seeded).
"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "loss_goldens.json")


def r(x, digits=9):
    return [float(f"{v:.{digits}g}") for v in x.detach().reshape(-1).tolist()]


def case(name, logits, targets, ignore_index=-100, label_smoothing=0.0):
    out = {
        "name": name,
        "logits_shape": list(logits.shape),
        "logits": r(logits),
        "targets": [int(t) for t in targets.reshape(-1).tolist()],
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
        "results": [],
    }
    for reduction in ("none", "mean", "sum"):
        x = logits.clone().double().requires_grad_(True)
        loss = F.cross_entropy(x, targets, ignore_index=ignore_index,
                               label_smoothing=label_smoothing, reduction=reduction)
        # A fixed, non-uniform upstream gradient for reduction none; 1 for the scalar reductions.
        g = torch.linspace(0.5, 1.5, loss.numel(), dtype=torch.float64).reshape(loss.shape)
        loss.backward(g)
        out["results"].append({"reduction": reduction, "loss": r(loss), "grad_out": r(g),
                               "grad": r(x.grad, 8)})
    return out


def main():
    torch.manual_seed(1234)
    cases = []
    # The logits are rounded to f32 first so that both sides see identical inputs.
    def logits(*shape, scale=1.0):
        return (torch.randn(*shape) * scale).float().double()

    t = torch.tensor([3, 0, 7, 7, 1, 9, 2, 5])
    cases.append(case("plain", logits(8, 10), t))
    t_ign = torch.tensor([3, -100, 7, 1, -100, 0])
    cases.append(case("ignore_rows", logits(6, 10, scale=2.0), t_ign))
    cases.append(case("ignore_rows_smoothing", logits(6, 10, scale=2.0), t_ign, label_smoothing=0.1))
    cases.append(case("custom_ignore_index_smoothing", logits(7, 5), torch.tensor([2, 0, 2, 4, 1, 2, 3]),
                      ignore_index=2, label_smoothing=0.25))
    cases.append(case("large_logits", logits(4, 6, scale=60.0), torch.tensor([5, 0, 2, 3]),
                      label_smoothing=0.05))
    cases.append(case("single_row_1d", logits(9), torch.tensor(4), label_smoothing=0.2))
    cases.append(case("vocab_160", logits(2, 160, scale=3.0), torch.tensor([159, 0])))
    with open(OUT, "w") as f:
        json.dump({"generator": "scripts/reference/gen_loss_goldens.py",
                   "torch_version": torch.__version__, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
