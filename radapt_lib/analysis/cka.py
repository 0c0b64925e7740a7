"""Layer-wise linear CKA between two vision towers (the paper's Eq. 3, Fig. 2a).

Why: CKA compares what two layers compute without caring about rotations or overall scale of
their features, so it can tell whether a robust model's first block still does what the standard
model's first block does, or whether that work moved to later blocks.

Representation of a layer: the *flattened* token matrix of each image (all T tokens x width D,
[CLS] included), i.e. X is n x (T*D). Linear CKA then equals the average token-wise alignment
of the Gram matrices, K = X X^T = sum_t X_t X_t^T, and keeps the spatial layout that a
mean-pooled or [CLS]-only representation would throw away. Layers are "Emb" (the embedding
output: conv1 + [CLS] + positional embeddings + ln_pre, i.e. the input of block 1) and
"B1".."BL" (the outputs of the residual blocks `transformer.resblocks[i]`, taken by forward hooks).

Gram matrices are accumulated layer by layer in as many passes over the images as a memory budget
needs, so the same code runs on the mini ViT (one pass) and on ViT-L/14 (several passes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .. import cache, evaluation, stats
from ..stats import Estimate

# The modules whose code decides a comparison (its cache key): this one, the CIs, the classifier's tower input.
CKA_CODE = ("analysis.cka", "stats", "zeroshot")


def layer_names(tower: nn.Module) -> list[str]:
    """["Emb", "B1", ..., "BL"] for an open_clip VisionTransformer."""
    return ["Emb"] + [f"B{i + 1}" for i in range(len(tower.transformer.resblocks))]


def _hook_points(tower: nn.Module) -> list[tuple[nn.Module, bool]]:
    """(module, take_input) per layer: block 1's input is the embedding output."""
    blocks = list(tower.transformer.resblocks)
    return [(blocks[0], True)] + [(b, False) for b in blocks]


