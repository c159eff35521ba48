#!/usr/bin/env python3
"""ONNX Runtime's side of bench/run.sh: the model as a speed-minded user runs it on a CPU.

python3 bench/peer_ort.py MODEL INPUT.safetensors ITERS [WEIGHTS]   (BATCH=1 for latency)
The model is exported once with torch.onnx.export (opset 17, dynamic batch, dynamo=False) to
bench/out/MODEL.torch.onnx, with TF-"same" padding frozen for 224x224 (peer_inference.exportable,
as timm exports) and moved onto the Conv nodes (fold_pads), checked against PyTorch (1e-4 relative), then run by an
InferenceSession with intra_op_num_threads=BENCH_THREADS, inter_op_num_threads=1,
ORT_ENABLE_ALL, CPUExecutionProvider. Prints one JSON line: impl, model, batch,
images_per_second, ms_per_batch, peak_rss_mib.
Needs: pip install torch torchvision onnx onnxruntime safetensors.
"""
import json
import os
import sys
import time

import numpy as np
from safetensors.numpy import load_file


def peak_rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def export(name, weights, path, x):
    """Exported in a child process so that PyTorch's memory does not count in ORT's peak RSS."""
    import subprocess
    code = f"""
import sys, torch, numpy as np
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from peer_inference import build, exportable
from peer_ort import fold_pads
m = exportable(build({name!r}, {weights!r}))
x = torch.from_numpy(np.load({path + '.x.npy'!r}))
torch.onnx.export(m, x, {path + '.tmp'!r}, opset_version=17, dynamo=False,
                  input_names=['input'], output_names=['logits'],
                  dynamic_axes={{'input': {{0: 'batch'}}, 'logits': {{0: 'batch'}}}})
fold_pads({path + '.tmp'!r})
with torch.inference_mode():
    np.save({path + '.ref.npy'!r}, m(x).numpy())
"""
    np.save(path + ".x.npy", x[:2])
    subprocess.run([sys.executable, "-c", code], check=True)
    os.replace(path + ".tmp", path)


def fold_pads(path):
    """Moves each constant zero `Pad` in front of a `Conv` onto the `Conv`'s own `pads`.
    EfficientNet-Lite's stride-2 layers pad TF-"same" asymmetrically (one more row at the
    bottom), which a PyTorch Conv2d cannot express, so the export keeps five `Pad` nodes. ONNX
    Runtime leaves them in place and drops out of its blocked NCHWc layout around each one,
    costing about a third of a Lite0 pass at batch 1 (bench/ort_export_check.py). ORT's own
    constant folding (ORT_ENABLE_BASIC, standard ops only) first turns the pad amounts into
    initializers; the file is rewritten in place."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = path + ".basic"
    ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    model = onnx.load(path + ".basic")
    os.remove(path + ".basic")
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    users = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    folded = []
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        after = users.get(pad.output[0], [])
        amounts = consts.get(pad.input[1]) if len(pad.input) > 1 else None
        value = consts.get(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else 0.0
        mode = [a.s for a in pad.attribute if a.name == "mode"]
        if (len(after) != 1 or after[0].op_type != "Conv" or amounts is None or value is None
                or float(np.max(np.abs(value))) != 0.0 or mode not in ([], [b"constant"])
                or amounts.shape != (8,) or amounts[[0, 1, 4, 5]].any()):
            continue
        conv = after[0]
        own = [a for a in conv.attribute if a.name == "pads"]
        base = list(own[0].ints) if own else [0, 0, 0, 0]
        extra = [int(amounts[2]), int(amounts[3]), int(amounts[6]), int(amounts[7])]
        for a in own:
            conv.attribute.remove(a)
        conv.attribute.append(onnx.helper.make_attribute("pads", [b + e for b, e in zip(base, extra)]))
        conv.input[0] = pad.input[0]
        folded.append(pad)
    for pad in folded:
        graph.node.remove(pad)
    used = {name for node in graph.node for name in node.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    onnx.save(model, path)
    return len(folded)


def main():
    name, input_path, iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
    weights = sys.argv[4] if len(sys.argv) > 4 else None
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    x = load_file(input_path)["input"]
    batch = int(os.environ.get("BATCH", x.shape[0]))
    x = np.ascontiguousarray(x[:batch])
    path = os.path.join(os.path.dirname(input_path), f"{name}.torch.onnx")
    if not os.path.exists(path):
        export(name, weights, path, x)
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = sess.get_inputs()[0].name
    if os.path.exists(path + ".ref.npy"):
        ref = np.load(path + ".ref.npy")
        got = sess.run(None, {feed: np.load(path + ".x.npy")})[0]
        err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12))
        if err > 1e-4:
            sys.exit(f"peer_ort: {path} disagrees with PyTorch by {err:.2e} relative")
    sess.run(None, {feed: x})
    start = time.perf_counter()
    for _ in range(iters):
        sess.run(None, {feed: x})
    secs = time.perf_counter() - start
    print(json.dumps({"impl": "onnxruntime", "model": name, "batch": batch,
                      "images_per_second": round(batch * iters / secs, 3),
                      "ms_per_batch": round(1000 * secs / iters, 3),
                      "peak_rss_mib": round(peak_rss_mib(), 1)}))


if __name__ == "__main__":
    main()
