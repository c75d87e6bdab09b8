#!/usr/bin/env bash
# Idempotent set-up: installs the Debian packages lmforge needs (only those missing) and builds
# everything in ./build (Release). Safe to run again; a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake libdnnl-dev nlohmann-json3-dev libcli11-dev libfmt-dev
      libutf8proc-dev libpcre2-dev libsentencepiece-dev libcpp-httplib-dev
      libgtest-dev libbenchmark-dev clang libclang-rt-14-dev libomp-dev python3)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
# The default model (real all-MiniLM-L6-v2) for the main job and the real-weights tests.
bash scripts/install_model.sh || echo "[setup] WARNING: default model not installed; tests that need it are skipped" >&2
echo "[setup] ok: build/lmforge"
