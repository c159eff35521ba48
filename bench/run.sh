#!/usr/bin/env bash
# graft vs PyTorch, pretrained inference, batch 32, 224x224, 2 threads each, same input batch,
# one process per (implementation, model) so peak RSS is per run. Needs: pip install torch
# torchvision safetensors pillow. Usage: bench/run.sh [ITERS]   (results: bench/out/)
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-5}
threads=2
out=bench/out
mkdir -p "$out"
cargo build --release -p graft-models --example bench_inference >&2
python3 bench/make_input.py "$out/input.safetensors" 32
lite0=../shared/weights/efficientnet-lite0-57934424.pth
: > "$out/inference.jsonl"
for model in efficientnet_lite0 resnet18 resnet50 vgg16; do
  w=""; [ "$model" = efficientnet_lite0 ] && w=$lite0
  n=$iters; [ "$model" = vgg16 ] && n=$(( (iters + 1) / 2 ))
  echo "== $model ($n iterations)" >&2
  BENCH_THREADS=$threads python3 bench/peer_inference.py "$model" "$out/input.safetensors" "$n" $w | tee -a "$out/inference.jsonl"
  RAYON_NUM_THREADS=$threads target/release/examples/bench_inference "$model" "$out/input.safetensors" "$n" $w | tee -a "$out/inference.jsonl"
done
python3 - "$out/inference.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["model"], {})[r["impl"]] = r
print("| model | graft img/s | PyTorch img/s | ratio | graft peak RSS MiB | PyTorch peak RSS MiB |")
print("| --- | --- | --- | --- | --- | --- |")
for m, d in by.items():
    g, p = d["graft"], d["pytorch"]
    print(f"| {m} | {g['images_per_second']:.2f} | {p['images_per_second']:.2f} | "
          f"{g['images_per_second'] / p['images_per_second']:.2f}x | {g['peak_rss_mib']:.0f} | {p['peak_rss_mib']:.0f} |")
PY
