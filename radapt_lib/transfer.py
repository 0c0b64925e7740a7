"""HPT-GPD's phenomenon, proxy adversarial robustness: how well one vanilla CLIP classifies adversarial images made
on another. A transfer matrix over sources (the CLIP attacked, white-box) and targets (the CLIP then shown the
images), with two architectures and two training seeds of each, so that "another architecture" is told apart from
"other weights of the same architecture".

Every image is attacked on the source (an accuracy on transferred images needs the images the source already
gets wrong attacked too; PGD attacks them, pyautoattack's APGD passes them unchanged, as AutoAttack does). A target
counts an image right when it classifies it right both clean and attacked, as every robust accuracy in the book.
One cached record per (source, attack) holds every target's predictions, keyed by all the models' fingerprints.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from . import attacks, cache, config, evaluation, models, stats, training
from .data import ImageSet
from .stats import Estimate

# Two architectures x two training seeds, all pre-trained the same way (training.OTHER_CLIPS).
TRANSFER_CLIPS = ("mini-clip", "mini-clip-s1", "mini-clip-p8", "mini-clip-p8-s1")
TRANSFER_CODE = ("transfer", *evaluation.EVALUATION_CODE)
RELATIONS = ("white-box", "same architecture, other seed", "other architecture")


def architecture(name: str) -> str:
    if name != "mini-clip" and name not in training.OTHER_CLIPS:  # clip_config falls back to mini-clip's: not here
        raise ValueError(f"{name!r} is not a pre-trained mini CLIP; the transfer matrix compares {TRANSFER_CLIPS}")
    cfg = training.clip_config(name)
    return f"ViT patch {cfg.patch_size}, {cfg.width} x {cfg.layers}"


def relation(source: str, target: str) -> str:
    """White-box (the same model), the same architecture with other weights, or another architecture."""
    if source == target:
        return RELATIONS[0]
    return RELATIONS[1] if architecture(source) == architecture(target) else RELATIONS[2]


@dataclass
class TransferRecord:
    """One source attacked at one setting: per target, clean and attacked predictions of the same images."""

    source: str
    attack: str
    eps: float
    settings: dict
    labels: np.ndarray
    clean_pred: dict[str, np.ndarray]
    adv_pred: dict[str, np.ndarray]
    seconds: float

    def correct(self, target: str) -> np.ndarray:
        return (self.clean_pred[target] == self.labels) & (self.adv_pred[target] == self.labels)

    def accuracy(self, target: str) -> Estimate:
        return stats.accuracy(self.correct(target))

    def clean(self, target: str) -> Estimate:
        return stats.accuracy(self.clean_pred[target] == self.labels)


def classifiers(names: Sequence[str], classnames: Sequence[str]) -> dict[str, nn.Module]:
    """Each CLIP's own zero-shot classifier (its own text head) for the classes."""
    return {name: models.classifier(models.load_model(name), classnames) for name in names}


def transfer(targets: dict[str, nn.Module], source: str, images: ImageSet, attack: str, eps: float,
             n_iter: int | None = None, batch_size: int = 250, seed: int = 0) -> TransferRecord:
    """Attack `targets[source]` white-box on every image and read every target on the result (cached)."""
    eps = config.check_eps(eps)
    settings = {"attack": attack, "eps": round(eps, 8), **attacks.resolve_settings(attack, n_iter, None, None,
                                                                                   len(images.classnames)),
                "batch_size": batch_size, "seed": seed}
    spec = {"source": source, "models": {name: evaluation.fingerprint(m) for name, m in sorted(targets.items())},
            "images": evaluation.fingerprint(images.images), "labels": evaluation.fingerprint(images.labels),
            **settings, **cache.code_spec(*TRANSFER_CODE)}
    return cache.cached("transfer", spec, lambda: _run(targets, source, images, attack, eps, settings, batch_size, seed))


def _run(targets, source, images, attack, eps, settings, batch_size, seed) -> TransferRecord:
    start = time.perf_counter()
    model = targets[source].eval()
    clean = {t: [] for t in targets}
    adv = {t: [] for t in targets}
    for b, lo in enumerate(tqdm(range(0, len(images), batch_size), desc=f"{source}: {attack}", unit="batch", leave=False)):
        x = images.images[lo:lo + batch_size].float().div(255)
        y = images.labels[lo:lo + batch_size]
        x_adv = attacks.attack(model, x, y, attack, eps, n_iter=settings["n_iter"], seed=seed + b).x_adv
        attacks.check_perturbation(x, x_adv, eps)
        with torch.no_grad():
            for name, target in targets.items():
                clean[name].append(target(x).argmax(1))
                adv[name].append(target(x_adv).argmax(1))
    cat = lambda preds: {t: torch.cat(p).numpy() for t, p in preds.items()}  # noqa: E731
    return TransferRecord(source, attack, eps, settings, images.labels.numpy().copy(), cat(clean), cat(adv),
                          time.perf_counter() - start)


def matrix(targets: dict[str, nn.Module], images: ImageSet, attack_iters: dict[str, int], eps: float,
           seed: int = 0) -> dict[tuple[str, str], TransferRecord]:
    """Every source under every attack ({attack: iterations}): records by (attack, source)."""
    return {(attack, source): transfer(targets, source, images, attack, eps, n_iter=it, seed=seed)
            for attack, it in attack_iters.items() for source in targets}
