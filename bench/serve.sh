#!/usr/bin/env bash
# graft serve against the Python serving peer (bench/peer_serve.py: FastAPI + uvicorn + ONNX
# Runtime on graft's exported ONNX file), in one run on this machine, with wrk at concurrency 1,
# 8 and 32 for DURATION seconds each (default 30), on efficientnet_lite0 (the real weights) and
# resnet50 (seeded random weights: speed does not depend on them). Both servers bind 127.0.0.1.
# Reports throughput, p50/p95/p99 latency, errors and peak RSS per case into bench/out/serve.jsonl,
# and graft's offline batch-32 throughput for the same model (batching's ceiling), measured just
# before and just after graft's runs.
# SOAK=SECONDS also runs graft alone at concurrency 32 that long, sampling RSS every 10 s.
# Needs: apt-get install wrk; pip install fastapi uvicorn onnx onnxruntime numpy pillow.
# GRAFT_SERVE_ARGS adds options to `graft serve` (e.g. "--max-batch 8"); IMPLS="graft" skips the
# peer.
# Usage: bench/serve.sh [MODEL...]
set -euo pipefail
cd "$(dirname "$0")/.."
# Say what is missing before building and timing anything (a fresh machine has neither).
command -v wrk >/dev/null 2>&1 || { echo "bench/serve.sh needs wrk: apt-get install wrk" >&2; exit 1; }
if [[ " ${IMPLS:-graft peer} " == *" peer "* ]]; then
  python3 -c 'import fastapi, uvicorn, onnx, onnxruntime, numpy, PIL' 2>/dev/null || {
    echo "bench/serve.sh's peer needs: pip install fastapi uvicorn onnx onnxruntime numpy pillow" >&2
    exit 1
  }
fi
duration=${DURATION:-30}
models=${*:-efficientnet_lite0 resnet50}
out=bench/out
mkdir -p "$out"
: > "$out/serve.jsonl"
bench/build.sh
[ -f "$out/input.safetensors" ] || python3 bench/make_input.py "$out/input.safetensors" 32
image=../shared/data/imagenet-sample/$(head -2 ../shared/data/imagenet-sample/labels.csv | tail -1 | cut -d, -f1)
export IMAGE=$image GRAFT_OFFLINE=1 GRAFT_HOME=$out/home

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 300); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "not up: $1" >&2; return 1; }
peak_rss() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

for model in $models; do
  if [ "$model" = efficientnet_lite0 ]; then
    weights=../shared/weights/efficientnet-lite0-57934424.pth
  else
    weights=$out/$model-random.safetensors
    [ -f "$weights" ] || target/release/examples/random_weights "$model" "$weights"
  fi
  target/release/graft -q export --model "$model" --weights "$weights" --out "$out/$model.onnx"
  offline=$(RAYON_NUM_THREADS=2 target/release/examples/bench_inference "$model" "$out/input.safetensors" 3 "$weights" | tail -1)
  echo "{\"model\": \"$model\", \"impl\": \"graft-offline-batch32\", \"result\": $offline}" | tee -a "$out/serve.jsonl"
  for impl in ${IMPLS:-graft peer}; do
    port=$(free_port)
    if [ $impl = graft ]; then
      RAYON_NUM_THREADS=2 target/release/graft -q serve --model "$model" --weights "$weights" --port "$port" ${GRAFT_SERVE_ARGS:-} 2>/dev/null &
      url=http://127.0.0.1:$port/v1/predict
    else
      python3 bench/peer_serve.py "$out/$model.onnx" "$port" &
      url=http://127.0.0.1:$port/predict
    fi
    pid=$!
    wait_up "http://127.0.0.1:$port/v2/health/ready" 2>/dev/null || wait_up "http://127.0.0.1:$port/docs"
    wrk -t1 -c1 -d2s -s bench/wrk_post.lua "$url" >/dev/null  # warm-up
    for c in 1 8 32; do
      t=$(( c < 2 ? 1 : 2 ))
      line=$(wrk -t$t -c$c -d${duration}s --timeout 30s -s bench/wrk_post.lua "$url" | tail -1)
      echo "{\"model\": \"$model\", \"impl\": \"$impl\", \"concurrency\": $c, \"result\": $line, \"peak_rss_kib\": $(peak_rss $pid)}" | tee -a "$out/serve.jsonl"
    done
    if [ $impl = graft ]; then
      # Offline again, right after the server's runs: this machine drifts between minutes, and
      # the concurrency-32 run is best compared with the mean of the two.
      offline=$(RAYON_NUM_THREADS=2 target/release/examples/bench_inference "$model" "$out/input.safetensors" 3 "$weights" | tail -1)
      echo "{\"model\": \"$model\", \"impl\": \"graft-offline-batch32-after\", \"result\": $offline}" | tee -a "$out/serve.jsonl"
    fi
    if [ $impl = graft ] && [ -n "${SOAK:-}" ]; then
      wrk -t2 -c32 -d${SOAK}s --timeout 30s -s bench/wrk_post.lua "$url" > "$out/soak-$model.txt" &
      w=$!
      while kill -0 $w 2>/dev/null; do
        echo "{\"model\": \"$model\", \"soak_rss_kib\": $(awk '/VmRSS/ {print $2}' /proc/$pid/status)}" | tee -a "$out/serve.jsonl"
        sleep 10
      done
    fi
    kill -TERM $pid; wait $pid 2>/dev/null || true
  done
done
