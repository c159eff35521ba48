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
import torchvision
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
from make_fixtures import LITE0, EffLite  # noqa: E402


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
