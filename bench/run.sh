#!/usr/bin/env bash
# graft vs PyTorch on this machine, each side with 2 threads (PyTorch: 2 intra-op threads, or 2
# DataLoader workers for the input pipeline), one process per (implementation, case) so peak RSS
# (VmHWM) is per case. Sections:
#   inference  pretrained inference, batch 32, 224x224: efficientnet_lite0, resnet18, resnet50, vgg16
#   train      one training step (forward, loss, backward, SGD momentum 0.9), batch 16:
#              resnet18 and efficientnet_lite0, full and partial:2
#   pipeline   decode + resize 256 + crop 224 + normalize: hymenoptera and imagenet-sample
# Needs: pip install torch torchvision safetensors pillow.
# Usage: bench/run.sh [ITERS] [SECTION...]   (default: 5, all sections; results in bench/out/)
# ROUNDS=N runs every (peer, graft) pair N times, alternating, and reports the median of each
# side (this machine's speed drifts by up to 30% between minutes; one round can land in a slow
# spell for one side only).
# SAME_MALLOC=1 runs the PyTorch peer with the glibc malloc settings graft's binaries set for
# themselves (graft_kernels::keep_freed_memory), to separate the kernels from the allocator.
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-5}
shift || true
sections=${*:-inference train pipeline}
threads=2
rounds=${ROUNDS:-1}
out=bench/out
mkdir -p "$out"
if [ "${SAME_MALLOC:-0}" = 1 ]; then
  export PEER_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647
fi
peer() { GLIBC_TUNABLES=${PEER_TUNABLES:-} BENCH_THREADS=$threads python3 "$@"; }
cargo build --release -p graft-models --example bench_inference -p graft-transfer --example bench_train \
  -p graft-data --example bench_pipeline >&2
[ -f "$out/input.safetensors" ] || python3 bench/make_input.py "$out/input.safetensors" 32
lite0=../shared/weights/efficientnet-lite0-57934424.pth
weights_for() { [ "$1" = efficientnet_lite0 ] && echo "$lite0" || true; }

for section in $sections; do
  : > "$out/$section.jsonl"
  case $section in
  inference)
    for model in efficientnet_lite0 resnet18 resnet50 vgg16; do
      n=$iters; [ "$model" = vgg16 ] && n=$(( (iters + 1) / 2 ))
      echo "== inference $model ($n batches)" >&2
      for _ in $(seq "$rounds"); do
        peer bench/peer_inference.py "$model" "$out/input.safetensors" "$n" $(weights_for $model) | tee -a "$out/$section.jsonl"
        RAYON_NUM_THREADS=$threads target/release/examples/bench_inference "$model" "$out/input.safetensors" "$n" $(weights_for $model) | tee -a "$out/$section.jsonl"
      done
    done ;;
  train)
    for model in resnet18 efficientnet_lite0; do
      for mode in full partial:2; do
        echo "== train step $model $mode ($iters steps)" >&2
        for _ in $(seq "$rounds"); do
          peer bench/peer_train.py "$model" "$mode" "$out/input.safetensors" "$iters" $(weights_for $model) | tee -a "$out/$section.jsonl"
          RAYON_NUM_THREADS=$threads target/release/examples/bench_train "$model" "$mode" "$out/input.safetensors" "$iters" $(weights_for $model) | tee -a "$out/$section.jsonl"
        done
      done
      # graft's own partial:2 step: the frozen groups' output comes from its cache (no peer row).
      RAYON_NUM_THREADS=$threads target/release/examples/bench_train "$model" partial:2-cached "$out/input.safetensors" "$iters" $(weights_for $model) | tee -a "$out/$section.jsonl"
    done ;;
  pipeline)
    for data in hymenoptera imagenet-sample; do
      echo "== input pipeline $data" >&2
      python3 bench/peer_pipeline.py "../shared/data/$data" "$data" $threads | tee -a "$out/$section.jsonl"
      RAYON_NUM_THREADS=$threads target/release/examples/bench_pipeline "../shared/data/$data" "$data" | tee -a "$out/$section.jsonl"
    done ;;
  *) echo "unknown section $section" >&2; exit 2 ;;
  esac
done

python3 - $(for s in $sections; do echo "$out/$s.jsonl"; done) <<'PY'
import json, statistics, sys
for path in sys.argv[1:]:
    rows = [json.loads(l) for l in open(path) if l.strip()]
    by = {}
    for r in rows:
        case = " ".join(str(r[k]) for k in ("model", "mode", "data") if k in r)
        by.setdefault(case, {}).setdefault(r["impl"], []).append(r)
    def summary(runs):
        if not runs:
            return None
        return {"ips": statistics.median(r["images_per_second"] for r in runs),
                "rss": max(r["peak_rss_mib"] for r in runs), "n": len(runs)}
    print(f"\n{path} (median of the rounds)\n")
    print("| case | graft img/s | PyTorch img/s | ratio | graft peak RSS MiB | PyTorch peak RSS MiB | rounds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for case, d in by.items():
        g, p = summary(d.get("graft", [])), summary(d.get("pytorch", []))
        if g and not p:
            print(f"| {case} | {g['ips']:.2f} | (no peer) | | {g['rss']:.0f} | | {g['n']} |")
        if not g or not p:
            continue
        print(f"| {case} | {g['ips']:.2f} | {p['ips']:.2f} | {g['ips'] / p['ips']:.2f}x | "
              f"{g['rss']:.0f} | {p['rss']:.0f} | {g['n']} |")
PY
