#!/usr/bin/env python3
"""ResNet-50's convolutions one shape at a time, graft against ONNX Runtime, weighted by how often
the network runs each shape: where graft's forward pass loses its time to ORT (issue 13).

python3 bench/conv_profile.py [BATCH] [LAYERS.tsv] [MODEL.onnx]
    (defaults: 32, bench/resnet50_convs.tsv, bench/out/resnet50.torch.onnx if present: the file
    bench/peer_ort.py exports)

ORT runs one Conv node (with bias, as exported ResNets are after BatchNorm folding) per shape,
2 intra-op threads, ORT_ENABLE_ALL, CPUExecutionProvider: the same session options as
bench/peer_ort.py. graft's side is `graft-kernels`' conv_forward example with CONV_LAYERS set
(built here with cargo), or with GRAFT_KERNELS=blocked its blocked_convs example (the kernels
EfficientNet's and ResNet's inference passes run). Inputs are ones; weights are small constants (timing does not depend on
values). With the exported network, ORT also runs it whole with `enable_profiling` and each
layer's in-network time (its Conv node, fused with ReLU and in ORT's blocked layout, matched by
shape) is a column of its own: ORT's isolated calls pay for copying the output back to numpy,
which inside the network they do not. Needs: pip install onnx onnxruntime numpy.
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
# In a whole network, activations over glibc's mmap threshold are served from heap space that
# loading the weights left free (no mmap per forward pass: strace counts the same 24 mmaps for
# 1 or 3 ResNet-50 passes); a lone convolution would map and fault in a fresh output every call.
# Without mmap, the lone layer's output is reused from the heap too, as in the network.
HEAP = "glibc.malloc.mmap_max=0"


def layers(path):
    rows = []
    for line in open(path):
        if line.strip() and not line.startswith("#"):
            name, *numbers = line.rstrip("\n").split("\t")
            rows.append((name, *map(int, numbers)))
    return rows


def ort_ms(batch, cin, cout, size, k, s, p):
    w = numpy_helper.from_array(np.full((cout, cin, k, k), 0.01, np.float32), "w")
    b = numpy_helper.from_array(np.zeros(cout, np.float32), "b")
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k],
                            strides=[s, s], pads=[p] * 4)
    graph = helper.make_graph([node], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = np.ones((batch, cin, size, size), np.float32)
    sess.run(None, {"x": x})
    start = time.perf_counter()
    for _ in range(3):
        sess.run(None, {"x": x})
    return (time.perf_counter() - start) / 3 * 1e3


def in_network_ms(batch, model_path):
    """Mean in-network time of each Conv node, by (in, out, input size, kernel, stride), from
    ORT's own profile of 3 runs of the whole network (after one warm-up)."""
    import json
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    x = np.ones((batch, 3, 224, 224), np.float32)
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})
    opts.enable_profiling = True
    opts.profile_file_prefix = "/tmp/graft_conv_profile"
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    sess.run(None, {name: x})
    start = time.perf_counter()
    for _ in range(3):
        sess.run(None, {name: x})
    whole = (time.perf_counter() - start) / 3 * 1e3
    events = json.load(open(sess.end_profiling()))
    times, ops = {}, {}
    for e in events:
        a = e.get("args", {})
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        op = a.get("op_name", "?")
        ops[op] = ops.get(op, 0.0) + e["dur"] / 1e3 / 4
        if "Conv" not in op:
            continue
        shapes = [list(d.values())[0] for d in a.get("input_type_shape", [])]
        outs = [list(d.values())[0] for d in a.get("output_type_shape", [])]
        if len(shapes) < 2 or not outs:
            continue
        x_shape, w_shape, y_shape = shapes[0], shapes[1], outs[0]
        # The blocked layout (NCHWc) pads channels to its block; the weight holds the true ones.
        cout, k = w_shape[0], w_shape[-1]
        cin = w_shape[1] if len(w_shape) == 4 else x_shape[1]
        size, stride = x_shape[-1], max(1, round(x_shape[-1] / y_shape[-1]))
        key = (cin, cout, size, k, stride)
        times.setdefault(key, []).append(e["dur"] / 1e3)
    # Four runs were profiled (the first as its warm-up); each shape's time is per call.
    per_call = {key: sum(v) / len(v) for key, v in times.items()}
    return per_call, whole, ops


def graft_ms(batch, path):
    # GRAFT_KERNELS=blocked: the blocked kernels an EfficientNet or ResNet pass runs
    # (blocked_convs example); otherwise graft's NCHW convolution (conv_forward).
    blocked = os.environ.get("GRAFT_KERNELS") == "blocked"
    example = "blocked_convs" if blocked else "conv_forward"
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "graft-kernels", "--example",
                    example], check=True, cwd=HERE.parent)
    exe = str(HERE.parent / "target/release/examples" / example)
    args = [exe, str(path), str(batch)] if blocked else [exe, str(batch)]
    env = {**os.environ, "CONV_LAYERS": str(path), "GLIBC_TUNABLES": HEAP, "BLOCKS_ONLY": "1"}
    out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
    pattern = (r"^(.*?)\s+x\d+\s+(?:planes.*?)?blocks\s+([\d.]+) ms" if blocked
               else r"^(.*?)\s+graft\s+([\d.]+) ms")
    return {m.group(1).strip(): float(m.group(2)) for m in re.finditer(pattern, out, re.M)}


def main():
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    path = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "resnet50_convs.tsv"
    rows = layers(path)
    model = Path(sys.argv[3]) if len(sys.argv) > 3 else HERE / "out" / "resnet50.torch.onnx"
    net, whole, ops = in_network_ms(batch, model) if model.exists() else ({}, None, {})
    graft = graft_ms(batch, path)
    print(f"batch {batch}, {THREADS} threads; ms per call, and x count in the network")
    print("| layer | count | GFLOP | graft ms | ORT alone ms | ORT in network ms | graft GF/s | "
          "ORT in network GF/s | graft / ORT in network (time) | graft ms x count | "
          "ORT in network ms x count |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    total_g = total_n = 0.0
    for name, cin, cout, size, k, s, p, count in rows:
        o = ort_ms(batch, cin, cout, size, k, s, p)
        n = net.get((cin, cout, size, k, s), float("nan"))
        g = graft.get(name, float("nan"))
        out = (size + 2 * p - k) // s + 1
        gflop = 2 * batch * cout * out * out * cin * k * k / 1e9
        total_g += g * count
        total_n += n * count
        print(f"| {name} | {count} | {gflop:.2f} | {g:.1f} | {o:.1f} | {n:.1f} | "
              f"{gflop / g * 1e3:.0f} | {gflop / n * 1e3:.0f} | {g / n:.2f} | {g * count:.0f} | "
              f"{n * count:.0f} |")
    print(f"| all convolutions | | | | | | | | {total_g / total_n:.2f} | {total_g:.0f} | "
          f"{total_n:.0f} |")
    if whole is not None:
        print(f"\nORT, the whole network: {whole:.0f} ms a batch; its profile by operator (ms a "
              "batch): " + ", ".join(f"{op} {ms:.0f}" for op, ms in
                                    sorted(ops.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
