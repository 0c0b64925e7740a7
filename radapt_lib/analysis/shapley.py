"""Shapley values of first-block attention heads for robust accuracy (the paper's Fig. 11).

Why: if the robust first block works by anchoring on stable, non-semantic regions, the heads that
do so should carry most of the robust accuracy. The Shapley value of head h is its average marginal
contribution to robust accuracy over all coalitions of the other heads.

Protocol choices (stated on the page):
* Value v(S), two readings. *Re-attacked* (`head_shapley_reattacked`, the one verdicts use): robust
  accuracy (%) of the model with only the heads in S kept, attacked end-to-end as that pruned model,
  so v(S) is the pruned model's own robustness. *Fixed examples* (`head_shapley`): accuracy on
  adversarial examples generated once against the full model; cheaper, but it forces the full
  coalition to score worst (the examples were made for it), so it ranks heads by how much the
  attack exploits them rather than by the robustness they add.
* A removed head is *zeroed*: its per-head context vector is set to 0 before the output projection
  (the projection bias stays), so v(empty) is the model with that block's attention reduced to its
  bias. Mode "standard" instead substitutes the standard model's head (same input, standard
  weights), asking what each robust head adds over its standard counterpart.
* Exact Shapley over all 2^H coalitions when H <= 10 (the mini model has 4 heads); otherwise
  Monte-Carlo permutation sampling, with the standard error over permutations.
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .. import stats
from ..stats import Estimate

MAX_EXACT_HEADS = 10


class HeadMaskedAttention(nn.Module):
    """nn.MultiheadAttention (self-attention, batch first) with a 0/1 keep-mask over heads.

    A drop-in for a ResidualAttentionBlock's `attn`: it returns (output, None) like
    MultiheadAttention with need_weights=False. Removed heads are zeroed or, if `substitute`
    (another MultiheadAttention of the same shape) is given, replaced by that module's head.
    """

    def __init__(self, attn: nn.MultiheadAttention, substitute: nn.MultiheadAttention | None = None):
        super().__init__()
        if not getattr(attn, "batch_first", False):
            raise ValueError("HeadMaskedAttention expects batch_first attention, as open_clip's ViT uses")
        self.attn = attn
        self.substitute = substitute
        self.num_heads = attn.num_heads
        self.register_buffer("keep", torch.ones(attn.num_heads))

    @staticmethod
    def head_contexts(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
        """Per-head attention contexts (B x H x T x d_head) of self-attention on x."""
        b, t, d = x.shape
        h = attn.num_heads
        q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (z.reshape(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // h), dim=-1)
        return weights @ v

    def forward(self, query, key=None, value=None, need_weights=False, attn_mask=None, **kwargs):
        if attn_mask is not None:
            raise NotImplementedError("HeadMaskedAttention supports unmasked self-attention only (vision towers)")
        ctx = self.head_contexts(self.attn, query)
        keep = self.keep.view(1, -1, 1, 1).to(ctx.dtype)
        if self.substitute is not None:
            ctx = keep * ctx + (1 - keep) * self.head_contexts(self.substitute, query)
        else:
            ctx = keep * ctx
        b, h, t, dh = ctx.shape
        out = F.linear(ctx.transpose(1, 2).reshape(b, t, h * dh), self.attn.out_proj.weight, self.attn.out_proj.bias)
        return out, None


def masked_model(model: nn.Module, block: int = 0, standard_visual: nn.Module | None = None) -> nn.Module:
    """A copy of a ZeroShotClassifier whose block `block` attention takes a head mask (`.keep`)."""
    masked = copy.deepcopy(model).eval()
    blk = masked.visual.transformer.resblocks[block]
    substitute = None
    if standard_visual is not None:
        substitute = copy.deepcopy(standard_visual.transformer.resblocks[block].attn)
    blk.attn = HeadMaskedAttention(blk.attn, substitute)
    return masked


@torch.no_grad()
def correct_under_mask(masked: nn.Module, x: torch.Tensor, y: torch.Tensor, keep: torch.Tensor,
                       block: int = 0, batch_size: int = 250) -> np.ndarray:
    """Per-image correctness (bool, n) of the masked classifier with heads `keep` (0/1, H)."""
    masked.visual.transformer.resblocks[block].attn.keep.copy_(keep)
    device = next(masked.parameters()).device
    out = []
    for lo in range(0, x.shape[0], batch_size):
        out.append(masked(x[lo:lo + batch_size].to(device)).argmax(1).cpu())
    return (torch.cat(out) == y.cpu()).numpy()


@dataclass
class ShapleyResult:
    """Shapley values (points of accuracy %) per head and how they were obtained."""

    values: np.ndarray  # H
    per_image: np.ndarray | None  # H x n (exact method): values are their means over images
    se: np.ndarray | None  # H (sampling method): standard error over permutations
    v_all: float
    v_none: float
    method: str
    mode: str
    n_evaluations: int


def exact_shapley(value_per_image: dict[tuple[int, ...], np.ndarray], n_heads: int) -> np.ndarray:
    """Exact Shapley values (H x n) from per-image values of every coalition (tuples of kept heads)."""
    phi = np.zeros((n_heads, len(next(iter(value_per_image.values())))))
    for h in range(n_heads):
        others = [i for i in range(n_heads) if i != h]
        for size in range(n_heads):
            weight = math.factorial(size) * math.factorial(n_heads - size - 1) / math.factorial(n_heads)
            for coalition in itertools.combinations(others, size):
                with_h = tuple(sorted(coalition + (h,)))
                phi[h] += weight * (value_per_image[with_h] - value_per_image[coalition])
    return phi


def _keep(coalition: tuple[int, ...], n_heads: int) -> torch.Tensor:
    keep = torch.zeros(n_heads)
    keep[list(coalition)] = 1.0
    return keep


def head_shapley(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, block: int = 0, *,
                 standard_visual: nn.Module | None = None, n_permutations: int = 50, seed: int = 0,
                 max_exact_heads: int = MAX_EXACT_HEADS) -> ShapleyResult:
    """Shapley value of each head of block `block` for accuracy (%) on fixed inputs `x_adv`.

    Heads are removed by zeroing (default) or, with `standard_visual`, by substituting the
    standard model's head. Exact when H <= max_exact_heads, else permutation sampling.
    """
    masked = masked_model(model, block, standard_visual)
    n_heads = masked.visual.transformer.resblocks[block].attn.num_heads

    def value(coalition: tuple[int, ...]) -> np.ndarray:
        return 100.0 * correct_under_mask(masked, x_adv, y, _keep(coalition, n_heads), block).astype(np.float64)

    return _shapley(value, n_heads, "standard" if standard_visual is not None else "zero",
                    n_permutations, seed, max_exact_heads)


def head_shapley_fixed_examples(model: nn.Module, images, attack: str, eps: float, block: int = 0, *,
                                n_iter: int | None = None, n_permutations: int = 50, seed: int = 0,
                                label: str = "") -> tuple[ShapleyResult, list[str]]:
    """`head_shapley` on the examples that `attack` makes once against the full model, and that attack's warnings.

    Cached by content (kind `analyses`, released with the attacks), since the adversarial examples behind it are
    not released: the model, the images, the attack's settings and the code that computes both.
    """
    from .. import cache, evaluation

    spec = {"what": "head Shapley, fixed examples", "model": evaluation.fingerprint(model),
            "images": evaluation.fingerprint(images.images), "labels": evaluation.fingerprint(images.labels),
            "attack": attack, "eps_255": round(eps * 255, 3), "n_iter": n_iter, "block": block,
            "n_permutations": n_permutations, "seed": seed, **cache.code_spec(*evaluation.EVALUATION_CODE, "analysis.shapley")}

    def compute() -> tuple[ShapleyResult, list[str]]:
        adv = evaluation.evaluate(model, images, attack, eps, label=label, n_iter=n_iter, keep_adv=True, seed=seed)
        return head_shapley(model, adv.x_adv, images.labels, block, n_permutations=n_permutations, seed=seed), adv.warnings

    return cache.cached("analyses", spec, compute)


def head_shapley_reattacked(model: nn.Module, images, attack: str, eps: float, block: int = 0, *,
                            n_iter: int | None = None, standard_visual: nn.Module | None = None,
                            n_permutations: int = 50, seed: int = 0, max_exact_heads: int = MAX_EXACT_HEADS) -> ShapleyResult:
    """Shapley value of each head for robust accuracy (%), every coalition's model attacked as itself.

    v(S) per image: 100 if the model with heads S kept classifies the image right both clean and under
    `attack` run end-to-end against that same pruned model (cached per coalition), else 0.
    """
    from .. import evaluation

    masked = masked_model(model, block, standard_visual)
    attn = masked.visual.transformer.resblocks[block].attn
    n_heads = attn.num_heads

    def value(coalition: tuple[int, ...]) -> np.ndarray:
        attn.keep.copy_(_keep(coalition, n_heads))
        res = evaluation.evaluate(masked, images, attack, eps, label=f"heads {coalition}", n_iter=n_iter, seed=seed,
                                  code=("analysis.shapley",))
        return 100.0 * res.correct("robust").astype(np.float64)

    return _shapley(value, n_heads, "standard" if standard_visual is not None else "zero",
                    n_permutations, seed, max_exact_heads)


def _shapley(value: Callable[[tuple[int, ...]], np.ndarray], n_heads: int, mode: str, n_permutations: int,
             seed: int, max_exact_heads: int) -> ShapleyResult:
    """Exact or permutation-sampled Shapley values from a per-image value function of coalitions."""
    cache: dict[tuple[int, ...], np.ndarray] = {}

    def v(coalition: tuple[int, ...]) -> np.ndarray:
        if coalition not in cache:
            cache[coalition] = value(coalition)
        return cache[coalition]

    full, empty = tuple(range(n_heads)), ()
    if n_heads <= max_exact_heads:
        coalitions = [c for size in range(n_heads + 1) for c in itertools.combinations(range(n_heads), size)]
        for c in tqdm(coalitions, desc="coalitions", unit="coalition", leave=False):
            v(c)
        per_image = exact_shapley(cache, n_heads)
        return ShapleyResult(per_image.mean(axis=1), per_image, None, float(v(full).mean()), float(v(empty).mean()),
                             "exact", mode, len(cache))
    rng = np.random.default_rng(seed)
    samples = np.zeros((n_permutations, n_heads))
    for p in tqdm(range(n_permutations), desc="permutations", unit="perm", leave=False):
        order = rng.permutation(n_heads)
        prev = float(v(empty).mean())
        for i in range(n_heads):
            cur = float(v(tuple(sorted(int(j) for j in order[:i + 1]))).mean())
            samples[p, order[i]] = cur - prev
            prev = cur
    se = samples.std(axis=0, ddof=1) / np.sqrt(n_permutations) if n_permutations > 1 else np.full(n_heads, np.nan)
    return ShapleyResult(samples.mean(axis=0), None, se, float(v(full).mean()), float(v(empty).mean()),
                         "permutation", mode, len(cache))


def dominance(res: ShapleyResult, seed: int = 0) -> Estimate:
    """Positive Shapley values minus the magnitude of the negative ones (pp), with a 95% interval.

    By efficiency this sum is v(all heads) - v(no heads), per image too, so exact values get a plain
    bootstrap over images; sampled values get +-1.96 of the summed standard errors.
    """
    if res.per_image is not None:
        return stats.bootstrap_mean(res.per_image.sum(axis=0), seed=seed)
    total, half = float(res.values.sum()), 1.96 * float(np.sqrt(np.nansum(res.se ** 2)))
    return Estimate(total, total - half, total + half, len(res.values))