@torch.no_grad()
def gram_matrices(tower: nn.Module, images: torch.Tensor, batch_size: int = 100,
                  max_bytes: int = 2 * 1024**3, desc: str = "features") -> np.ndarray:
    """Per-layer Gram matrices (layers x n x n, float64) of flattened token features.

    `images` are already normalised model inputs (n x 3 x H x W). Features of as many layers as
    fit in `max_bytes` are held at once; each further group of layers costs another pass.
    """
    tower.eval()
    device = next(tower.parameters()).device
    points = _hook_points(tower)
    n = images.shape[0]
    probe = tower.transformer.resblocks[0]
    numels: list[int] = []
    handle = probe.register_forward_hook(lambda m, a, o: numels.append((o[0] if isinstance(o, tuple) else o).numel()))
    tower(images[:1].to(device))
    handle.remove()
    per_layer = n * numels[0] * 4
    batch_first = getattr(tower.transformer, "batch_first", True)
    group = max(1, int(max_bytes // max(per_layer, 1)))
    grams = np.zeros((len(points), n, n), dtype=np.float64)
    for first in range(0, len(points), group):
        chosen = list(range(first, min(first + group, len(points))))
        feats: dict[int, list[torch.Tensor]] = {i: [] for i in chosen}
        handles = []
        for i in chosen:
            module, take_input = points[i]

            def hook(m, args, out, i=i, take_input=take_input):
                t = args[0] if take_input else (out[0] if isinstance(out, tuple) else out)
                t = t if batch_first else t.transpose(0, 1)
                feats[i].append(t.detach().float().reshape(t.shape[0], -1).cpu())
            handles.append(module.register_forward_hook(hook))
        try:
            for lo in tqdm(range(0, n, batch_size), desc=desc, unit="batch", leave=False):
                tower(images[lo:lo + batch_size].to(device))
        finally:
            for h in handles:
                h.remove()
        for i in chosen:
            x = torch.cat(feats.pop(i)).double()
            grams[i] = (x @ x.T).numpy()
    return grams


def center(gram: np.ndarray) -> np.ndarray:
    """H K H with H = I - 11^T/n (works on a stack of Gram matrices too)."""
    g = gram - gram.mean(axis=-1, keepdims=True)
    return g - g.mean(axis=-2, keepdims=True)


def cka_from_grams(k: np.ndarray, l: np.ndarray) -> float:
    """Eq. 3: tr(KHLH) / sqrt(tr(KHKH) tr(LHLH)) for two n x n Gram matrices."""
    kc, lc = center(np.asarray(k, dtype=np.float64)), center(np.asarray(l, dtype=np.float64))
    denom = np.sqrt((kc * kc).sum() * (lc * lc).sum())
    return float((kc * lc).sum() / denom) if denom > 0 else 0.0


def linear_cka(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Linear CKA of two feature matrices (n x d1, n x d2) through their Gram matrices."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    return cka_from_grams(x @ x.T, y @ y.T)


def cka_matrix(grams_a: np.ndarray, grams_b: np.ndarray) -> np.ndarray:
    """CKA between every layer of tower A (rows) and every layer of tower B (columns)."""
    ca, cb = center(grams_a), center(grams_b)
    na = np.sqrt((ca * ca).sum(axis=(1, 2)))
    nb = np.sqrt((cb * cb).sum(axis=(1, 2)))
    cross = np.einsum("aij,bij->ab", ca, cb)
    return cross / np.outer(na, nb)


def bootstrap_cka(grams_a: np.ndarray, grams_b: np.ndarray, n_boot: int = 200,
                  seed: int = 0) -> np.ndarray:
    """CKA matrices on `n_boot` resamples of the images (n_boot x La x Lb), for intervals."""
    n = grams_a.shape[-1]
    out = np.empty((n_boot, grams_a.shape[0], grams_b.shape[0]))
    for b, idx in enumerate(stats.resamples(n, n_boot, seed)):
        sub = np.ix_(idx, idx)
        out[b] = cka_matrix(grams_a[:, sub[0], sub[1]], grams_b[:, sub[0], sub[1]])
    return out


def estimate(point: float, boots: Sequence[float], level: float = 0.95, n: int = 0) -> Estimate:
    """A point value with the percentile interval of its bootstrap replicates."""
    return stats.percentile_interval(point, boots, level, n)


def diagonal_shift(matrix: np.ndarray) -> list[int]:
    """For each robust layer (column), the index of the standard layer (row) it matches best."""
    return [int(i) for i in np.argmax(matrix, axis=0)]


def first_block_summary(matrix: np.ndarray, b1_boots: np.ndarray, names: Sequence[str]) -> dict:
    """The two Fig. 2a readings for one standard-vs-robust CKA matrix (rows standard, columns robust).

    gap:   the robust first block's best match with any standard layer (`b1_best`, with interval),
           against the weakest best match among the other robust blocks (`others_min`); the gap is
           present when B1 is the least-matched robust block.
    shift: the robust layer that the standard first block matches best (`clip_b1_match`); the
           diagonal is shifted when that layer is deeper than B1.
    `b1_boots` (n_boot x standard layers) holds bootstrap CKAs of the robust B1 column only, e.g.
    `bootstrap_cka(grams_standard, grams_robust[1:2])[:, :, 0]` (a ninth of the full bootstrap's cost).
    """
    n = matrix.shape[0]
    best = matrix.max(axis=0)  # per robust layer: best match among standard layers
    b1_best = estimate(best[1], b1_boots.max(axis=1))
    b1_diag = estimate(matrix[1, 1], b1_boots[:, 1])
    others = best[2:]
    match = int(np.argmax(matrix[1, :]))
    return {"b1_best": b1_best, "b1_diag": b1_diag, "others_min": float(others.min()) if others.size else float("nan"),
            "gap": bool(others.size and best[1] < others.min()), "clip_b1_match": names[match],
            "shift": match > 1, "n_layers": n}


@dataclass
class Comparison:
    """Every robust tower against the standard one: CKA matrices (rows standard), B1 bootstraps, Fig. 2a readings."""

    names: list[str]
    matrices: dict[str, np.ndarray]
    b1_boots: dict[str, np.ndarray]  # n_boot x standard layers, per robust model
    summary: dict[str, dict]


def compare_with_standard(classifiers: dict, x: torch.Tensor, standard: str = "CLIP", n_boot: int = 200,
                          seed: int = 0) -> Comparison:
    """`first_block_summary` of each classifier's tower against `standard`'s on the same images (normalised by
    each classifier's own `tower_input`). Cached by content (kind `analyses`, released with the attacks): the
    Gram matrices and bootstraps cost ~45 s at mini size, the result a few KB."""
    spec = {"what": "CKA vs standard", "standard": standard, "n_boot": n_boot, "seed": seed,
            "models": {m: evaluation.fingerprint(c) for m, c in classifiers.items()}, "images": evaluation.fingerprint(x),
            **cache.code_spec(*CKA_CODE)}
    return cache.cached("analyses", spec, lambda: _compare(classifiers, x, standard, n_boot, seed))


def _compare(classifiers: dict, x: torch.Tensor, standard: str, n_boot: int, seed: int) -> Comparison:
    grams = {m: gram_matrices(c.visual, c.tower_input(x), desc=f"{m} features") for m, c in classifiers.items()}
    names = layer_names(classifiers[standard].visual)
    robust = [m for m in classifiers if m != standard]
    matrices = {m: cka_matrix(grams[standard], grams[m]) for m in robust}
    boots = {m: bootstrap_cka(grams[standard], grams[m][1:2], n_boot=n_boot, seed=seed)[:, :, 0] for m in robust}
    return Comparison(names, matrices, boots, {m: first_block_summary(matrices[m], boots[m], names) for m in robust})
