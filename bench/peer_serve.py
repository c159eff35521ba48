#!/usr/bin/env python3
"""The serving peer: what a speed-minded Python user writes. FastAPI + uvicorn (1 worker),
ONNX Runtime (2 intra-op threads) on the file `graft export` wrote, PIL decoding, one request
at a time, the same preprocessing as the file's metadata.

    pip install fastapi uvicorn onnx onnxruntime numpy pillow
    python3 bench/peer_serve.py MODEL.onnx PORT
"""
import io
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, Request

from preprocess import preprocess

path, port = sys.argv[1], int(sys.argv[2])
meta = {m.key: m.value for m in onnx.load(path).metadata_props}
pre = json.loads(meta["preprocessing"])
classes = json.loads(meta["classes"])
opts = ort.SessionOptions()
opts.intra_op_num_threads = 2
opts.inter_op_num_threads = 1
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
app = FastAPI()


def prepare(data):
    return preprocess(io.BytesIO(data), pre["resize"], pre["crop"], pre["mean"], pre["std"])[None]


@app.post("/predict")
async def predict(request: Request):
    x = prepare(await request.body())
    logits = sess.run(None, {name: x})[0][0]
    e = np.exp(logits - logits.max())
    p = e / e.sum()
    top = np.argsort(-p)[:5]
    return [{"label": classes[i], "score": float(p[i]), "index": int(i)} for i in top]


uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning")
