"""Tiny synthetic datasets in the on-disk layouts that torchvision's loaders read (for the paper profile's tests).

Random pixels, the real folder and file names: `paper_dataset` reads them through torchvision, unchanged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGENET_CLASSES = 1000


def _jpeg(path: Path, rng: np.random.Generator, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, quality=90)


def imagenet(root: Path, per_class: int = 1, classes: int = IMAGENET_CLASSES, splits=("val",)) -> Path:
    """torchvision.datasets.ImageNet after it has unpacked the archives: meta.bin and <split>/<wnid>/*.JPEG."""
    rng = np.random.default_rng(0)
    wnids = [f"n{i:08d}" for i in range(classes)]
    root.mkdir(parents=True, exist_ok=True)
    torch.save(({w: (f"class {i}",) for i, w in enumerate(wnids)}, wnids), root / "meta.bin")
    for split in splits:
        for w in wnids:
            for k in range(per_class):
                _jpeg(root / split / w / f"ILSVRC2012_{split}_{w}_{k}.JPEG", rng)
    return root


def eurosat(root: Path, per_class: int = 4, classes=("AnnualCrop", "Forest", "River")) -> Path:
    """torchvision.datasets.EuroSAT: eurosat/2750/<class>/<class>_<k>.jpg (one pool of images, no splits)."""
    rng = np.random.default_rng(1)
    for c in classes:
        for k in range(per_class):
            _jpeg(root / "eurosat" / "2750" / c / f"{c}_{k}.jpg", rng, size=64)
    return root


def caltech256(root: Path, per_class: int = 3, classes=("001.ak47", "002.american-flag", "003.backpack")) -> Path:
    """torchvision.datasets.Caltech256: caltech256/256_ObjectCategories/<NNN.name>/<NNN>_<kkkk>.jpg (one pool)."""
    rng = np.random.default_rng(2)
    for c in classes:
        for k in range(1, per_class + 1):
            _jpeg(root / "caltech256" / "256_ObjectCategories" / c / f"{c[:3]}_{k:04d}.jpg", rng, size=48)
    return root


def dtd(root: Path, per_class: int = 2, classes=("banded", "blotchy", "braided")) -> Path:
    """torchvision.datasets.DTD: dtd/dtd/images/<class>/*.jpg and dtd/dtd/labels/{train,val,test}1.txt."""
    rng = np.random.default_rng(3)
    base = root / "dtd" / "dtd"
    lines = {"train": [], "val": [], "test": []}
    for c in classes:
        for split in lines:
            for k in range(per_class):
                name = f"{c}_{split}_{k:04d}.jpg"
                _jpeg(base / "images" / c / name, rng, size=48)
                lines[split].append(f"{c}/{name}")
    (base / "labels").mkdir(parents=True, exist_ok=True)
    for split, rows in lines.items():
        (base / "labels" / f"{split}1.txt").write_text("\n".join(rows) + "\n")
    return root
