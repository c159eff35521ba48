#!/usr/bin/env python3
"""The peer for graft's cross-validated linear head: scikit-learn's GridSearchCV over
LogisticRegression(solver="lbfgs") with C in logspace(-3, 2, 11) and StratifiedKFold(5), on the
features graft wrote (crates/graft-run/examples/linear_probe.rs). Prints one JSON line.
    python3 bench/peer_linear_probe.py OUT_PREFIX"""
import json, sys, time
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold

prefix = sys.argv[1]
def load(name):
    y = np.fromfile(f"{prefix}-{name}.labels", dtype="<u4").astype(np.int64)
    x = np.fromfile(f"{prefix}-{name}.f32", dtype="<f4").reshape(len(y), -1)
    return x, y
xt, yt = load("train")
xh, yh = load("test")
search = GridSearchCV(LogisticRegression(max_iter=1000), {"C": np.logspace(-3, 2, 11)},
                      cv=StratifiedKFold(5, shuffle=True, random_state=0), n_jobs=1)
start = time.perf_counter()
search.fit(xt, yt)
seconds = time.perf_counter() - start
print(json.dumps({"cv_seconds": seconds, "c": float(search.best_params_["C"]),
                  "cv_scores": [[float(c), float(s)] for c, s in zip(np.logspace(-3, 2, 11), search.cv_results_["mean_test_score"])],
                  "test_accuracy": float((search.predict(xh) == yh).mean())}))
