#!/usr/bin/env python3
"""The benchmark's input: N real ImageNet-sample images, preprocessed once as torchvision's
Resize(256), CenterCrop(224), ToTensor(), Normalize(ImageNet mean/std) does it on PIL images
(PIL bilinear resize of the short side, then the centre crop), saved as safetensors for both
sides to read. Needs only numpy and pillow.

python3 bench/make_input.py OUT.safetensors [N]
"""
import csv
import json
import os
import struct
import sys

import numpy as np

from preprocess import preprocess

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "imagenet-sample")
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def save(path, name, x):
    data = np.ascontiguousarray(x, dtype="<f4").tobytes()
    header = json.dumps({name: {"dtype": "F32", "shape": list(x.shape), "data_offsets": [0, len(data)]}})
    header += " " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header.encode() + data)


out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 32
rows = list(csv.reader(open(os.path.join(SHARED, "labels.csv"))))[1:]
save(out, "input", np.stack([preprocess(os.path.join(SHARED, p), 256, 224, MEAN, STD) for p, _ in rows[:n]]))
