#!/usr/bin/env bash
# graft vs PyTorch on transfer-learning work, hymenoptera + EfficientNet-Lite0, 2 threads:
#  1. `head` end to end (decode, features, training, evaluation), cold feature cache, vs the
#     PyTorch tutorial's fixed-feature-extractor recipe (25 epochs, batch 4);
#  2. the same `head` run again with a warm cache;
#  3. one `partial:2` epoch (from `--epochs 3` minus `--epochs 1`, cache warm) vs PyTorch doing
#     the same epoch (frozen part recomputed under no_grad, as PyTorch users do).
# Usage: bench/transfer.sh [TUTORIAL_EPOCHS]   (results: bench/out/transfer.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-25}
out=bench/out
mkdir -p "$out"
bench/build.sh
export RAYON_NUM_THREADS=2 BENCH_THREADS=2
home=$(mktemp -d)
runs=$(mktemp -d)
g=target/release/graft
w=../shared/weights/efficientnet-lite0-57934424.pth
d=../shared/data/hymenoptera
now() { python3 -c 'import time; print(time.perf_counter())'; }
rss() { /usr/bin/time -f '%M' "$@" 2> "$runs/rss" > "$runs/stdout"; tail -1 "$runs/rss"; }
: > "$out/transfer.jsonl"

echo "== PyTorch tutorial recipe ($epochs epochs)" >&2
python3 bench/peer_transfer.py tutorial "$epochs" | tee -a "$out/transfer.jsonl"

echo "== graft head, cold cache" >&2
t0=$(now); kb=$(GRAFT_HOME=$home rss $g -q train --json --strategy head --weights $w --data $d --out "$runs/cold"); t1=$(now)
python3 -c "import json,sys; r=json.loads(open('$runs/stdout').read().splitlines()[-1]); print(json.dumps({'impl':'graft','mode':'head_cold','seconds':$t1-$t0,'val_accuracy':r['val_accuracy'],'peak_rss_mib':$kb/1024}))" | tee -a "$out/transfer.jsonl"

echo "== graft head, warm cache" >&2
t0=$(now); kb=$(GRAFT_HOME=$home rss $g -q train --json --strategy head --weights $w --data $d --out "$runs/warm"); t1=$(now)
python3 -c "import json; r=json.loads(open('$runs/stdout').read().splitlines()[-1]); print(json.dumps({'impl':'graft','mode':'head_warm','seconds':$t1-$t0,'val_accuracy':r['val_accuracy'],'peak_rss_mib':$kb/1024}))" | tee -a "$out/transfer.jsonl"

echo "== partial:2 epoch" >&2
GRAFT_HOME=$home $g -q train --json --strategy partial:2 --epochs 1 --weights $w --data $d --out "$runs/p0" > /dev/null
t0=$(now); GRAFT_HOME=$home $g -q train --json --strategy partial:2 --epochs 1 --weights $w --data $d --out "$runs/p1" > /dev/null; t1=$(now)
kb=$(GRAFT_HOME=$home rss $g -q train --json --strategy partial:2 --epochs 3 --weights $w --data $d --out "$runs/p3"); t2=$(now)
python3 -c "print(__import__('json').dumps({'impl':'graft','mode':'partial_epoch','seconds':(($t2-$t1)-($t1-$t0))/2,'peak_rss_mib':$kb/1024}))" | tee -a "$out/transfer.jsonl"
python3 bench/peer_transfer.py partial_epoch | tee -a "$out/transfer.jsonl"
rm -rf "$home" "$runs"

python3 - "$out/transfer.jsonl" <<'PY'
import json, sys
r = {(x["impl"], x["mode"]): x for x in map(json.loads, open(sys.argv[1]))}
tut, cold, warm = r["pytorch", "tutorial"], r["graft", "head_cold"], r["graft", "head_warm"]
pe, ge = r["pytorch", "partial_epoch"], r["graft", "partial_epoch"]
print("| work | graft | PyTorch | speed-up |")
print("| --- | --- | --- | --- |")
print(f"| head end to end, cold cache | {cold['seconds']:.1f} s, val {cold['val_accuracy']:.1%} | {tut['seconds']:.1f} s, best val {tut['best_val_accuracy']:.1%} | {tut['seconds']/cold['seconds']:.1f}x |")
print(f"| head end to end, warm cache | {warm['seconds']:.2f} s, val {warm['val_accuracy']:.1%} | (no cache) | {tut['seconds']/warm['seconds']:.0f}x |")
print(f"| one partial:2 epoch | {ge['seconds']:.2f} s | {pe['seconds']:.1f} s | {pe['seconds']/ge['seconds']:.1f}x |")
print(f"\npeak RSS MiB: graft head cold {cold['peak_rss_mib']:.0f}, PyTorch tutorial {tut['peak_rss_mib']:.0f} (main process; workers extra)")
PY
