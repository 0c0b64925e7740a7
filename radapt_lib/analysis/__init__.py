"""Section 3 of the paper: where robustness lives inside an adversarially fine-tuned CLIP tower.

One concept per module, each working on any open_clip VisionTransformer (the mini ViT, ViT-B/32,
ViT-L/14), taking towers or classifiers as arguments:

* `cka`          layer-wise linear CKA (Eq. 3, Fig. 2a)
* `replacement`  progressive module replacement (Fig. 2b, 4, 8, 9, 12)
* `spectral`     spectral shift map of the patch embedding (Eq. 4, Fig. 3a)
* `attention`    first-block [CLS] attention and input-insensitivity (Fig. 3b, 10, 13, 14)
* `shapley`      Shapley values of first-block heads (Fig. 11)

The two helpers below resolve a page's `profile` into images and classifiers, so that the same
notebook runs on the mini zoo and on the paper's checkpoints.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .. import config, data, models
from ..zeroshot import ZeroShotClassifier

PAPER_IMAGE_SIZE = 224


def load_images(profile: str, name: str, n: int | None, seed: int = 0, split: str = "test") -> data.ImageSet:
    """n seeded images of a dataset as a uint8 ImageSet: a mini split, or a paper dataset at 224 px."""
    if config.check_profile(profile) == "mini":
        return data.mini_dataset(name, split, n=n, seed=seed)
    from torchvision import transforms

    tf = transforms.Compose([transforms.Resize(PAPER_IMAGE_SIZE, interpolation=transforms.InterpolationMode.BICUBIC),
                             transforms.CenterCrop(PAPER_IMAGE_SIZE), transforms.PILToTensor()])
    ds = data.paper_dataset(name, transform=tf)
    idx = data.seeded_subset(len(ds), n, seed)
    pairs = [ds[int(i)] for i in idx]
    images = torch.stack([img.expand(3, -1, -1) if img.shape[0] == 1 else img for img, _ in pairs])
    labels = torch.tensor([int(lbl) for _, lbl in pairs], dtype=torch.long)
    return data.ImageSet(images, labels, tuple(data.paper_classnames(ds)), f"torchvision:{name}")


def load_classifiers(profile: str, methods: Sequence[str], classnames: Sequence[str]) -> dict[str, ZeroShotClassifier]:
    """Zero-shot classifiers by the paper's method names ("CLIP", "FARE", ...) for one class list.

    Every classifier uses the standard CLIP's text head: the fine-tunes change the vision tower only.
    """
    names = models.PROFILE_MODELS[config.check_profile(profile)]
    unknown = [m for m in methods if m not in names]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: use some of {sorted(names)}")
    base = models.load_model(names["CLIP"])
    out = {}
    for method in methods:
        visual = None if method == "CLIP" else models.load_model(names[method]).clip.visual
        out[method] = models.classifier(base, classnames, visual=visual)
    return out
