#!/usr/bin/env python3
"""Strategy 2 (frozen backbone, new linear classifier) as a speed-minded Python user builds it:
PIL preprocessing in a process pool, EfficientNet-Lite0 features from ONNX Runtime, and
scikit-learn's LogisticRegression (L-BFGS, default C) on them. The peer of
`graft train --strategy head` with a cold cache in bench/head.sh.

    python3 bench/peer_ort_head.py DATA_DIR WEIGHTS THREADS

DATA_DIR is train/ + val/ class folders (hymenoptera) or class folders + split.csv (caltech101-20);
accuracy is on val, or on split.csv's test. The feature model (the network up to the pooled
1280 features) is exported once with torch.onnx.export (padding frozen for 224x224, as timm exports) to bench/out/ and not timed (a user
exports once). Prints one JSON line: seconds (decode + features + fit + predict), accuracy,
train/eval images, peak RSS of this process plus its pool's largest worker.
"""
import csv
import json
import os
import resource
import subprocess
import sys
import time
from multiprocessing import Pool

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from preprocess import preprocess  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def samples(root):
    """[(path, class name, split)], split "train" or "eval"."""
    split_csv = os.path.join(root, "split.csv")
    if os.path.exists(split_csv):
        rows = list(csv.DictReader(open(split_csv)))
        return [(os.path.join(root, r["path"]), r["path"].split("/")[0],
                 "train" if r["split"] == "train" else "eval") for r in rows]
    out = []
    for split, name in (("train", "train"), ("val", "eval")):
        for cls in sorted(os.listdir(os.path.join(root, split))):
            d = os.path.join(root, split, cls)
            out += [(os.path.join(d, f), cls, name) for f in sorted(os.listdir(d))]
    return out


def export_features(weights, path):
    code = f"""
import sys, torch
sys.path.insert(0, {HERE!r})
from peer_inference import build, exportable
from peer_ort import fold_pads
m = exportable(build('efficientnet_lite0', {weights!r}))
m._fc = torch.nn.Identity()
x = torch.zeros(2, 3, 224, 224)
torch.onnx.export(m, x, {path + '.tmp'!r}, opset_version=17, dynamo=False,
                  input_names=['input'], output_names=['features'],
                  dynamic_axes={{'input': {{0: 'batch'}}, 'features': {{0: 'batch'}}}})
fold_pads({path + '.tmp'!r})
"""
    subprocess.run([sys.executable, "-c", code], check=True, stderr=subprocess.DEVNULL)
    os.replace(path + ".tmp", path)


def load(path):
    return preprocess(path, 256, 224, MEAN, STD)


def main():
    root, weights, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = os.path.join(HERE, "out", "efficientnet_lite0-features.torch.onnx")
    if not os.path.exists(model):
        export_features(weights, model)
    import onnxruntime as ort
    from sklearn.linear_model import LogisticRegression
    items = samples(root)
    classes = sorted({c for _, c, _ in items})
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    start = time.perf_counter()
    feats = []
    with Pool(threads) as pool:
        paths = [p for p, _, _ in items]
        for i in range(0, len(paths), 32):
            x = np.stack(pool.map(load, paths[i:i + 32]))
            feats.append(sess.run(None, {"input": x})[0].reshape(len(x), -1))
    x = np.concatenate(feats)
    y = np.array([classes.index(c) for _, c, _ in items])
    train = np.array([s == "train" for _, _, s in items])
    clf = LogisticRegression(max_iter=1000).fit(x[train], y[train])
    accuracy = float((clf.predict(x[~train]) == y[~train]).mean())
    seconds = time.perf_counter() - start
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
           + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(json.dumps({"impl": "onnxruntime+sklearn", "data": os.path.basename(root.rstrip("/")),
                      "seconds": round(seconds, 3), "accuracy": round(accuracy, 4),
                      "train_images": int(train.sum()), "eval_images": int((~train).sum()),
                      "peak_rss_mib": round(rss, 1)}))


if __name__ == "__main__":
    main()
