#!/usr/bin/env python3
"""ONNX Runtime on two exports of the same EfficientNet-Lite0: torch.onnx.export's file
(bench/out/efficientnet_lite0.torch.onnx, made by bench/peer_ort.py) and graft export's
(bench/out/efficientnet_lite0.onnx, made by bench/serve.sh). The two should run at the same
speed: a gap means the peer's export keeps ORT from its best (it did, about 3x, until
peer_ort.py froze and folded the TF-"same" padding). Batch 1 (or BATCH), 2 intra-op threads,
ORT_ENABLE_ALL, alternating, 3 rounds: ms per pass. Needs: pip install onnxruntime numpy.

python3 bench/ort_export_check.py   (BATCH=32 for batch 32)
"""
import os
import time

import numpy as np
import onnxruntime as ort


def sess(p):
    o = ort.SessionOptions(); o.intra_op_num_threads = 2; o.inter_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(p, o, providers=["CPUExecutionProvider"])
batch = int(os.environ.get("BATCH", "1"))
x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
for rnd in range(3):
    for p in ["bench/out/efficientnet_lite0.torch.onnx", "bench/out/efficientnet_lite0.onnx"]:
        s = sess(p); name = s.get_inputs()[0].name
        for _ in range(5): s.run(None, {name: x})
        t = time.perf_counter(); n = 40 if batch == 1 else 3
        for _ in range(n): s.run(None, {name: x})
        print(rnd, p.split('/')[-1], f"{1000*(time.perf_counter()-t)/n:.2f} ms")
