#!/usr/bin/env python3
"""Side-by-side curves of training runs as one self-contained SVG (no plotting library needed):
one panel per metric, one coloured line per run, read from metrics.jsonl files (lmforge's trainer
log or scripts/reference/electra_pretrain_ref.py's, which share their keys).

Usage: python3 scripts/runs/plot_side_by_side.py OUT.svg LABEL=metrics.jsonl [LABEL=...] \
         [--metrics eval_rtd_auc,eval_rtd_loss_replaced,...] [--title TEXT] [--x KEY]
"""
import argparse
import json
import math

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
DEFAULT = ["eval_rtd_auc", "eval_rtd_loss_replaced", "eval_rtd_loss_original", "eval_mlm_loss",
           "rtd_loss_replaced", "rtd_loss_original", "rtd_loss", "mlm_loss"]


XKEY = "step"


def series(path, key):
    pts = []
    for line in open(path):
        if not line.strip():
            continue
        d = json.loads(line)
        if key in d and d[key] is not None and d.get(XKEY) is not None:
            pts.append((float(d[XKEY]), float(d[key])))
    return pts


def nice_ticks(lo, hi, n=5):
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    t = math.floor(lo / step) * step
    out = []
    while t <= hi + 1e-12:
        out.append(t)
        t += step
    return out


def panel(x0, y0, w, h, key, runs):
    data = [(label, series(path, key)) for label, path in runs]
    data = [(l, p) for l, p in data if p]
    if not data:
        return ""
    xs = [x for _, p in data for x, _ in p]
    ys = [y for _, p in data for _, y in p]
    xlo, xhi = (0, max(xs)) if XKEY == "step" else (min(xs), max(xs))
    ylo, yhi = min(ys), max(ys)
    pad = (yhi - ylo) * 0.08 or 0.05
    ylo, yhi = ylo - pad, yhi + pad
    sx = lambda x: x0 + 50 + (x - xlo) / max(1e-12, xhi - xlo) * (w - 60)  # noqa: E731
    sy = lambda y: y0 + h - 30 - (y - ylo) / max(1e-12, yhi - ylo) * (h - 50)  # noqa: E731
    s = [f'<text x="{x0 + w / 2}" y="{y0 + 14}" text-anchor="middle" font-size="13">{key}</text>',
         f'<rect x="{x0 + 50}" y="{y0 + 20}" width="{w - 60}" height="{h - 50}" fill="none" '
         f'stroke="#999"/>']
    for t in nice_ticks(ylo, yhi):
        if ylo <= t <= yhi:
            s.append(f'<line x1="{x0 + 50}" x2="{x0 + w - 10}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
                     f'stroke="#eee"/><text x="{x0 + 46}" y="{sy(t) + 4:.1f}" text-anchor="end" '
                     f'font-size="10">{t:g}</text>')
    for t in nice_ticks(xlo, xhi):
        if xlo <= t <= xhi:
            s.append(f'<text x="{sx(t):.1f}" y="{y0 + h - 16}" text-anchor="middle" '
                     f'font-size="10">{t:g}</text>')
    s.append(f'<text x="{x0 + w / 2}" y="{y0 + h - 3}" text-anchor="middle" font-size="10">{XKEY}'
             '</text>')
    for i, (label, pts) in enumerate(data):
        c = COLOURS[[l for l, _ in runs].index(label) % len(COLOURS)]
        d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        s.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="1.6"/>')
        if len(pts) <= 40:
            s += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{c}"/>' for x, y in pts]
    return "\n".join(s)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("runs", nargs="+", help="LABEL=metrics.jsonl")
    p.add_argument("--metrics", default=",".join(DEFAULT))
    p.add_argument("--title", default="")
    p.add_argument("--x", default="step", help="the x axis: step, or another key of the same "
                   "records (e.g. eval_mlm_loss)")
    a = p.parse_args()
    global XKEY
    XKEY = a.x
    runs = [tuple(r.split("=", 1)) for r in a.runs]
    keys = [k for k in a.metrics.split(",") if k]
    cols, w, h = 2, 420, 240
    rows = (len(keys) + cols - 1) // cols
    top = 40 + 18 * len(runs)
    width, height = cols * w + 20, top + rows * h + 10
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>',
            f'<text x="10" y="20" font-size="15">{a.title}</text>']
    for i, (label, _) in enumerate(runs):
        c = COLOURS[i % len(COLOURS)]
        body.append(f'<rect x="12" y="{30 + 18 * i}" width="14" height="4" fill="{c}"/>'
                    f'<text x="32" y="{36 + 18 * i}" font-size="12">{label}</text>')
    for i, k in enumerate(keys):
        body.append(panel(10 + (i % cols) * w, top + (i // cols) * h, w, h, k, runs))
    body.append("</svg>")
    with open(a.out, "w") as f:
        f.write("\n".join(body) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
