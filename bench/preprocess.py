"""torchvision's Resize(resize) + CenterCrop(crop) + ToTensor() + Normalize(mean, std) on a PIL
image, in numpy: what graft's preprocessing reproduces. Shared by the bench scripts."""
import numpy as np
from PIL import Image


def preprocess(img, resize, crop, mean, std):
    """`img` (a PIL image, or a path or file object) to a `[3, crop, crop]` float32 array."""
    if not isinstance(img, Image.Image):
        img = Image.open(img)
    img = img.convert("RGB")
    w, h = img.size
    # Resize(int): the short side to `resize`, the long side truncated, as torchvision does.
    size = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    left, top = int(round((w - crop) / 2.0)), int(round((h - crop) / 2.0))
    x = np.asarray(img.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255.0
    return ((x - np.array(mean, np.float32)) / np.array(std, np.float32)).transpose(2, 0, 1)
