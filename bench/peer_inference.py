#!/usr/bin/env python3
"""PyTorch's side of bench/run.sh: the same models, the same input batch, eager mode.

python3 bench/peer_inference.py MODEL INPUT.safetensors ITERS [WEIGHTS]
Prints one JSON line: model, batch, images_per_second, peak_rss_mib.
"""
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
from make_fixtures import LITE0, EffLite, SameConv  # noqa: E402


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
    ~20 shape-arithmetic nodes and a `Pad` that ONNX Runtime cannot fold into the convolution:
    EfficientNet-Lite0 then runs about 3x slower under ORT than the same function with the
    padding on the `Conv` (bench/ort_export_check.py). Constant amounts let ORT's pad fusion
    move them onto the `Conv`. Returns the model, its function unchanged at that size."""
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
        k, s = mod.kernel_size[0], mod.stride[0]
        ph = max((-(-ih // s) - 1) * s + k - ih, 0)
        pw = max((-(-iw // s) - 1) * s + k - iw, 0)
        if ph % 2 == 0 and pw % 2 == 0:
            mod.padding = (ph // 2, pw // 2)
            mod.forward = (lambda m: lambda x: nn.Conv2d.forward(m, x))(mod)
        else:
            pads = [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]
            mod.forward = (lambda m, p: lambda x: F.conv2d(F.pad(x, p), m.weight, m.bias,
                                                           m.stride, 0, 1, m.groups))(mod, pads)
    return model


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
