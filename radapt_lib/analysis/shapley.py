"""Shapley values of first-block attention heads for robust accuracy (the paper's Fig. 11).

Why: if the robust first block works by anchoring on stable, non-semantic regions, the heads that
do so should carry most of the robust accuracy. The Shapley value of head h is its average marginal
contribution to robust accuracy over all coalitions of the other heads.

Protocol choices (stated on the page):
* Value v(S) = accuracy (%) of the robust classifier on a *fixed* set of adversarial examples,
  generated once against the full robust model, when only the heads in S are kept in the block.
  Examples are not re-generated per coalition, so v measures how much each head's computation
  matters on those inputs, not the robustness of every pruned model.
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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

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


def head_shapley(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, block: int = 0, *,
                 standard_visual: nn.Module | None = None, n_permutations: int = 50, seed: int = 0,
                 max_exact_heads: int = MAX_EXACT_HEADS) -> ShapleyResult:
    """Shapley value of each head of block `block` for accuracy (%) on fixed inputs `x_adv`.

    Heads are removed by zeroing (default) or, with `standard_visual`, by substituting the
    standard model's head. Exact when H <= max_exact_heads, else permutation sampling.
    """
    masked = masked_model(model, block, standard_visual)
    n_heads = masked.visual.transformer.resblocks[block].attn.num_heads
    mode = "standard" if standard_visual is not None else "zero"
    cache: dict[tuple[int, ...], np.ndarray] = {}

    def v(coalition: tuple[int, ...]) -> np.ndarray:
        if coalition not in cache:
            keep = torch.zeros(n_heads)
            keep[list(coalition)] = 1.0
            cache[coalition] = 100.0 * correct_under_mask(masked, x_adv, y, keep, block).astype(np.float64)
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
