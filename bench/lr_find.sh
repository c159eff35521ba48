#!/usr/bin/env bash
# Does `graft lr-find`'s suggestion train better than the default --lr? For each dataset: the
# range test for STRATEGY, then `graft train` at the default rate and at the suggested one.
# The rate is judged on the selection split (the decision's split); the reported split's figure
# is shown beside it, not used.
# Usage: bench/lr_find.sh [DATASET...]   (default: hymenoptera and the variants of
#   bench/variants.py under bench/out/variants); STRATEGY=partial:2, GRAFT=target/release/graft,
#   OUT=bench/out/lr_find. Prints one markdown row per dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
graft=${GRAFT:-target/release/graft}
strategy=${STRATEGY:-partial:2}
out=${OUT:-bench/out/lr_find}
weights=../shared/weights/efficientnet-lite0-57934424.pth
datasets=${*:-../shared/data/hymenoptera $(ls -d bench/out/variants/*/ 2>/dev/null)}
mkdir -p "$out"
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
echo "| dataset | suggested lr | default 1e-3: select / reported / s | suggested: select / reported / s |"
echo "| --- | --- | --- | --- |"
for data in $datasets; do
  name=$(basename "$data")
  "$graft" -q lr-find --json --data "$data" --weights "$weights" --strategy "$strategy" \
    --out "$out/$name-lr-find" --force > "$out/$name-lr-find.json"
  lr=$(field "$out/$name-lr-find.json" "'%.1e' % d['suggestion']['suggested']")
  row="| $name | $lr |"
  for rate in 1e-3 "$lr"; do
    "$graft" -q train --json --data "$data" --weights "$weights" --strategy "$strategy" \
      --lr "$rate" --out "$out/$name-$rate" --force > "$out/$name-$rate.json"
    row="$row $(field "$out/$name-$rate.json" "'%.1f%% / %.1f%% / %.0f' % (100*d['selection']['accuracy'], 100*d['val_accuracy'], d['seconds'])") |"
  done
  echo "$row"
done
