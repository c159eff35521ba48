#!/usr/bin/env bash
# Learning quality under the honest protocol (README "Honest figures"): for each dataset, every
# strategy through `graft compare` (decisions on the selection split, the figure on the held-out
# split), the head fitted both ways (--head-solver adamw and lbfgs), and the peer:
# scikit-learn's GridSearchCV(LogisticRegression) on the same features (bench/linear_probe.sh).
# Prints a markdown table per dataset (QUALITY.md holds the last run's). Needs numpy and
# scikit-learn for the peer; about 25 minutes on 2 cores.
#   bench/quality.sh [DATASET...]     (default: hymenoptera caltech101-20)
set -euo pipefail
cd "$(dirname "$0")/.."
weights=../shared/weights/efficientnet-lite0-57934424.pth
bench/build.sh
out=bench/out/quality
mkdir -p "$out"
for d in ${@:-hymenoptera caltech101-20}; do
  data=../shared/data/$d
  ./target/release/graft -q compare --json --force --weights "$weights" --data "$data" \
    --out "$out/cmp-$d" > "$out/cmp-$d.json"
  for solver in adamw lbfgs; do
    ./target/release/graft -q train --json --force --weights "$weights" --data "$data" \
      --head-solver "$solver" --out "$out/head-$solver-$d" | tail -1 > "$out/head-$solver-$d.json"
  done
  ./target/release/examples/linear_probe "$data" "$weights" "$out/lp-$d" > /dev/null
  python3 bench/peer_linear_probe.py "$out/lp-$d" > "$out/peer-$d.json"
  python3 - "$d" "$out" <<'PY'
import json, sys
d, out = sys.argv[1], sys.argv[2]
cmp = json.load(open(f"{out}/cmp-{d}.json"))
peer = json.load(open(f"{out}/peer-{d}.json"))
pct = lambda a: "" if a is None else f"{100 * a:.1f}%"
first = next(r for r in cmp["rows"] if r["status"] == "ok")
print(f"\n### {d} (reported on {first['val_split']}, selected on {first['select_split']})\n")
print("| strategy | reported accuracy | selection accuracy | chose | time |")
print("|---|---:|---:|---|---:|")
for r in cmp["rows"]:
    if r["status"] != "ok":
        print(f"| {r['strategy']} | failed | | | |")
        continue
    best = " (ranked first)" if r["strategy"] == cmp.get("best") else ""
    res = json.load(open(f"{out}/cmp-{d}/runs/{r['strategy'].replace(':', '-')}/result.json"))
    print(f"| {r['strategy']}{best} | {pct(r['val_accuracy'])} | {pct(r['select_accuracy'])} | "
          f"{res['selection']['chose']} | {r['seconds']:.1f} s |")
for solver in ["adamw", "lbfgs"]:
    h = json.load(open(f"{out}/head-{solver}-{d}.json"))
    s = h["selection"]
    print(f"| head, --head-solver {solver} (train) | {pct(h['val_accuracy'])} | {pct(s['accuracy'])} on {s['split']} | "
          f"{s['chose']} | {h['seconds']:.1f} s |")
print(f"| peer: scikit-learn GridSearchCV(LogisticRegression), 5-fold CV on train | {pct(peer['test_accuracy'])} | "
      f"{pct(max(s for _, s in peer['cv_scores']))} CV | C = {peer['c']:.3g} | {peer['cv_seconds']:.1f} s (CV only) |")
PY
done
