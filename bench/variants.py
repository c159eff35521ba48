#!/usr/bin/env python3
"""Harder variants of caltech101-20, for measuring how often `graft auto` picks the best strategy
(issue 16). caltech101-20 itself is too easy to tell strategies apart (a frozen head reaches 99%),
so each variant takes something away that ImageNet features rely on:

  few15     every class, 15 training images per class (seeded): too few to fine-tune safely?
  lowres    every image shrunk to 32x32 pixels (graft scales it back up to 224): textures gone
  inverted  every image's colours inverted (255 - v): low-level statistics ImageNet never saw
  animals   the 7 animal classes, shrunk to 48x48 and grey: classes that look alike once texture
            and colour are gone, about 60 training images each (the issue's harder regime)

The held-out split is the source's test list, transformed like the training images. Layout: class
folders plus split.csv (graft's own format for caltech101-20). Deterministic: the same files give
the same variants.

  python3 bench/variants.py SRC OUT      (SRC: ../shared/data/caltech101-20)
"""
import csv
import random
import sys
from pathlib import Path

from PIL import Image, ImageOps

ANIMALS = ["butterfly", "hawksbill", "ibis", "kangaroo", "scorpion", "starfish", "trilobite"]


def shrink(size, grey=False):
    def f(im):
        im = im.convert("L").convert("RGB") if grey else im
        return im.resize((size, size), Image.BICUBIC)
    return f


VARIANTS = {
    "few15": dict(per_class=15, classes=None, transform=None),
    "lowres": dict(per_class=None, classes=None, transform=shrink(32)),
    "inverted": dict(per_class=None, classes=None, transform=ImageOps.invert),
    "animals": dict(per_class=None, classes=ANIMALS, transform=shrink(48, grey=True)),
}


def main(src, out):
    rows = list(csv.DictReader(open(src / "split.csv")))
    for name, v in VARIANTS.items():
        dst = out / name
        if (dst / "split.csv").is_file():
            print(f"{dst}: already made", file=sys.stderr)
            continue
        keep = [r for r in rows if v["classes"] is None or r["path"].split("/")[0] in v["classes"]]
        if v["per_class"] is not None:
            rng = random.Random(0)
            by_class = {}
            for r in keep:
                if r["split"] == "train":
                    by_class.setdefault(r["path"].split("/")[0], []).append(r["path"])
            chosen = {p for ps in by_class.values() for p in rng.sample(sorted(ps), v["per_class"])}
            keep = [r for r in keep if r["split"] == "test" or r["path"] in chosen]
        for r in keep:
            target = dst / r["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            im = Image.open(src / r["path"]).convert("RGB")
            if v["transform"] is not None:
                im = v["transform"](im)
            im.save(target, quality=95)
        tmp = dst / "split.csv.tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "split"])
            for r in keep:
                w.writerow([r["path"], r["split"]])
        tmp.rename(dst / "split.csv")
        n = sum(r["split"] == "train" for r in keep)
        print(f"{dst}: {n} training, {len(keep) - n} test images", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
