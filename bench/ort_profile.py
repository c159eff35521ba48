#!/usr/bin/env python3
"""ONNX Runtime's own profile (SessionOptions.enable_profiling) of one exported network: time by
operator kind (1x1, depthwise and other convolutions told apart by their weights' shape) and by
node, ms per pass, averaged over 5 passes (the first warms up). 2 intra-op threads (THREADS=N
for another count), ORT_ENABLE_ALL,
as bench/peer_ort.py. The ORT side of a per-layer comparison; graft's is the lite_layers example.

    python3 bench/ort_profile.py MODEL.onnx [BATCH]

Needs: pip install onnxruntime numpy.
"""
import collections
import json
import sys

import numpy as np
import onnxruntime as ort

RUNS = 5


def kind_of(op, shapes):
    """The operator, with a convolution told apart by its weight's shape."""
    if "Conv" not in op or len(shapes) < 2:
        return op
    w = shapes[1]
    if len(w) == 4 and w[1] == 1 and w[0] > 3:
        return f"{op} dw"
    return f"{op} 1x1" if w[-1] == 1 else f"{op} kxk"


def main():
    path = sys.argv[1]
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(__import__("os").environ.get("THREADS", "2"))
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    opts.profile_file_prefix = "/tmp/graft_ort_profile"
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    name = sess.get_inputs()[0].name
    for _ in range(RUNS):
        sess.run(None, {name: x})
    kinds = collections.Counter()
    nodes = collections.Counter()
    for e in json.load(open(sess.end_profiling())):
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        args = e["args"]
        shapes = [list(d.values())[0] for d in args.get("input_type_shape", [])]
        out = [list(d.values())[0] for d in args.get("output_type_shape", [])][:1]
        kind = kind_of(args.get("op_name", "?"), shapes)
        ms = e["dur"] / 1e3 / RUNS
        kinds[kind] += ms
        nodes[(e["name"].removesuffix("_kernel_time"), kind, str(shapes[:2]), str(out))] += ms
    total = sum(kinds.values())
    print(f"batch {batch}: {total:.1f} ms a pass in kernels")
    for kind, ms in kinds.most_common():
        print(f"{kind:30} {ms:7.1f} ms {100 * ms / total:5.1f}%")
    for key, ms in nodes.most_common(60):
        print(f"{ms:6.2f}", *key)


if __name__ == "__main__":
    main()
