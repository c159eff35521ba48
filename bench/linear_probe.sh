#!/usr/bin/env bash
# graft's cross-validated linear head (L-BFGS, 5 folds x 11 C) against scikit-learn's
# GridSearchCV(LogisticRegression) on the same EfficientNet-Lite0 features, in one run.
# Needs: pip install numpy scikit-learn. Prints one line per dataset with the ratio, and graft's
# search repeated on standardised and L2-normalised features.
#   bench/linear_probe.sh [DATASET...]     (default: hymenoptera caltech101-20)
set -euo pipefail
cd "$(dirname "$0")/.."
weights=../shared/weights/efficientnet-lite0-57934424.pth
bench/build.sh
mkdir -p bench/out
for ds in "${@:-hymenoptera caltech101-20}"; do
  for d in $ds; do
    graft=$(./target/release/examples/linear_probe "../shared/data/$d" "$weights" "bench/out/lp-$d")
    peer=$(python3 bench/peer_linear_probe.py "bench/out/lp-$d")
    python3 - "$d" "$graft" "$peer" <<'PY'
import json, sys
d, g, p = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{d}: graft {g['cv_seconds']:.3f} s (C={g['c']:.3g}, held-out {100*g['test_accuracy']:.1f}%), "
      f"scikit-learn {p['cv_seconds']:.3f} s (C={p['c']:.3g}, held-out {100*p['test_accuracy']:.1f}%), "
      f"graft {p['cv_seconds']/g['cv_seconds']:.1f}x faster; {g['n_train']} train rows, {g['k']} classes")
print("  feature scaling (C chosen by CV on train; test untouched by any choice): " + "; ".join(
    f"{s['scaling']} CV {100*s['cv_accuracy']:.2f}% test {100*s['test_accuracy']:.2f}%" for s in g["scalings"]))
PY
  done
done
