#!/usr/bin/env python3
"""Loads model folders that lmforge saved (models::save_pretrained) with PyPI transformers and
checks that HF takes them as its own: the class named by config.json "architectures" loads them
with no missing, unexpected or mismatched key and no error (output_loading_info=True), HF's own
save_pretrained of the loaded model writes the same files (compare_saved: config.json with every
field equal but "transformers_version", the writer's own version, so that any transformers 5.x
passes; every other file, model.safetensors included, byte for byte), and, when
the folder holds inputs.json and an expected-output file (lmforge_outputs.json by default, written
by the C++ test), HF's outputs on those inputs equal the expected ones (max |diff| <= --tol).

Usage:  python3 scripts/reference/check_hf_load.py DIR [DIR...] [--expected NAME] [--tol 1e-5]
                                                   [--skip-if-missing]
Exit status 0 when every folder passes, 1 otherwise (one line per folder either way), 77 with
--skip-if-missing when torch or transformers cannot be imported.
Folders to check are made by tests/models/hf_roundtrip.sh (or by hand:
  LMF_SAVE_FIXTURES_OUT=/tmp/out ./build/tests/lmforge_tests --gtest_filter='Tiny/BertSaveFixtures*'
). Needs torch and transformers 5.x; no network.
"""
import argparse
import json
import os
import sys

OUTPUT_KEYS = ["logits", "prediction_logits", "seq_relationship_logits", "sop_logits",
               "start_logits", "end_logits", "last_hidden_state", "pooler_output"]


def load_hf(folder):
    """(model in eval mode, loading_info as sorted lists) for an HF folder."""
    import transformers as T
    with open(os.path.join(folder, "config.json")) as f:
        arch = json.load(f)["architectures"][0]
    cls = getattr(T, arch)
    model, info = cls.from_pretrained(folder, output_loading_info=True,
                                      attn_implementation="eager")
    info = {k: sorted(str(x) for x in v) for k, v in info.items()}
    return arch, model.eval(), info


# config.json fields that name the writer rather than the model (lmforge writes the transformers
# version its format follows; the installed transformers writes its own).
WRITER_FIELDS = ("transformers_version",)


def compare_saved(ours, theirs):
    """What differs between the folder lmforge saved (`ours`) and the one transformers'
    save_pretrained wrote (`theirs`), one string per difference (empty: the same). Every file
    transformers wrote must be in `ours`: config.json equal as JSON except WRITER_FIELDS (each
    other differing, missing or extra field is named), any other file (model.safetensors, ...)
    byte for byte."""
    import filecmp
    problems = []
    for name in sorted(os.listdir(theirs)):
        a, b = os.path.join(ours, name), os.path.join(theirs, name)
        if not os.path.isfile(b):
            continue
        if not os.path.isfile(a):
            problems.append(f"{name}: written by transformers, absent from the saved folder")
        elif name == "config.json":
            with open(a) as f:
                ca = json.load(f)
            with open(b) as f:
                cb = json.load(f)
            for k in sorted(set(ca) | set(cb)):
                if k in WRITER_FIELDS:
                    continue
                if k not in cb:
                    problems.append(f"config.json: field {k!r} not written by transformers")
                elif k not in ca:
                    problems.append(f"config.json: field {k!r} missing (transformers writes "
                                    f"{json.dumps(cb[k])})")
                elif ca[k] != cb[k] or type(ca[k]) is not type(cb[k]):
                    problems.append(f"config.json: field {k!r} is {json.dumps(ca[k])}, "
                                    f"transformers writes {json.dumps(cb[k])}")
        elif not filecmp.cmp(a, b, shallow=False):
            problems.append(f"{name}: other bytes than transformers writes")
    return problems


def resave_differs(model, folder):
    """compare_saved(folder, what transformers' own save_pretrained of `model` writes)."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return compare_saved(folder, tmp)


def tensor_json(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def hf_outputs(model, inputs_json):
    import torch
    inputs = {k: torch.tensor(v["data"], dtype=torch.long).reshape(v["shape"])
              for k, v in inputs_json.items()}
    with torch.no_grad():
        out = model(**inputs)
    return {k: tensor_json(out[k]) for k in OUTPUT_KEYS if k in out and out[k] is not None}


def max_diff(a, b):
    if a["shape"] != b["shape"]:
        return float("inf")
    return max((abs(x - y) for x, y in zip(a["data"], b["data"])), default=0.0)


def check(folder, expected_name, tol):
    """Returns a list of problems (empty: the folder passes)."""
    problems = []
    arch, model, info = load_hf(folder)
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(key):
            problems.append(f"{key}: {info[key]}")
    for d in resave_differs(model, folder):
        problems.append(f"HF's save_pretrained of the loaded model differs: {d}")
    inputs_path = os.path.join(folder, "inputs.json")
    expected_path = os.path.join(folder, expected_name)
    if os.path.exists(inputs_path) and os.path.exists(expected_path):
        with open(inputs_path) as f:
            inputs = json.load(f)
        with open(expected_path) as f:
            expected = json.load(f)
        got = hf_outputs(model, inputs)
        if sorted(got) != sorted(expected):
            problems.append(f"outputs: HF gives {sorted(got)}, expected {sorted(expected)}")
        for k in sorted(set(got) & set(expected)):
            d = max_diff(got[k], expected[k])
            if not d <= tol:
                problems.append(f"{k}: max |HF - expected| = {d:.3g} > {tol}")
    else:
        arch += ", load only: no inputs.json / " + expected_name
    return arch, problems


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dirs", nargs="+")
    p.add_argument("--expected", default="lmforge_outputs.json",
                   help="expected-output file inside each folder")
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--skip-if-missing", action="store_true",
                   help="exit 77 (ctest's skip code) when torch or transformers is not installed")
    a = p.parse_args()
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as e:
        if not a.skip_if_missing:
            raise
        print(f"SKIP: {e}")
        return 77
    transformers.logging.set_verbosity_error()
    failed = 0
    for d in a.dirs:
        try:
            arch, problems = check(d, a.expected, a.tol)
        except Exception as e:  # a folder HF cannot load at all
            arch, problems = "?", [f"{type(e).__name__}: {e}"]
        status = "ok" if not problems else "FAIL"
        print(f"{status} {d} ({arch})" + "".join(f"\n  {x}" for x in problems))
        failed += bool(problems)
    print(f"{len(a.dirs) - failed}/{len(a.dirs)} folders load in transformers "
          f"{transformers.__version__} as saved")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
