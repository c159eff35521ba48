#!/usr/bin/env bash
# Strategy 2 end to end, cold feature cache, EfficientNet-Lite0, 2 threads: `graft train
# --strategy head` against the recipe a speed-minded Python user builds (bench/peer_ort_head.py:
# PIL in a 2-process pool, ONNX Runtime features, scikit-learn LogisticRegression), on
# hymenoptera and caltech101-20. ROUNDS=N alternates the two N times; the table gives medians.
# graft decides its epoch on a carved selection split (15% of train), the peer trains on all of
# train with its default C; both report the held-out split (hymenoptera val, caltech101-20 test).
# Needs: pip install torch torchvision onnx onnxruntime scikit-learn pillow numpy.
# GRAFT_ARGS adds options to graft's command (GRAFT_ARGS="--tta none": the peer evaluates each
# image once; graft's default also evaluates its mirror image).
# DATASETS limits the datasets (default: hymenoptera caltech101-20).
# Usage: bench/head.sh   (results: bench/out/head.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-1}
out=bench/out
mkdir -p "$out"
bench/build.sh
export RAYON_NUM_THREADS=2
w=../shared/weights/efficientnet-lite0-57934424.pth
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$out/head.jsonl"
for data in ${DATASETS:-hymenoptera caltech101-20}; do
  for r in $(seq "$rounds"); do
    echo "== $data round $r: ONNX Runtime + scikit-learn" >&2
    python3 bench/peer_ort_head.py "../shared/data/$data" "$w" 2 | tee -a "$out/head.jsonl"
    echo "== $data round $r: graft train --strategy head, cold cache" >&2
    # A new cache folder each round, all deleted at the end: on ext4 without a journal (this
    # machine's disk) every file creation skips the inodes freed in the last minute or more
    # (`recently_deleted`). Deleting the last round's cache just before a run gave it 0.5-0.76 s
    # of system time on hymenoptera, against 0.21-0.33 s in a new folder with nothing deleted
    # and 0.13-0.15 s with the cache on tmpfs. A user's first run follows no such deletion.
    home="$tmp/home-$data-$r" run="$tmp/run-$data-$r"
    start=$(date +%s.%N)
    GRAFT_HOME="$home" /usr/bin/time -f '%M' -o "$tmp/rss" target/release/graft -q train --json \
      --strategy head --weights "$w" --data "../shared/data/$data" --out "$run" ${GRAFT_ARGS:-} > "$tmp/out.json"
    end=$(date +%s.%N)
    python3 - "$tmp/out.json" "$data" "$start" "$end" "$tmp/rss" <<'PY' | tee -a "$out/head.jsonl"
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print(json.dumps({"impl": "graft", "data": sys.argv[2],
                  "seconds": round(float(sys.argv[4]) - float(sys.argv[3]), 3),
                  "accuracy": r["val_accuracy"],
                  "peak_rss_mib": round(int(open(sys.argv[5]).read().split()[-1]) / 1024, 1)}))
PY
  done
done
python3 - "$out/head.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| dataset | graft s | ORT + sklearn s | speed-up | graft accuracy | peer accuracy | graft RSS MiB | peer RSS MiB |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for data in dict.fromkeys(r["data"] for r in rows):
    g = [r for r in rows if r["data"] == data and r["impl"] == "graft"]
    p = [r for r in rows if r["data"] == data and r["impl"] != "graft"]
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print(f"| {data} | {med(g, 'seconds'):.2f} | {med(p, 'seconds'):.2f} | "
          f"{med(p, 'seconds') / med(g, 'seconds'):.2f}x | {med(g, 'accuracy'):.4f} | "
          f"{med(p, 'accuracy'):.4f} | {max(r['peak_rss_mib'] for r in g):.0f} | "
          f"{max(r['peak_rss_mib'] for r in p):.0f} |")
PY
