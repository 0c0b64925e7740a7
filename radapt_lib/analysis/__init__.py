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

import functools
from typing import Sequence

from torch import nn

from .. import config, data, models
from ..zeroshot import ZeroShotClassifier



load_images = data.load_images  # one loader for both profiles, in data.py


def load_classifiers(profile: str, methods: Sequence[str], classnames: Sequence[str]) -> dict[str, ZeroShotClassifier]:
    """Zero-shot classifiers by the paper's method names ("CLIP", "FARE", ...) for one class list.

    Every classifier uses the standard CLIP's text head: the fine-tunes change the vision tower only.
    """
    names = models.PROFILE_MODELS[config.check_profile(profile)]
    unknown = [m for m in methods if m not in names]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: use some of {sorted(names)}")
    base = _loaded(names["CLIP"])
    out = {}
    for method in methods:
        visual = None if method == "CLIP" else _loaded(names[method]).clip.visual
        out[method] = models.classifier(base, classnames, visual=visual)
    return out


def load_towers(profile: str, methods: Sequence[str]) -> dict[str, nn.Module]:
    """The vision towers of the named methods (for analyses that read weights only)."""
    names = models.PROFILE_MODELS[config.check_profile(profile)]
    return {m: _loaded(names[m]).clip.visual.eval() for m in methods}


def load_controls(profile: str) -> dict[str, nn.Module]:
    """The profile's control towers (mini: a clean fine-tune of CLIP on the same steps); empty if it has none."""
    return {m: _loaded(name).clip.visual.eval() for m, name in models.PROFILE_CONTROLS[config.check_profile(profile)].items()}


@functools.cache
def _loaded(name: str) -> models.LoadedModel:
    """Each registry model is loaded once per session (pages build classifiers for several datasets)."""
    return models.load_model(name)
