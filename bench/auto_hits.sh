#!/usr/bin/env bash
# How often `graft auto` picks the best strategy (issue 16). For each dataset: `graft compare`
# (head, partial:1, partial:2, partial:4; compare's defaults otherwise) is the oracle table, and
# `graft auto` (defaults) is scored against it on the reported split, which auto never reads:
# a hit when the strategy auto chose has the best reported accuracy in compare's table (ties
# count), and the regret in points when not. Datasets: hymenoptera, caltech101-20 and the harder
# variants bench/variants.py makes from caltech101-20. A compare already in bench/out/auto_hits
# is reused (delete it after changing training); auto always re-runs. About an hour on 2 cores.
#   [GRAFT=BINARY] [OUT=DIR] bench/auto_hits.sh [DATASET...]   (names: hymenoptera caltech101-20 few15 lowres inverted animals)
set -euo pipefail
cd "$(dirname "$0")/.."
weights=../shared/weights/efficientnet-lite0-57934424.pth
# GRAFT: another build of graft to score (e.g. the previous commit's); default: this checkout's.
graft=${GRAFT:-./target/release/graft}
[ -n "${GRAFT:-}" ] || bench/build.sh
cmp=bench/out/auto_hits
out=${OUT:-$cmp}
mkdir -p "$cmp" "$out"
python3 bench/variants.py ../shared/data/caltech101-20 bench/out/variants
for d in ${@:-hymenoptera caltech101-20 few15 lowres inverted animals}; do
  data=../shared/data/$d
  [ -d "$data" ] || data=bench/out/variants/$d
  if [ ! -f "$cmp/cmp-$d/results.json" ]; then
    "$graft" -q compare --json --force --weights "$weights" --data "$data" \
      --strategies head,partial:1,partial:2,partial:4 --out "$cmp/cmp-$d" > /dev/null
  fi
  start=$(date +%s.%N)
  "$graft" -q auto --json --force --weights "$weights" --data "$data" \
    --out "$out/auto-$d" > /dev/null
  echo "$(date +%s.%N) - $start" | bc > "$out/auto-$d.seconds"
done
python3 - "$cmp" "$out" ${@:-hymenoptera caltech101-20 few15 lowres inverted animals} <<'PY'
import json, sys
cmp_dir, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
print("| dataset | head | partial:1 | partial:2 | partial:4 | auto chose (rule) | auto's run | hit | regret | auto time |")
print("|---|---:|---:|---:|---:|---|---:|---|---:|---:|")
hits = 0
for d in names:
    cmp = json.load(open(f"{cmp_dir}/cmp-{d}/results.json"))
    acc = {r["strategy"]: r["val_accuracy"] for r in cmp["rows"] if r["status"] == "ok"}
    auto = json.load(open(f"{out}/auto-{d}/auto.json"))
    seconds = float(open(f"{out}/auto-{d}.seconds").read())
    chose = auto["strategy"]
    best = max(acc.values())
    mine = acc.get(chose)
    hit = mine is not None and mine >= best
    hits += hit
    regret = "" if mine is None else f"{100 * (best - mine):.1f}"
    cells = " | ".join(f"{100 * acc[s]:.1f}%" if s in acc else "" for s in ["head", "partial:1", "partial:2", "partial:4"])
    print(f"| {d} | {cells} | {chose} ({auto['rule']}) | {100 * auto['result']['val_accuracy']:.1f}% | "
          f"{'yes' if hit else 'no'} | {regret} | {seconds:.0f} s |")
print(f"\nauto chose the best strategy on {hits} of {len(names)} datasets.")
PY
