#!/usr/bin/env bash
# Installs the Python reference stack (PyPI torch + transformers 5.x + safetensors + peft) that the
# tests comparing lmforge with Hugging Face need (ctest's hf_roundtrip; scripts/reference/*).
# Idempotent: does nothing when versions in range are already importable. .ci/run calls it, so
# CI runs those tests instead of skipping them. Set LMF_SKIP_REFERENCE=1 to skip it.
set -euo pipefail
[ "${LMF_SKIP_REFERENCE:-0}" = 1 ] && { echo "[reference] skipped (LMF_SKIP_REFERENCE=1)"; exit 0; }
py=${PYTHON:-python3}
# Major versions we support; a new major release is a deliberate change here.
REQS=("torch>=2,<3" "transformers>=5,<6" "safetensors>=0.4,<1" "numpy>=1.26,<3" "peft>=0.17,<1")
if "$py" - <<'PY' 2>/dev/null; then
import sys
import numpy, peft, safetensors, torch, transformers
ok = transformers.__version__.split(".")[0] == "5" and torch.__version__.split(".")[0] == "2"
sys.exit(0 if ok else 1)
PY
  echo "[reference] ok: $("$py" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
  exit 0
fi
start=$(date +%s)
if ! "$py" -m pip --version >/dev/null 2>&1; then  # Debian's python3 comes without pip
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-pip >/dev/null
fi
extra=()
# A distribution's python marks itself externally managed (PEP 668); these wheels do not clash.
if [ -e "$("$py" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]; then
  extra+=(--break-system-packages)
fi
echo "[reference] installing ${REQS[*]} from PyPI (torch wheels are large: about 2 minutes)"
"$py" -m pip install --quiet --progress-bar off "${extra[@]}" "${REQS[@]}"
echo "[reference] installed in $(( $(date +%s) - start )) s: $("$py" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
