#!/usr/bin/env python3
"""PyTorch's side of bench/run.sh: the same models, the same input batch, eager mode.

python3 bench/peer_inference.py MODEL INPUT.safetensors ITERS [WEIGHTS]
Prints one JSON line: model, batch, images_per_second, peak_rss_mib.
"""
import functools
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
import torchvision
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
from make_fixtures import LITE0, EffLite, SameConv, same_pads  # noqa: E402


def peak_rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def build(name, weights):
    if name == "efficientnet_lite0":
        m = EffLite(32, 1280, LITE0, 1000)
    else:
        m = getattr(torchvision.models, name)(weights=None)
    if weights:
        m.load_state_dict(torch.load(weights, map_location="cpu"))
    return m.eval()


def exportable(model, size=224):
    """Freezes every TF-"same" convolution's padding for a size x size input, as timm's
    exportable layers do. A traced `F.pad` whose amounts come from the input's shape exports as
    ~20 shape-arithmetic nodes per convolution and a `Pad` that ONNX Runtime keeps: Lite0 then
    ran about 3x slower under ORT than the same function with the padding on the `Conv`
    (bench/ort_export_check.py). Symmetric padding goes onto the convolution itself; the
    asymmetric (stride-2) layers keep a constant `F.pad`, which peer_ort.fold_pads moves onto
    the exported `Conv`. Returns the model, its function unchanged at that size."""
    shapes = {}

    def record(mod, args):
        shapes[mod] = args[0].shape[-2:]

    hooks = [mod.register_forward_pre_hook(record) for mod in model.modules()
             if isinstance(mod, SameConv)]
    with torch.inference_mode():
        model(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    for mod, (ih, iw) in shapes.items():
        left, right, top, bottom = pads = same_pads(ih, iw, mod.kernel_size[0], mod.stride[0])
        if left == right and top == bottom:
            mod.padding = (top, left)
            mod.forward = functools.partial(nn.Conv2d.forward, mod)
        else:
            mod.forward = functools.partial(_padded_conv, mod, pads)
    return model


def _padded_conv(conv, pads, x):
    return F.conv2d(F.pad(x, pads), conv.weight, conv.bias, conv.stride, 0, 1, conv.groups)


def main():
    name, path, iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
    weights = sys.argv[4] if len(sys.argv) > 4 else None
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    model = build(name, weights)
    x = load_file(path)["input"]
    with torch.inference_mode():
        model(x)
        start = time.perf_counter()
        for _ in range(iters):
            model(x)
        secs = time.perf_counter() - start
    print(json.dumps({"impl": "pytorch", "model": name, "batch": x.shape[0],
                      "images_per_second": round(x.shape[0] * iters / secs, 3),
                      "peak_rss_mib": round(peak_rss_mib(), 1)}))


if __name__ == "__main__":
    main()
