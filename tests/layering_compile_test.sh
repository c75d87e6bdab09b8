#!/usr/bin/env bash
# Proves that the build enforces the layers (docs/ARCHITECTURE.md, "Layers"): compiled with the
# include flags of each layer's target (and of the lmforge CLI), a header of every layer it may use
# compiles, and a header (public, or private in src/<layer>/) of a layer it may not use does not.
# apps see no private header at all. The allowed table is the documented one (as in layering_test.sh), not the build's.
# Usage: layering_compile_test.sh CXX REPO_ROOT VIEW=DIR[:DIR...]...   (VIEW: a layer or "apps")
set -u
cxx=$1
root=$2
shift 2
declare -A allowed=(
  [core]="core"
  [kernels]="core kernels"
  [ops]="core kernels ops"
  [nn]="core ops nn"
  [optim]="core ops nn optim"
  [io]="core io"
  [tokenizers]="core tokenizers"
  [models]="core ops nn io models"
  [tasks]="core ops nn io tokenizers models tasks"
  [train]="core ops nn optim io tokenizers models tasks train"
  [apps]="core tasks train"
)
layers="core kernels ops nn optim io tokenizers models tasks train"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The first public header of layer $1 (kernels have only private ones), "" when it has none.
public_header() {
  local dir=$root/include/lmforge/$1
  [ "$1" = kernels ] && dir=$root/src/kernels/cpu
  local h
  h=$(cd "$dir" 2>/dev/null && ls -1 *.h 2>/dev/null | head -n 1)
  [ -z "$h" ] && return
  if [ "$1" = kernels ]; then echo "kernels/cpu/$h"; else echo "lmforge/$1/$h"; fi
}
# The first private header of layer $1 (src/$1/*.h), "" when it has none.
private_header() {
  local h
  h=$(cd "$root/src/$1" 2>/dev/null && ls -1 *.h 2>/dev/null | head -n 1)
  [ -n "$h" ] && echo "$1/$h"
}

fail=0
checked=0
for arg in "$@"; do
  view=${arg%%=*}
  IFS=: read -r -a dirs <<<"${arg#*=}"
  flags=(-std=c++20 -fsyntax-only)
  for d in "${dirs[@]}"; do [ -n "$d" ] && flags+=("-I$d"); done
  [ -n "${allowed[$view]+x}" ] || { echo "FAIL: unknown view '$view'"; fail=1; continue; }
  # Everything it may use, in one file: must compile.
  ok_file=$tmp/$view-allowed.cpp
  : >"$ok_file"
  for l in ${allowed[$view]}; do
    h=$(public_header "$l")
    [ -n "$h" ] && echo "#include \"$h\"" >>"$ok_file"
  done
  if [ "$view" != apps ]; then
    for l in ${allowed[$view]}; do
      h=$(private_header "$l")
      [ -n "$h" ] && echo "#include \"$h\"" >>"$ok_file"
    done
  fi
  if ! out=$("$cxx" "${flags[@]}" "$ok_file" 2>&1); then
    echo "FAIL: $view cannot compile headers it may use:"
    sed 's/^/  /' "$ok_file"
    echo "$out" | head -n 20
    fail=1
  fi
  checked=$((checked + 1))
  # Each header it may not use, alone: must fail, naming that header.
  for l in $layers; do
    bad=()
    case " ${allowed[$view]} " in
      *" $l "*) [ "$view" = apps ] && [ "$l" != kernels ] && bad+=("$(private_header "$l")") ;;
      *) bad+=("$(public_header "$l")") && [ "$l" != kernels ] && bad+=("$(private_header "$l")") ;;
    esac
    for h in "${bad[@]}"; do
      [ -z "$h" ] && continue
      f=$tmp/$view-bad.cpp
      echo "#include \"$h\"" >"$f"
      checked=$((checked + 1))
      if out=$("$cxx" "${flags[@]}" "$f" 2>&1); then
        echo "FAIL: $view compiles #include \"$h\" (layer $l is not one it may use)"
        fail=1
      elif ! grep -qF "$h" <<<"$out"; then
        echo "FAIL: $view rejects #include \"$h\", but not for the include itself:"
        echo "$out" | head -n 10
        fail=1
      fi
    done
  done
done
[ $checked -gt 0 ] || { echo "FAIL: no view checked"; exit 1; }
[ $fail -eq 0 ] && echo "layering_compile: ok ($checked checks over $# targets)"
exit $fail
