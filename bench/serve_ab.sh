#!/usr/bin/env bash
# Two builds of `graft serve`, alternating, under wrk: the way to tell a serving change from
# this machine's drift between minutes (bench/serve.sh times one build against the Python peer).
# Each round starts each build in turn (the first alternating) on 127.0.0.1, warms it up for
# 2 s, runs wrk at every concurrency for D seconds and stops it. Prints each side's median
# requests a second and p99 per concurrency, and the median of the paired new/old throughput
# ratios.
#   bench/serve_ab.sh OLD_GRAFT NEW_GRAFT [ROUNDS]
# Environment: MODEL (efficientnet_lite0), WEIGHTS (Lite0's file in ../shared/weights; for another
# model bench/out/MODEL-random.safetensors, which bench/serve.sh makes), CS
# ("1 8 32"), D (10 seconds), GRAFT_SERVE_ARGS (options for both servers). RATES="50 100"
# replaces wrk's closed loop by bench/open_loop.py's Poisson arrivals at those rates a second,
# compared by p50 latency.
# Needs wrk (apt-get install wrk). Copy each build's target/release/graft aside first.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null 2>&1 || { echo "bench/serve_ab.sh needs wrk: apt-get install wrk" >&2; exit 1; }
old=$1 new=$2 rounds=${3:-2}
model=${MODEL:-efficientnet_lite0}
if [ -z "${WEIGHTS:-}" ] && [ "$model" != efficientnet_lite0 ]; then
  # bench/serve.sh makes these (seeded random weights: speed does not depend on them).
  WEIGHTS=bench/out/$model-random.safetensors
  [ -f "$WEIGHTS" ] || { echo "bench/serve_ab.sh: no $WEIGHTS; set WEIGHTS or run bench/serve.sh $model once" >&2; exit 1; }
fi
weights=${WEIGHTS:-../shared/weights/efficientnet-lite0-57934424.pth}
image=../shared/data/imagenet-sample/$(head -2 ../shared/data/imagenet-sample/labels.csv | tail -1 | cut -d, -f1)
export IMAGE=$image GRAFT_OFFLINE=1 GRAFT_HOME=bench/out/home
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Each round swaps which build goes first, as bench/ab.sh does.
for round in $(seq "$rounds"); do
  sides="old new"; [ $((round % 2)) = 0 ] && sides="new old"
  for side in $sides; do
    bin=$old; [ "$side" = new ] && bin=$new
    port=$(free_port)
    RAYON_NUM_THREADS=2 "$bin" -q serve --model "$model" --weights "$weights" --port "$port" ${GRAFT_SERVE_ARGS:-} 2>/dev/null &
    pid=$!
    up=0
    for _ in $(seq 300); do
      curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1 && { up=1; break; }
      sleep 0.2
    done
    [ $up = 1 ] || { echo "$side: the server did not start" >&2; kill "$pid"; exit 1; }
    url=http://127.0.0.1:$port/v1/predict
    wrk -t1 -c1 -d2s -s bench/wrk_post.lua "$url" >/dev/null
    if [ -n "${RATES:-}" ]; then
      for r in $RATES; do
        echo "$side r$r $(python3 bench/open_loop.py "http://127.0.0.1:$port" "$image" "$r" "${D:-10}" "$round")"
      done
    else
      for c in ${CS:-1 8 32}; do
        t=$(( c < 2 ? 1 : 2 ))
        echo "$side c$c $(wrk -t$t -c"$c" -d"${D:-10}"s --timeout 30s -s bench/wrk_post.lua "$url" | tail -1)"
      done
    fi
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  done
done | python3 -c '
import json, statistics as st, sys
runs = {}
for line in sys.stdin:
    side, load, rest = line.split(" ", 2)
    runs.setdefault((load, side), []).append(json.loads(rest))
for load in sorted({l for l, _ in runs}, key=lambda l: (l[0], float(l[1:]))):
    old, new = runs[(load, "old")], runs[(load, "new")]
    for side, v in (("old", old), ("new", new)):
        rps = [r.get("rps", r.get("achieved_per_s")) for r in v]
        p50, p99 = st.median(r["p50_ms"] for r in v), st.median(r["p99_ms"] for r in v)
        errors = sum(r["errors"] for r in v)
        shown = " ".join("%.1f" % x for x in rps)
        print("%s %s: rps %s (median %.1f), p50 median %.1f ms, p99 median %.1f ms, errors %d"
              % (load, side, shown, st.median(rps), p50, p99, errors))
    # A closed loop (wrk) is judged by its throughput; an open loop sends at a set rate, so by
    # its latency.
    key = "p50_ms" if load.startswith("r") else "rps"
    ratios = [n[key] / o[key] for o, n in zip(old, new)]
    print("%s new/old %s paired: %s  median %.3f" % (load, key, " ".join("%.3f" % x for x in ratios), st.median(ratios)))
'
