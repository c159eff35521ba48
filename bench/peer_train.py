#!/usr/bin/env python3
"""PyTorch's side of bench/train.sh: one training step (forward, cross-entropy, backward, SGD
momentum 0.9) on the same batch of 16, eager mode.

python3 bench/peer_train.py MODEL full|partial:N INPUT.safetensors ITERS [WEIGHTS]
partial:N: the top N block groups (graft's groups: resnet18 stem, layer1..4; efficientnet_lite0
stem, stage1..7, top) and the classifier train; the rest has requires_grad=False and runs in
eval mode (BatchNorm on running statistics), as frozen layers do in a PyTorch fine-tuning loop.
Prints one JSON line.
"""
import json
import os
import sys
import time

import torch
import torch.nn as nn

from peer_inference import build, peak_rss_mib

LITE0_STAGE_BLOCKS = [1, 2, 2, 3, 3, 4, 1]


def groups(name, m):
    """The model's block groups in forward order, as lists of modules (graft's group names)."""
    if name == "resnet18":
        return [[m.conv1, m.bn1], [m.layer1], [m.layer2], [m.layer3], [m.layer4]]
    if name == "efficientnet_lite0":
        out, i = [[m._conv_stem, m._bn0]], 0
        for n in LITE0_STAGE_BLOCKS:
            out.append(list(m._blocks[i:i + n]))
            i += n
        out.append([m._conv_head, m._bn1])
        return out
    raise SystemExit(f"no groups for {name}")


def main():
    name, mode, path, iters = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    weights = sys.argv[5] if len(sys.argv) > 5 else None
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    from safetensors.torch import load_file
    model = build(name, weights).train()
    frozen = []
    if mode != "full":
        top = int(mode.split(":")[1])
        gs = groups(name, model)
        frozen = [mod for g in gs[:len(gs) - top] for mod in g]
        for mod in frozen:
            mod.requires_grad_(False)
            mod.eval()
    x = load_file(path)["input"][:16].contiguous()
    y = torch.tensor([(i * 37) % 1000 for i in range(16)])
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(iters):
        step()
    secs = time.perf_counter() - start
    print(json.dumps({"impl": "pytorch", "model": name, "mode": mode, "batch": 16,
                      "images_per_second": round(16 * iters / secs, 3),
                      "peak_rss_mib": round(peak_rss_mib(), 1)}))


if __name__ == "__main__":
    main()
