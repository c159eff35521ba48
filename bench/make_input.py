#!/usr/bin/env python3
"""The benchmark's input: N real ImageNet-sample images, preprocessed once with torchvision
(Resize(256), CenterCrop(224), ImageNet mean/std), saved for both sides to read.

python3 bench/make_input.py OUT.safetensors [N]
"""
import csv
import os
import sys

import torch
from PIL import Image
from safetensors.torch import save_file
from torchvision import transforms

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "imagenet-sample")
out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 32
rows = list(csv.reader(open(os.path.join(SHARED, "labels.csv"))))[1:]
t = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
x = torch.stack([t(Image.open(os.path.join(SHARED, p)).convert("RGB")) for p, _ in rows[:n]])
save_file({"input": x.contiguous()}, out)
