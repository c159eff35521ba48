"""PyTorch's side of the per-layer convolution timing (graft's: `cargo run --release -p
graft-kernels --example conv_forward [BATCH]`): the same layer shapes, 2 threads, inference mode.

Usage: python3 bench/peer_conv.py [BATCH]
"""
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(2)
batch = int(sys.argv[1]) if len(sys.argv) > 1 else 16
# (name, in, out, size, kernel, stride, padding), shared with graft-kernels/examples/conv_forward.rs
LAYERS = []
for line in open(Path(__file__).with_name("conv_layers.tsv")):
    if line.strip() and not line.startswith("#"):
        name, *numbers = line.rstrip("\n").split("\t")
        LAYERS.append((name, *map(int, numbers)))
with torch.inference_mode():
    for name, cin, cout, size, k, s, p in LAYERS:
        x = torch.ones(batch, cin, size, size)
        conv = torch.nn.Conv2d(cin, cout, k, s, p, bias=False)
        conv(x)
        start = time.perf_counter()
        for _ in range(3):
            conv(x)
        secs = (time.perf_counter() - start) / 3
        out = (size + 2 * p - k) // s + 1
        gflop = 2 * batch * cout * out * out * cin * k * k / 1e9
        print(f"{name:16} torch {secs * 1e3:7.1f} ms {gflop / secs:5.0f} GF/s")
