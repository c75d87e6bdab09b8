#!/usr/bin/env python3
"""Side-by-side encoder inference benchmark: lmforge (bench_encoder, a subprocess), PyTorch +
transformers (in this process) and ONNX Runtime (in this process, when `pip install onnxruntime
onnx onnxscript` worked; the model is exported with torch.onnx), alternating rounds, same threads.

Models: the real all-MiniLM-L6-v2 (./models/all-MiniLM-L6-v2, skipped when absent) and a
BERT-base-shaped BertModel(BertConfig()) with random weights on each side. Workloads: throughput
(sentences/s) at batch 32 x seq 128 and latency at batch 1 x seq 16: forward + mean pooling, no
grad, fixed random token ids (tokenization not included). Medians over all timed iterations.
Peak RSS: each implementation in a fresh process running the batch-32 workload.

Usage: LMFORGE_NUM_THREADS=2 python3 bench/compare_encoder.py [--rounds 3] [--no-onnx]
       [--workloads throughput,latency] [--models minilm,base] [--no-rss]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from transformers import AutoModel, BertConfig, BertModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = [("throughput", 32, 128), ("latency", 1, 16)]


def load_torch(model_dir):
    torch.manual_seed(0)
    if model_dir:
        return AutoModel.from_pretrained(model_dir).eval()
    return BertModel(BertConfig()).eval()


def inputs(cfg, batch, seq):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, cfg.vocab_size, (batch, seq), generator=g)
    return ids, torch.ones_like(ids), torch.zeros_like(ids)


def torch_runner(model, batch, seq):
    ids, mask, types = inputs(model.config, batch, seq)

    def run():
        t = time.perf_counter()
        with torch.inference_mode():
            h = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            m = mask.unsqueeze(-1).float()
            v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            float(v[0, 0])
        return time.perf_counter() - t
    return run


def export_onnx(model, path):
    ids, mask, types = inputs(model.config, 2, 16)
    kw = dict(input_names=["input_ids", "attention_mask", "token_type_ids"],
              output_names=["last_hidden_state"],
              dynamic_axes={n: {0: "batch", 1: "seq"} for n in
                            ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
              opset_version=17)
    try:
        torch.onnx.export(model, (ids, mask, types), path, dynamo=False, **kw)
    except TypeError:  # older torch without the dynamo argument
        torch.onnx.export(model, (ids, mask, types), path, **kw)


def ort_session(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_runner(sess, cfg, batch, seq):
    ids, mask, types = (t.numpy() for t in inputs(cfg, batch, seq))
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    def run():
        t = time.perf_counter()
        h = sess.run(None, feed)[0]
        m = mask[..., None].astype(np.float32)
        v = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        float(v[0, 0])
        return time.perf_counter() - t
    return run


def peak_rss_mb():
    """VmHWM of this process (ru_maxrss would include the parent's peak, inherited over fork)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe(args):
    """Fresh process: load one implementation, run the batch-32 workload twice, print peak RSS."""
    torch.set_num_threads(args.threads)
    model_dir = args.model if args.probe_model == "real" else None
    if args.probe == "torch":
        run = torch_runner(load_torch(model_dir), 32, 128)
    else:
        cfg = load_torch(model_dir).config if model_dir else BertConfig()
        run = ort_runner(ort_session(args.onnx_path, args.threads), cfg, 32, 128)
    run()
    run()
    print(peak_rss_mb())


def probe_rss(args, kind, which, onnx_path=None):
    cmd = [sys.executable, __file__, "--probe", kind, "--probe-model", which, "--threads",
           str(args.threads), "--model", args.model]
    if onnx_path:
        cmd += ["--onnx-path", onnx_path]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def flops_per_sentence(cfg, seq):
    h, i, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_token = layers * (2 * (4 * h * h + 2 * h * i) + 4 * seq * h)
    return per_token * seq


def weight_bytes(cfg):
    """f32 bytes of the encoder's Linear weights: what a batch-1 forward streams from memory."""
    h, i, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    return 4 * layers * (4 * h * h + 2 * h * i)


def read_bandwidth(binary, mb, threads):
    """Median read GB/s over a working set of `mb` MB (build/bench/bench_bandwidth)."""
    if not os.path.exists(binary):
        return None
    env = dict(os.environ, LMFORGE_NUM_THREADS=str(threads))
    out = subprocess.run([binary, str(mb)], env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["read_gb_s_by_mb"][str(mb)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/bench/bench_encoder"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/all-MiniLM-L6-v2"))
    ap.add_argument("--threads", type=int,
                    default=int(os.environ.get("LMFORGE_NUM_THREADS", os.cpu_count())))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters-throughput", type=int, default=3)
    ap.add_argument("--iters-latency", type=int, default=20)
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--workloads", default="throughput,latency",
                    help="comma-separated subset of throughput,latency")
    ap.add_argument("--models", default="minilm,base", help="comma-separated subset of minilm,base")
    ap.add_argument("--no-rss", action="store_true", help="skip the fresh-process peak-RSS probes")
    ap.add_argument("--probe", choices=["torch", "ort"], help=argparse.SUPPRESS)
    ap.add_argument("--probe-model", choices=["real", "random"], help=argparse.SUPPRESS)
    ap.add_argument("--onnx-path", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.probe:
        return probe(a)
    torch.set_num_threads(a.threads)
    have_ort = False
    if not a.no_onnx:
        try:
            import onnxruntime  # noqa: F401
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401 - torch.onnx.export needs it
            have_ort = True
        except ImportError:
            print("ONNX Runtime skipped: `pip install onnxruntime onnx onnxscript` did not make "
                  "them importable")
    env = dict(os.environ, LMFORGE_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    models = []
    want_models = a.models.split(",")
    workloads = [w for w in WORKLOADS if w[0] in a.workloads.split(",")]
    if "minilm" not in want_models:
        pass
    elif os.path.exists(os.path.join(a.model, "model.safetensors")):
        models.append(("all-MiniLM-L6-v2", a.model))
    else:
        print(f"all-MiniLM-L6-v2 skipped: not installed at {a.model} (bash scripts/install_model.sh)")
    if "base" in want_models:
        models.append(("BERT-base random", None))
    tmp = tempfile.mkdtemp(prefix="lmf_bench_")
    rows = []
    for name, model_dir in models:
        tm = load_torch(model_dir)
        onnx_path, sess = None, None
        if have_ort:
            try:
                onnx_path = os.path.join(tmp, name.replace(" ", "_") + ".onnx")
                export_onnx(tm, onnx_path)
                sess = ort_session(onnx_path, a.threads)
            except Exception as e:  # noqa: BLE001 - report and go on without ORT
                print(f"ONNX Runtime skipped for {name}: export failed: {e}")
                onnx_path, sess = None, None
        lmf_args = ["--model", model_dir] if model_dir else ["--random-base"]
        for wname, batch, seq in workloads:
            iters = a.iters_throughput if wname == "throughput" else a.iters_latency
            trun = torch_runner(tm, batch, seq)
            orun = ort_runner(sess, tm.config, batch, seq) if sess else None
            trun()
            if orun:
                orun()
            times = {"lmforge": [], "pytorch": [], "onnxruntime": []}
            lmf_rss = 0.0
            for r in range(a.rounds):
                out = subprocess.run([a.bin, *lmf_args, "--batch", str(batch), "--seq", str(seq),
                                      "--iters", str(iters)], env=env, check=True,
                                     capture_output=True, text=True).stdout
                rec = json.loads(out.strip().splitlines()[-1])
                times["lmforge"] += rec["times_s"]
                lmf_rss = max(lmf_rss, rec["peak_rss_mb"])
                times["pytorch"] += [trun() for _ in range(iters)]
                if orun:
                    times["onnxruntime"] += [orun() for _ in range(iters)]
                print(f"{name} {wname} round {r + 1}/{a.rounds}: " + ", ".join(
                    f"{k} {statistics.median(v[-iters:]) * 1e3:.1f} ms" for k, v in times.items() if v),
                    flush=True)
            med = {k: statistics.median(v) for k, v in times.items() if v}
            rows.append(dict(model=name, workload=wname, batch=batch, seq=seq, med=med,
                             n=len(times["lmforge"]), gflop=flops_per_sentence(tm.config, seq) * batch / 1e9,
                             lmf_rss=lmf_rss, wbytes=weight_bytes(tm.config)))
        # lmforge's batch-32 figure from its throughput runs (a batch-1 run also holds the packed
        # weight copies of the small-batch kernel, reported separately below).
        tput = [r["lmf_rss"] for r in rows if r["model"] == name and r["workload"] == "throughput"]
        rss = {"lmforge": max(tput) if tput else max(r["lmf_rss"] for r in rows if r["model"] == name)}
        which = "real" if model_dir else "random"
        if not a.no_rss:
            rss["pytorch"] = probe_rss(a, "torch", which)
            if onnx_path:
                rss["onnxruntime"] = probe_rss(a, "ort", which, onnx_path)
        for r in rows:
            if r["model"] == name:
                r["rss"] = rss
        del tm, sess

    print(f"\nencoder inference, forward + mean pooling, {a.threads} threads, torch {torch.__version__}"
          + (f", onnxruntime {__import__('onnxruntime').__version__}" if have_ort else "")
          + f", medians of {a.rounds} alternating rounds (shared, noisy machine)")
    impls = ["lmforge", "pytorch"] + (["onnxruntime"] if have_ort else [])
    print(f"{'model':<18}{'workload':<24}" + "".join(f"{i:>13}" for i in impls)
          + f"{'lmf/pt':>9}" + (f"{'lmf/ort':>9}" if have_ort else "") + f"{'lmf GFLOP/s':>13}")
    for r in rows:
        med = r["med"]
        if r["workload"] == "throughput":
            label = f"sent/s b{r['batch']} x s{r['seq']}"
            vals = {k: r["batch"] / v for k, v in med.items()}
            ratio = lambda k: vals["lmforge"] / vals[k]  # noqa: E731
            fmt_v = "{:>13.1f}"
        else:
            label = f"latency ms b{r['batch']} x s{r['seq']}"
            vals = {k: v * 1e3 for k, v in med.items()}
            ratio = lambda k: vals[k] / vals["lmforge"]  # noqa: E731
            fmt_v = "{:>13.2f}"
        line = f"{r['model']:<18}{label:<24}" + "".join(
            fmt_v.format(vals[i]) if i in vals else f"{'-':>13}" for i in impls)
        line += f"{ratio('pytorch'):>8.2f}x"
        if have_ort:
            line += f"{ratio('onnxruntime'):>8.2f}x" if "onnxruntime" in vals else f"{'-':>9}"
        line += f"{r['gflop'] / med['lmforge']:>13.1f}"
        print(line)
    print("(ratios > 1: lmforge faster; throughput = sentences/s ratio, latency = time ratio)")
    bw_bin = os.path.join(os.path.dirname(a.bin), "bench_bandwidth")
    for r in rows:
        if r["workload"] != "latency":
            continue
        mb = max(1, round(r["wbytes"] / 2**20))
        bw = read_bandwidth(bw_bin, mb, a.threads)
        if not bw:
            print(f"{r['model']}: build bench_bandwidth for the weight-streaming bound")
            continue
        bound_ms = r["wbytes"] / (bw * 1e9) * 1e3
        print(f"{r['model']}: batch 1 streams {r['wbytes'] / 1e6:.0f} MB of f32 Linear weights; at "
              f"the measured {bw:.1f} GB/s read bandwidth ({a.threads} threads, {mb} MB working "
              f"set) that alone takes {bound_ms:.2f} ms; lmforge {r['med']['lmforge'] * 1e3:.2f} ms, "
              f"PyTorch / 3 = {r['med']['pytorch'] * 1e3 / 3:.2f} ms")
    print("\npeak RSS MB (fresh process, batch 32 x seq 128 workload):")
    seen = set()
    for r in rows:
        if r["model"] in seen:
            continue
        seen.add(r["model"])
        print(f"  {r['model']:<18}" + "  ".join(f"{k} {v:.0f}" for k, v in r["rss"].items()))
    for r in rows:
        if r["workload"] == "latency":
            print(f"  lmforge peak RSS in the batch-1 runs of {r['model']}: {r['lmf_rss']:.0f} MB "
                  "(includes the packed weight copies of the small-batch kernel)")


if __name__ == "__main__":
    main()
