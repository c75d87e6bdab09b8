#!/usr/bin/env bash
# Fails when a source file includes a header from a layer it may not depend on
# (docs/ARCHITECTURE.md, "Layers"), apps/ (the CLI) included. Prints every offending include.
# The build enforces the same table (layering_compile_test.sh); this also catches a wrong include
# in a file the build does not compile yet.
set -u
root=${1:-.}
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
# Where each layer's files are.
dirs_of() {
  if [ "$1" = apps ]; then echo "$root/apps"; else echo "$root/src/$1 $root/include/lmforge/$1"; fi
}
bad=0
for layer in "${!allowed[@]}"; do
  for f in $(find $(dirs_of "$layer") -name '*.h' -o -name '*.cpp' 2>/dev/null); do
    while IFS= read -r inc; do
      dep=$(sed -E 's@^#include "(lmforge/)?([a-z_]+)/.*@\2@' <<<"$inc")
      [ "$dep" = "$inc" ] && continue
      case " ${allowed[$layer]} " in *" $dep "*) ;; *)
        echo "layering violation: $f ($layer) includes $dep: $inc"; bad=1;;
      esac
    done < <(grep -E '^#include "' "$f")
  done
done
[ $bad -eq 0 ] && echo "layering: ok"
exit $bad
