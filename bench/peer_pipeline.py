#!/usr/bin/env python3
"""PyTorch's side of bench/pipeline.sh: torchvision's PIL-based Resize(256) + CenterCrop(224) +
ToTensor + Normalize over every image under DIR, through a DataLoader with WORKERS worker
processes and batches of 32 (what a PyTorch transfer-learning script does). Peak RSS is the
main process's plus its workers'. Prints one JSON line.

python3 bench/peer_pipeline.py DIR NAME WORKERS
"""
import json
import os
import sys
import time

import torch
from PIL import Image
from torchvision import transforms

EXT = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")


def rss_hwm_kib(pid="self"):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Files(torch.utils.data.Dataset):
    def __init__(self, paths, tf):
        self.paths, self.tf = paths, tf

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with open(self.paths[i], "rb") as f:
            img = Image.open(f).convert("RGB")
        # Workers report their own peak memory with the sample.
        return self.tf(img), rss_hwm_kib()


def main():
    root, name, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.lower().endswith(EXT))
    tf = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    loader = torch.utils.data.DataLoader(Files(paths, tf), batch_size=32, num_workers=workers)
    start = time.perf_counter()
    n, worker_peak, checksum = 0, 0, 0.0
    for x, rss in loader:
        n += x.shape[0]
        worker_peak = max(worker_peak, int(rss.max()))
        checksum += float(x[:, 0, 0, 0].sum())
    secs = time.perf_counter() - start
    peak = (rss_hwm_kib() + workers * worker_peak) / 1024
    print(json.dumps({"impl": "pytorch", "data": name, "images": n, "images_per_second": round(n / secs, 2),
                      "peak_rss_mib": round(peak, 1), "checksum": round(checksum, 3)}))


if __name__ == "__main__":
    main()
