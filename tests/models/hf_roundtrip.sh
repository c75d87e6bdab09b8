#!/usr/bin/env bash
# lmforge saves fresh model folders (Tiny/BertSaveFixtures in writing mode) and PyPI transformers
# loads them (scripts/reference/check_hf_load.py: no missing/unexpected key, same bytes on HF's
# re-save but for the writer's transformers_version, same outputs to 1e-5). Exit 77 (ctest
# SKIP_RETURN_CODE) without torch + transformers, unless LMF_REQUIRE_REFERENCE=1 (CI), where
# their absence fails.
# Usage: hf_roundtrip.sh LMFORGE_TESTS_BINARY REPO_ROOT
set -euo pipefail
bin=$1
root=$2
skip=--skip-if-missing
[ "${LMF_REQUIRE_REFERENCE:-0}" = 1 ] && skip=
if ! command -v python3 >/dev/null; then
  echo "SKIP: no python3"
  [ -n "$skip" ] && exit 77
  exit 1
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
LMF_SAVE_FIXTURES_OUT="$tmp" "$bin" --gtest_filter='Tiny/BertSaveFixtures*' >/dev/null
python3 "$root/scripts/reference/check_hf_load.py" $skip "$tmp"/*
