"""First-block attention: [CLS]-to-patch maps and input-insensitivity (Fig. 3b, 10, 13, 14).

Why: the paper argues that a robust model's first attention block stops looking at the image's
edges and textures and instead answers (almost) the same thing for every input, anchored on
bright, non-semantic regions. Two measurements test that:

* the attention weights of the [CLS] query over the patches in block 1, per head
  (recomputed by calling the block's own `nn.MultiheadAttention` with `need_weights=True,
  average_attn_weights=False` on `ln_1` of the block input);
* input-insensitivity: the cosine similarity of the first attention block's output, that is the
  multi-head self-attention output `attn(ln_1(x))` (before layer scale and the residual; the
  N x D tensor h^(1) that R-Adapt's anchor replaces), flattened over tokens, between two different
  images, and between an image and a uniform white image (all pixels 1.0), within one model and
  across models. Because "the output of the first attention block" can be read several ways,
  `MEASURES` names the variants that `input_insensitivity(measure=...)` computes; pages state
  which one their verdict uses.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import stats
from ..stats import Estimate


def embed_tokens(tower: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Token sequence entering block 1 (B x T x D) for normalised images, as open_clip computes it."""
    return tower._embeds(x) if hasattr(tower, "_embeds") else embed_tokens_manual(tower, x)


def embed_tokens_manual(tower: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The same as open_clip's `_embeds` (for open_clip versions that lack it)."""
    z = tower.conv1(x)
    z = z.reshape(z.shape[0], z.shape[1], -1).permute(0, 2, 1)
    cls = tower.class_embedding.to(z.dtype).view(1, 1, -1).expand(z.shape[0], -1, -1)
    z = torch.cat([cls, z], dim=1) + tower.positional_embedding.to(z.dtype)
    return tower.ln_pre(tower.patch_dropout(z))


def block_input(tower: nn.Module, x: torch.Tensor, block: int = 0) -> torch.Tensor:
    """Tokens entering block `block` (0-based), batch first."""
    z = embed_tokens(tower, x)
    for blk in list(tower.transformer.resblocks)[:block]:
        z = blk(z)
    return z


@torch.no_grad()
def attention_weights(tower: nn.Module, x: torch.Tensor, block: int = 0) -> torch.Tensor:
    """Per-head attention probabilities of a block (B x H x T x T); each row sums to 1."""
    blk = tower.transformer.resblocks[block]
    q = blk.ln_1(block_input(tower, x, block))
    _, weights = blk.attn(q, q, q, need_weights=True, average_attn_weights=False)
    return weights


def cls_attention(tower: nn.Module, x: torch.Tensor, block: int = 0) -> torch.Tensor:
    """The [CLS] query's attention over all tokens ([CLS] first), per head: B x H x T."""
    return attention_weights(tower, x, block)[:, :, 0, :]


def patch_maps(cls_rows: torch.Tensor) -> torch.Tensor:
    """[CLS]-to-patch attention (the [CLS] self-weight dropped) as square grids: ... x g x g."""
    patches = cls_rows[..., 1:]
    grid = int(round(patches.shape[-1] ** 0.5))
    return patches.reshape(*patches.shape[:-1], grid, grid)


@torch.no_grad()
def attention_output(tower: nn.Module, x: torch.Tensor, block: int = 0) -> torch.Tensor:
    """The multi-head self-attention output attn(ln_1(x)) of a block (B x T x D), before ls_1 and the residual."""
    blk = tower.transformer.resblocks[block]
    q = blk.ln_1(block_input(tower, x, block))
    return blk.attn(q, q, q, need_weights=False)[0]


MEASURES: dict[str, str] = {
    "attn": "attention output attn(ln_1(x)), all tokens (the tensor R-Adapt's anchor replaces)",
    "attn [CLS]": "attention output, [CLS] token only",
    "attn patches": "attention output, patch tokens only",
    "after residual": "x + ls_1(attn(ln_1(x))): the block's tokens after the attention residual",
    "block output": "block 1's whole output (after its MLP residual too)",
}


@torch.no_grad()
def block_features(tower: nn.Module, x: torch.Tensor, measure: str = "attn", block: int = 0) -> torch.Tensor:
    """One of `MEASURES` for normalised images, flattened per image (B x F)."""
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}: use one of {list(MEASURES)}")
    blk = tower.transformer.resblocks[block]
    z = block_input(tower, x, block)
    q = blk.ln_1(z)
    attn = blk.attn(q, q, q, need_weights=False)[0]
    if measure == "block output":
        feats = blk(z)
    elif measure == "after residual":
        feats = z + blk.ls_1(attn)
    else:
        feats = {"attn": attn, "attn [CLS]": attn[:, :1], "attn patches": attn[:, 1:]}[measure]
    return feats.flatten(1)


@torch.no_grad()
def first_block_outputs(model: nn.Module, images: torch.Tensor, batch_size: int = 100,
                        measure: str = "attn") -> torch.Tensor:
    """Flattened first-block features (n x F, `measure`) of a ZeroShotClassifier for [0, 1] or uint8 images."""
    device = next(model.parameters()).device
    out = []
    for lo in range(0, images.shape[0], batch_size):
        x = images[lo:lo + batch_size]
        x = (x.float().div(255) if x.dtype == torch.uint8 else x).to(device)
        out.append(block_features(model.visual, model.tower_input(x), measure).float().cpu())
    return torch.cat(out)


