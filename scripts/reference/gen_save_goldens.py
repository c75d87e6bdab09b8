#!/usr/bin/env python3
"""Makes tests/fixtures/save/<case>/expected.json, read by tests/models/test_bert_save.cpp
(Tiny/BertSaveFixtures): the C++ test builds each case's model (seeded init + a deterministic
perturbation), and in writing mode (LMF_SAVE_FIXTURES_OUT=DIR) saves it with
models::save_pretrained to DIR/<case> with inputs.json and lmforge_outputs.json. This script runs
that, loads every folder with PyPI transformers (check_hf_load.py: no missing / unexpected /
mismatched key, HF's re-save byte-identical, HF's outputs equal lmforge's to 1e-5) and records the
SHA-256 of the saved files, HF's loading_info and HF's outputs on the inputs. The C++ test then
checks, without Python, that it still writes exactly those bytes and that its reload gives HF's
outputs.

Regenerate with (from the repository root, after building lmforge_tests):
  python3 scripts/reference/gen_save_goldens.py [build/tests/lmforge_tests]
Needs torch and transformers 5.24; deterministic; no network.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_hf_load  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "save")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "tests",
                                                                "lmforge_tests")
    import transformers
    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, LMF_SAVE_FIXTURES_OUT=tmp)
        subprocess.run([binary, "--gtest_filter=Tiny/BertSaveFixtures*"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        names = sorted(os.listdir(tmp))
        assert names, f"{binary} wrote no folder"
        shutil.rmtree(OUT, ignore_errors=True)
        for name in names:
            folder = os.path.join(tmp, name)
            arch, problems = check_hf_load.check(folder, "lmforge_outputs.json", 1e-5)
            if problems:
                sys.exit(f"{name}: transformers does not take lmforge's folder as its own: "
                         + "; ".join(problems))
            arch, model, info = check_hf_load.load_hf(folder)
            with open(os.path.join(folder, "inputs.json")) as f:
                inputs = json.load(f)
            expected = {
                "architecture": arch,
                "transformers_version": transformers.__version__,
                "sha256": {f: sha256(os.path.join(folder, f))
                           for f in ("config.json", "model.safetensors")},
                "loading_info": info,
                "inputs": inputs,
                "hf_outputs": check_hf_load.hf_outputs(model, inputs),
            }
            os.makedirs(os.path.join(OUT, name))
            shutil.copy(os.path.join(folder, "config.json"), os.path.join(OUT, name))
            with open(os.path.join(OUT, name, "expected.json"), "w") as f:
                json.dump(expected, f, separators=(",", ":"))
            print(f"{name}: {arch} loads with no missing/unexpected key; outputs recorded")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
