"""PyTorch's side of the per-layer convolution timing (graft's: `cargo run --release -p
graft-kernels --example conv_forward [BATCH]`): the same layer shapes, 2 threads, inference mode.

Usage: python3 bench/peer_conv.py [BATCH]
"""
import sys
import time

import torch

torch.set_num_threads(2)
batch = int(sys.argv[1]) if len(sys.argv) > 1 else 16
# (name, in, out, size, kernel, stride, padding), as in graft-kernels/examples/conv_forward.rs
LAYERS = [
    ("stem 7x7/2", 3, 64, 224, 7, 2, 3),
    ("layer1 3x3", 64, 64, 56, 3, 1, 1),
    ("layer2 3x3/2", 64, 128, 56, 3, 2, 1),
    ("layer2 3x3", 128, 128, 28, 3, 1, 1),
    ("layer2 1x1/2", 64, 128, 56, 1, 2, 0),
    ("layer3 3x3", 256, 256, 14, 3, 1, 1),
    ("layer4 3x3", 512, 512, 7, 3, 1, 1),
    ("r50 1x1 exp", 64, 256, 56, 1, 1, 0),
    ("vgg 3x3 3>64", 3, 64, 224, 3, 1, 1),
    ("vgg 3x3 64", 64, 64, 224, 3, 1, 1),
    ("vgg 3x3 64>128", 64, 128, 112, 3, 1, 1),
    ("vgg 3x3 128@112", 128, 128, 112, 3, 1, 1),
    ("vgg 3x3 256@56", 256, 256, 56, 3, 1, 1),
    ("vgg 3x3 512@28", 512, 512, 28, 3, 1, 1),
    ("vgg 3x3 512@14", 512, 512, 14, 3, 1, 1),
]
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