def derangement_pairs(n: int, seed: int = 0) -> np.ndarray:
    """Index of a different image for each image: a seeded shuffle, each paired with its successor."""
    if n < 2:
        raise ValueError("need at least two images to form pairs of different images")
    perm = np.random.default_rng(seed).permutation(n)
    partner = np.empty(n, dtype=np.int64)
    partner[perm] = np.roll(perm, -1)
    return partner


def _cos(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1).numpy()


def pair_similarity(model: nn.Module, images: torch.Tensor, seed: int = 0, measure: str = "attn") -> np.ndarray:
    """Per image i: cosine between the model's first-block features of image i and of its seeded partner image."""
    outs = first_block_outputs(model, images, measure=measure)
    return _cos(outs, outs[torch.from_numpy(derangement_pairs(images.shape[0], seed))])


def input_insensitivity(models: Mapping[str, nn.Module], images: torch.Tensor, seed: int = 0,
                        batch_size: int = 100, measure: str = "attn") -> dict[str, dict[tuple[str, str], Estimate]]:
    """Fig. 10: mean cosine similarity of first attention block outputs, with bootstrap intervals.

    "pairs"[(A, B)]: model A on image i vs model B on a different image j (A = B: within a model).
    "white"[(A, B)]: model A on image i vs model B on a uniform white image.
    Intervals are percentile bootstraps over the images i; `measure` is one of `MEASURES`.
    """
    partner = torch.from_numpy(derangement_pairs(images.shape[0], seed))
    white = torch.ones((1, *images.shape[1:]))
    outs = {name: first_block_outputs(m, images, batch_size, measure) for name, m in models.items()}
    whites = {name: first_block_outputs(m, white, measure=measure) for name, m in models.items()}
    result: dict[str, dict[tuple[str, str], Estimate]] = {"pairs": {}, "white": {}}
    for a in models:
        for b in models:
            result["pairs"][(a, b)] = stats.bootstrap_mean(_cos(outs[a], outs[b][partner]), seed=seed)
            result["white"][(a, b)] = stats.bootstrap_mean(_cos(outs[a], whites[b].expand_as(outs[a])), seed=seed)
    return result


def similarity_frame(estimates: Mapping[tuple[str, str], Estimate], digits: int = 3) -> pd.DataFrame:
    """A models x models table of means (rows: model on the images; columns: partner model)."""
    names = list(dict.fromkeys(a for a, _ in estimates))
    return pd.DataFrame([[round(estimates[(a, b)].mean, digits) for b in names] for a in names],
                        index=pd.Index(names, name="images through"), columns=pd.Index(names, name="partner through"))


def near_white_share(images: torch.Tensor, threshold: float = 0.9) -> torch.Tensor:
    """Share of pixels that are near-white (every channel >= threshold) per image, for picking examples."""
    x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
    return (x >= threshold).all(dim=1).float().flatten(1).mean(dim=1)


def patch_brightness(images: torch.Tensor, grid: int) -> torch.Tensor:
    """Mean intensity of each patch of a grid x grid tiling (n x grid*grid, [0, 1])."""
    x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
    return torch.nn.functional.adaptive_avg_pool2d(x.mean(dim=1, keepdim=True), grid).flatten(1)


@torch.no_grad()
def bright_attention_share(model: nn.Module, images: torch.Tensor, quantile: float = 0.75, block: int = 0,
                           batch_size: int = 100) -> torch.Tensor:
    """Per image and head (n x H): share of the [CLS]-to-patch attention that falls on the image's
    brightest patches (those at or above the `quantile` of its patch intensities), renormalised over
    patches. A uniform map gives about 1 - quantile; a map anchored on bright regions gives more.
    """
    device = next(model.parameters()).device
    out = []
    for lo in range(0, images.shape[0], batch_size):
        x = images[lo:lo + batch_size]
        x = (x.float().div(255) if x.dtype == torch.uint8 else x).to(device)
        rows = cls_attention(model.visual, model.tower_input(x), block)[..., 1:].float().cpu()
        rows = rows / rows.sum(-1, keepdim=True)
        mask = bright_patch_mask(x.cpu(), int(round(rows.shape[-1] ** 0.5)), quantile)
        out.append((rows * mask[:, None, :]).sum(-1))
    return torch.cat(out)


def bright_patch_mask(images: torch.Tensor, grid: int, quantile: float = 0.75) -> torch.Tensor:
    """1.0 for each image's brightest patches (at or above its `quantile` of patch intensity), else 0.0.

    Ties count as bright, so on images with large white areas more than 1 - quantile of the patches
    are marked: its row mean is the bright share that brightness-blind (uniform) attention would get.
    """
    bright = patch_brightness(images, grid)
    return (bright >= torch.quantile(bright, quantile, dim=1, keepdim=True)).float()
