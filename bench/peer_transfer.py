#!/usr/bin/env python3
"""PyTorch peers for bench/transfer.sh, on ../shared/data/hymenoptera with the real
EfficientNet-Lite0 checkpoint, 2 threads.

  tutorial       the PyTorch transfer-learning tutorial's fixed-feature-extractor recipe: the
                 frozen backbone runs on every batch of every epoch; 25 epochs, batch 4, SGD
                 lr 0.001 momentum 0.9, StepLR(7, 0.1), RandomResizedCrop+flip for training.
  partial_epoch  one epoch of partial:2 (stage7 and the 1x1 head conv trained with a new
                 classifier, the rest frozen under no_grad), batch 16, AdamW; then validation.

Prints one JSON line: seconds, best/last validation accuracy.
"""
import copy
import json
import os
import sys
import time

import torch
import torch.nn as nn
from torchvision import datasets, transforms

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
from make_fixtures import LITE0, EffLite  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
DATA = os.path.join(ROOT, "data", "hymenoptera")
WEIGHTS = os.path.join(ROOT, "weights", "efficientnet-lite0-57934424.pth")
NORM = transforms.Normalize([127 / 255] * 3, [128 / 255] * 3)  # (x - 127) / 128


def model():
    m = EffLite(32, 1280, LITE0, 1000)
    m.load_state_dict(torch.load(WEIGHTS, map_location="cpu"))
    m._fc = nn.Linear(1280, 2)
    return m


def loaders(batch, train_tf):
    val_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), NORM])
    sets = {"train": datasets.ImageFolder(os.path.join(DATA, "train"), train_tf),
            "val": datasets.ImageFolder(os.path.join(DATA, "val"), val_tf)}
    return {k: torch.utils.data.DataLoader(v, batch_size=batch, shuffle=(k == "train"), num_workers=2)
            for k, v in sets.items()}


def accuracy(m, loader):
    m.eval()
    correct = n = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (m(x).argmax(1) == y).sum().item()
            n += len(y)
    return correct / n


def tutorial(epochs=25):
    train_tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), NORM])
    dl = loaders(4, train_tf)
    m = model()
    for p in m.parameters():
        p.requires_grad = False
    for p in m._fc.parameters():
        p.requires_grad = True
    opt = torch.optim.SGD(m._fc.parameters(), lr=0.001, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.1)
    loss_fn = nn.CrossEntropyLoss()
    best = 0.0
    start = time.perf_counter()
    for _ in range(epochs):
        m.train()
        for x, y in dl["train"]:
            opt.zero_grad()
            loss_fn(m(x), y).backward()
            opt.step()
        sched.step()
        best = max(best, accuracy(m, dl["val"]))
    return {"seconds": time.perf_counter() - start, "best_val_accuracy": best, "epochs": epochs}


def partial_epoch():
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), NORM])
    dl = loaders(16, tf)
    m = model()
    trained = [m._blocks[15], m._conv_head, m._bn1, m._fc]  # stage7 = block 15, then the top
    for p in m.parameters():
        p.requires_grad = False
    params = [p for mod in trained for p in mod.parameters()]
    for p in params:
        p.requires_grad = True
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    m.eval()
    for mod in trained:
        mod.train()
    for x, y in dl["train"]:
        with torch.no_grad():
            x = nn.functional.relu6(m._bn0(m._conv_stem(x)))
            for b in m._blocks[:15]:
                x = b(x)
        x = m._blocks[15](x)
        x = nn.functional.relu6(m._bn1(m._conv_head(x)))
        loss = loss_fn(m._fc(x.mean((2, 3))), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = accuracy(m, dl["val"])
    return {"seconds": time.perf_counter() - start, "val_accuracy": acc}


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    torch.manual_seed(0)
    mode = sys.argv[1]
    result = tutorial(int(sys.argv[2]) if len(sys.argv) > 2 else 25) if mode == "tutorial" else partial_epoch()
    result.update({"impl": "pytorch", "mode": mode, "peak_rss_mib": round(
        next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024, 1)})
    print(json.dumps(result))
