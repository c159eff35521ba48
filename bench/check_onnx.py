#!/usr/bin/env python3
"""Checks a file written by `graft export` with ONNX Runtime, as timm's
onnx_export(check_forward=True) does: the file loads, its metadata says how to feed it, and its
answers for real images agree with `graft predict` on the same images.

    pip install onnx onnxruntime numpy pillow
    python3 bench/check_onnx.py MODEL.onnx PREDICT.json IMAGE...

PREDICT.json is `graft predict --json -k 1000 [--run RUN_DIR | --model NAME --weights FILE] IMAGE...`
for the same images. Preprocessing follows the file's metadata (bench/preprocess.py: PIL bilinear resize of
the short side, centre crop, mean/std), so small differences from graft's own resize are expected: the
check is the top-1 class and probabilities within 0.02. Prints one JSON line; exits 1 on a
disagreement.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

from preprocess import preprocess


def main():
    model_path, predict_json, images = sys.argv[1], sys.argv[2], sys.argv[3:]
    onnx.checker.check_model(onnx.load(model_path))
    meta = {m.key: m.value for m in onnx.load(model_path).metadata_props}
    p = json.loads(meta["preprocessing"])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    x = np.stack([preprocess(i, p["resize"], p["crop"], p["mean"], p["std"]) for i in images])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    if meta["output"] == "logits":
        e = np.exp(out - out.max(axis=1, keepdims=True))
        out = e / e.sum(axis=1, keepdims=True)
    graft = {r["path"]: r["top"] for r in json.load(open(predict_json))["predictions"]}
    worst, agree = 0.0, 0
    for path, row in zip(images, out):
        top = graft[path]
        agree += int(int(np.argmax(row)) == top[0]["index"])
        for t in top:
            worst = max(worst, abs(float(row[t["index"]]) - t["probability"]))
    ok = agree == len(images) and worst < 0.02
    print(json.dumps({"images": len(images), "top1_agree": agree, "max_prob_diff": worst,
                      "classes": len(json.loads(meta["classes"])), "ok": ok}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
