#!/usr/bin/env bash
# Builds one libFuzzer target with clang (ASan + UBSan) and runs it for a bounded time.
# Usage: fuzz/run_fuzzer.sh NAME SECONDS LAYER...   (compiles fuzz/fuzz_NAME.cpp + src/LAYER/*.cpp)
# Seeds: fuzz/corpus/NAME/ (committed, small). Exit 0 when no crash was found; a crash leaves
# its input in build-fuzz/NAME/crash-* and exits non-zero. Skips (exit 0, says so) without clang.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name=$1; secs=$2; shift 2
cxx=$(command -v clang++ || command -v clang++-14 || true)
if [ -z "$cxx" ]; then echo "fuzz $name: SKIPPED (no clang++; apt-get install clang)"; exit 0; fi
out=$root/build-fuzz/$name
mkdir -p "$out/corpus"
srcs=("$root/fuzz/fuzz_$name.cpp")
for layer in "$@"; do srcs+=($(ls "$root"/src/"$layer"/*.cpp)); done
bin=$out/fuzz_$name
if [ ! -x "$bin" ] || [ -n "$(find "$root/src" "$root/include" "$root/fuzz" -newer "$bin" -print -quit)" ]; then
  "$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/include" -I"$root/src" "${srcs[@]}" -lfmt -lutf8proc -lpcre2-8 -lsentencepiece -lsentencepiece_train -fopenmp -o "$bin"
fi
seeds=()
[ -d "$root/fuzz/corpus/$name" ] && seeds+=("$root/fuzz/corpus/$name")
cd "$out"
"$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
  corpus "${seeds[@]}" 2>&1 | tail -n 12
echo "fuzz $name: ran ${secs}s, no crash"
