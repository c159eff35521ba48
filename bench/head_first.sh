#!/usr/bin/env bash
# Does starting partial:N's head from a linear probe (`graft train --head-first`) train better
# than from random weights? Both runs per dataset, same seed and settings otherwise; judged on
# the selection split, the reported split's figure beside it.
# Usage: bench/head_first.sh [DATASET...]   (default: hymenoptera and bench/out/variants/*);
#   STRATEGY=partial:2, GRAFT=target/release/graft, OUT=bench/out/head_first.
set -euo pipefail
cd "$(dirname "$0")/.."
graft=${GRAFT:-target/release/graft}
strategy=${STRATEGY:-partial:2}
out=${OUT:-bench/out/head_first}
weights=../shared/weights/efficientnet-lite0-57934424.pth
datasets=${*:-../shared/data/hymenoptera $(ls -d bench/out/variants/*/ 2>/dev/null)}
mkdir -p "$out"
echo "| dataset | random head: select / reported / epochs / s | --head-first: select / reported / epochs / s |"
echo "| --- | --- | --- |"
for data in $datasets; do
  name=$(basename "$data")
  row="| $name |"
  for mode in random head-first; do
    flag=(); [ "$mode" = head-first ] && flag=(--head-first)
    "$graft" -q train --json --data "$data" --weights "$weights" --strategy "$strategy" \
      "${flag[@]}" --out "$out/$name-$mode" --force > "$out/$name-$mode.json"
    row="$row $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%.1f%% / %.1f%% / %d / %.0f' % (100*d['selection']['accuracy'], 100*d['val_accuracy'], d['epochs_run'], d['seconds']))" "$out/$name-$mode.json") |"
  done
  echo "$row"
done
