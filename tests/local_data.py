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
