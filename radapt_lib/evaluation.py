"""Clean and adversarial accuracy of a classifier on an image set, cached by content.

The cache key holds a fingerprint of the classifier's weights and buffers (a defense's anchor
and filter included), of the images, and every attack setting: a changed model or a changed
attack never reuses a stale result, and one model/attack/eps is attacked once across pages.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from . import attacks, cache, config
from .data import ImageSet
from .stats import Estimate, accuracy
from .zeroshot import top_class_share


# The modules whose code decides an evaluation's result (the model's weights are fingerprinted apart).
EVALUATION_CODE = ("attacks", "evaluation", "zeroshot", "defense")


def fingerprint(obj: nn.Module | torch.Tensor) -> str:
    """sha256 of a module's state (names, shapes, bytes) or of a tensor, 16 hex digits."""
    h = hashlib.sha256()
    items = obj.state_dict().items() if isinstance(obj, nn.Module) else [("tensor", obj)]
    for name, tensor in items:
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@dataclass
class EvalResult:
    """Per-image outcomes of one (model, images, attack, eps) evaluation."""

    label: str
    attack: str
    eps: float
    labels: np.ndarray
    clean_pred: np.ndarray
    adv_pred: np.ndarray
    x_adv: torch.Tensor | None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.labels.size)

    def correct(self, which: str = "robust") -> np.ndarray:
        """Per-image booleans: right clean ("clean"), or right both clean and attacked ("robust")."""
        ok = self.clean_pred == self.labels
        if which == "clean":
            return ok
        if which != "robust":
            raise ValueError(f"which={which!r}: use 'clean' or 'robust'")
        return ok & (self.adv_pred == self.labels)

    def clean(self) -> Estimate:
        return accuracy(self.correct("clean"))

    def robust(self) -> Estimate:
        """A point counts as robust only if it is classified right both clean and attacked."""
        return accuracy(self.correct("robust"))

    def clean_top_share(self) -> float:
        return top_class_share(self.clean_pred)

    def adv_top_share(self) -> float:
        return top_class_share(self.adv_pred)


def evaluate(model: nn.Module, images: ImageSet, attack: str = "pgd", eps: float = 4 / 255, *, label: str = "",
             n_iter: int | None = None, n_restarts: int | None = None, n_queries: int | None = None,
             batch_size: int = 100, seed: int = 0, keep_adv: bool = False, refresh: bool = False,
             code: tuple[str, ...] = ()) -> EvalResult:
    """Clean predictions and predictions under `attack` at `eps`, cached by content.

    Settings left None take the attack's defaults (standard AutoAttack for "autoattack"); the
    resolved values are in the cache key and in the result's `settings`. `code`: further radapt_lib
    modules whose source decides the model's forward pass (e.g. a wrapper defined there), for the key.
    """
    eps = config.check_eps(eps)
    resolved = attacks.resolve_settings(attack, n_iter, n_restarts, n_queries, len(images.classnames))
    n_iter, n_restarts, n_queries = resolved["n_iter"], resolved["n_restarts"], resolved["n_queries"]
    settings = {"attack": attack, "eps": round(eps, 8), **resolved, "batch_size": batch_size, "seed": seed}
    spec = {"model": fingerprint(model), "images": fingerprint(images.images), "labels": fingerprint(images.labels),
            "keep_adv": keep_adv, **settings, **cache.code_spec(*EVALUATION_CODE, *code)}

    def compute() -> EvalResult:
        return _run(model, images, attack, eps, label, settings, n_iter, n_restarts, n_queries, batch_size, seed, keep_adv)

    result = cache.cached("evaluations", spec, compute, refresh=refresh)
    result.label = label or result.label
    return result


def _run(model, images, attack, eps, label, settings, n_iter, n_restarts, n_queries, batch_size, seed, keep_adv):
    device = next(model.parameters()).device
    model.eval()
    clean, adv, advs, warnings = [], [], [], []
    start = time.perf_counter()
    for b, lo in enumerate(tqdm(range(0, len(images), batch_size), desc=f"{label or 'model'}: {attack} eps={eps * 255:.1f}/255",
                                unit="batch", leave=False)):
        x = images.images[lo:lo + batch_size].float().div(255).to(device)
        y = images.labels[lo:lo + batch_size].to(device)
        with torch.no_grad():
            pred = model(x).argmax(1)
        clean.append(pred.cpu())
        # As AutoAttack does: a point misclassified clean is not robust whatever the attack does, so only the
        # others are attacked (the rest keep x_adv = x); robust accuracy is unchanged, the cost falls.
        hit = (pred == y).nonzero().squeeze(1)
        x_adv = x.clone()
        if hit.numel():
            result = attacks.attack(model, x[hit], y[hit], attack, eps, n_iter=n_iter, n_restarts=n_restarts,
                                    n_queries=n_queries, seed=seed + b)
            warnings.extend(m for m in result.warnings if m not in warnings)
            x_adv[hit] = result.x_adv
        attacks.check_perturbation(x, x_adv, eps)
        with torch.no_grad():
            adv.append(model(x_adv).argmax(1).cpu())
        if keep_adv:
            advs.append(x_adv.cpu())
    return EvalResult(label, attack, eps, images.labels.numpy().copy(), torch.cat(clean).numpy(), torch.cat(adv).numpy(),
                      torch.cat(advs) if keep_adv else None, warnings, time.perf_counter() - start, settings)
