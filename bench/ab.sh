#!/usr/bin/env bash
# Two builds of graft's bench_inference example, alternating on one input batch: the way this
# machine's 10-30% drift between minutes can be told from a change. Prints each side's median
# ms per batch and the median of the paired new/old time ratios (each pair runs back to back,
# in alternating order).
#   bench/ab.sh OLD_BINARY NEW_BINARY ROUNDS MODEL ITERS [WEIGHTS]   (BATCH=1: latency)
# Build each side with `bench/build.sh` (the set every benchmark builds) and copy
# target/release/examples/bench_inference aside; the input is bench/out/input.safetensors
# (bench/run.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 rounds=$3
shift 3
# The order alternates round by round, so that whatever favours the first or the second run of
# a pair (a cache, a spell of the machine) falls on both builds. In the nineteenth round one
# change read 0.953-0.970 in fixed-order pairs and 0.976-0.990 in alternating ones.
for round in $(seq "$rounds"); do
  sides="old new"; [ $((round % 2)) = 0 ] && sides="new old"
  for side in $sides; do
    bin=$old; [ "$side" = new ] && bin=$new
    echo "$side $(RAYON_NUM_THREADS=2 "$bin" "$1" bench/out/input.safetensors "${@:2}")"
  done
done | python3 -c '
import json, statistics as st, sys
runs = {}
for line in sys.stdin:
    side, rest = line.split(" ", 1)
    j = json.loads(rest)
    runs.setdefault(side, []).append((j["ms_per_batch"], j["peak_rss_mib"]))
for side, v in runs.items():
    print(f"{side}: median {st.median(x[0] for x in v):.1f} ms per batch, peak RSS {v[0][1]} MiB")
r = [n[0] / o[0] for o, n in zip(runs["old"], runs["new"])]
print("new/old paired:", " ".join(f"{x:.2f}" for x in r), f" median {st.median(r):.3f}")
'
