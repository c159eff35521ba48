#!/usr/bin/env bash
# graft vs its peers on this machine, each side with 2 threads (PyTorch: 2 intra-op threads, or 2
# DataLoader workers for the input pipeline; ONNX Runtime: intra_op_num_threads=2), one process per
# (implementation, case) so peak RSS (VmHWM) is per case. Sections:
#   inference  pretrained inference, batch 32, 224x224: efficientnet_lite0, resnet18, resnet50, vgg16,
#              against PyTorch eager and ONNX Runtime (bench/peer_ort.py: torch.onnx.export, opset 17,
#              Lite0's TF-"same" padding frozen and folded into its Conv nodes, ORT_ENABLE_ALL,
#              CPUExecutionProvider)
#   latency    the same models at batch 1, against ONNX Runtime
#   train      one training step (forward, loss, backward, SGD momentum 0.9), batch 16:
#              resnet18 and efficientnet_lite0, full and partial:2
#   pipeline   decode + resize 256 + crop 224 + normalize: hymenoptera and imagenet-sample
# Needs: pip install torch torchvision safetensors pillow onnx onnxruntime.
# Usage: bench/run.sh [ITERS] [SECTION...]   (default: 5, all sections; results in bench/out/)
# MODELS="resnet18 resnet50" limits the inference and latency sections to those models,
# TRAIN_MODELS="resnet18" the train section.
# ROUNDS=N runs every (peer, graft) pair N times, alternating, and reports the median of each
# side (this machine's speed drifts by up to 30% between minutes; one round can land in a slow
# spell for one side only).
# SAME_MALLOC=1 runs the PyTorch peer with the glibc malloc settings graft's binaries set for
# themselves (graft_kernels::keep_freed_memory), to separate the kernels from the allocator.
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-5}
shift || true
sections=${*:-inference latency train pipeline}
threads=2
rounds=${ROUNDS:-1}
out=bench/out
mkdir -p "$out"
if [ "${SAME_MALLOC:-0}" = 1 ]; then
  export PEER_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647:glibc.malloc.arena_max=1
fi
peer() { GLIBC_TUNABLES=${PEER_TUNABLES:-} BENCH_THREADS=$threads python3 "$@"; }
bench/build.sh
[ -f "$out/input.safetensors" ] || python3 bench/make_input.py "$out/input.safetensors" 32
lite0=../shared/weights/efficientnet-lite0-57934424.pth
weights_for() { [ "$1" = efficientnet_lite0 ] && echo "$lite0" || true; }

for section in $sections; do
  : > "$out/$section.jsonl"
  case $section in
  inference)
    for model in ${MODELS:-efficientnet_lite0 resnet18 resnet50 vgg16}; do
      n=$iters; [ "$model" = vgg16 ] && n=$(( (iters + 1) / 2 ))
      echo "== inference $model ($n batches)" >&2
      for _ in $(seq "$rounds"); do
        peer bench/peer_inference.py "$model" "$out/input.safetensors" "$n" $(weights_for $model) | tee -a "$out/$section.jsonl"
        peer bench/peer_ort.py "$model" "$out/input.safetensors" "$n" $(weights_for $model) | tee -a "$out/$section.jsonl"
        RAYON_NUM_THREADS=$threads target/release/examples/bench_inference "$model" "$out/input.safetensors" "$n" $(weights_for $model) | tee -a "$out/$section.jsonl"
      done
    done ;;
  latency)
    for model in ${MODELS:-efficientnet_lite0 resnet18 resnet50 vgg16}; do
      n=$(( iters * 4 )); [ "$model" = vgg16 ] && n=$(( iters * 2 ))
      echo "== latency $model (batch 1, $n runs)" >&2
      for _ in $(seq "$rounds"); do
        BATCH=1 peer bench/peer_ort.py "$model" "$out/input.safetensors" "$n" $(weights_for $model) | tee -a "$out/$section.jsonl"
        BATCH=1 RAYON_NUM_THREADS=$threads target/release/examples/bench_inference "$model" "$out/input.safetensors" "$n" $(weights_for $model) | tee -a "$out/$section.jsonl"
      done
    done ;;
  train)
    for model in ${TRAIN_MODELS:-resnet18 efficientnet_lite0}; do
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
NAMES = {"pytorch": "PyTorch", "onnxruntime": "ONNX Runtime"}
for path in sys.argv[1:]:
    rows = [json.loads(l) for l in open(path) if l.strip()]
    by = {}
    for r in rows:
        case = " ".join(str(r[k]) for k in ("model", "mode", "data") if k in r)
        if "batch" in r and "latency" in path:
            case += " (batch 1)"
        by.setdefault(case, {}).setdefault(r["impl"], []).append(r)
    def summary(runs):
        return {"ips": statistics.median(r["images_per_second"] for r in runs),
                "ms": statistics.median(r.get("ms_per_batch", 0.0) for r in runs),
                "rss": max(r["peak_rss_mib"] for r in runs), "n": len(runs)}
    peers = [p for p in NAMES if any(p in d for d in by.values())]
    latency = "latency" in path
    unit = "ms" if latency else "img/s"
    print(f"\n{path} (median of the rounds; the ratio is graft against the best peer; paired: the"
          " median of each round's ratio, graft against the best peer of the same round, which a"
          " drift of the machine between rounds moves less)\n")
    head = ["case", f"graft {unit}"] + [f"{NAMES[p]} {unit}" for p in peers]
    head += ["graft / best peer", "paired", "graft peak RSS MiB"] + [f"{NAMES[p]} peak RSS MiB" for p in peers] + ["rounds"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for case, d in by.items():
        if "graft" not in d:
            continue
        g = summary(d["graft"])
        s = {p: summary(d[p]) for p in peers if p in d}
        val = (lambda x: x["ms"]) if latency else (lambda x: x["ips"])
        cells = [case, f"{val(g):.2f}"] + [f"{val(s[p]):.2f}" if p in s else "" for p in peers]
        if s:
            best = max(x["ips"] for x in s.values())
            cells.append(f"{g['ips'] / best:.2f}x")
            # Round i of every implementation ran back to back (the loops above alternate).
            rounds = zip(d["graft"], *(d[p] for p in peers if p in d))
            paired = [r[0]["images_per_second"] / max(x["images_per_second"] for x in r[1:])
                      for r in rounds]
            cells.append(f"{statistics.median(paired):.2f}x")
        else:
            cells += ["(no peer)", ""]
        cells += [f"{g['rss']:.0f}"] + [f"{s[p]['rss']:.0f}" if p in s else "" for p in peers] + [str(g["n"])]
        print("| " + " | ".join(cells) + " |")
PY
