"""R-Adapt (Sec. 4): a Gaussian Input Filter and a Fixed Robustness Anchor on a frozen CLIP tower.

* `GaussianInputFilter` (Eq. 5): x~ = F^-1(F(x) * exp(-D^2 / (2 D0^2))) per channel on [0, 1]
  pixels, D the distance to the centred frequency origin (in frequency-index units of the image the
  encoder sees). D0 is given at 224 px (paper: 40) and scaled with the resolution (`d0_at`).
* `FixedAnchorAttention`: replaces block 1's attention sub-layer output h by alpha * A + beta * h.
* Anchors (Sec. 4.2): `white_anchor` (Eq. 6 training-free / Eq. 7 model-guided, depending on the
  tower given); the data-driven anchor (Eq. 8, R-Adapt+) is trained in `plus`.
* `defend(classifier, anchor, alpha, beta, d0_224)`: one call that returns the defended copy of a
  ZeroShotClassifier; filter and anchor live inside the model (as buffers), so every attack and
  evaluation goes through them end-to-end and the evaluation cache key covers the defense.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from . import reference
from .zeroshot import Normalize, ZeroShotClassifier

PAPER_RESOLUTION = 224


# --- Gaussian Input Filter (Eq. 5) ------------------------------------------------------------

def d0_at(resolution: int, d0_224: float = 40.0) -> float:
    """The cutoff D0 (frequency-index units) at `resolution` px for a cutoff `d0_224` given at 224 px."""
    return float(d0_224) * float(resolution) / PAPER_RESOLUTION


def gaussian_transfer(height: int, width: int, d0: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """H = exp(-D^2 / (2 D0^2)) in torch.fft's (unshifted) layout; D is the distance to the centred origin."""
    fy = torch.fft.fftfreq(height, d=1.0 / height, device=device, dtype=torch.float64)
    fx = torch.fft.fftfreq(width, d=1.0 / width, device=device, dtype=torch.float64)
    dist2 = fy[:, None] ** 2 + fx[None, :] ** 2
    return torch.exp(-dist2 / (2.0 * float(d0) ** 2)).to(dtype)


class GaussianInputFilter(nn.Module):
    """Gaussian low-pass on [0, 1] images (N x C x H x W), per channel, differentiable."""

    def __init__(self, d0: float):
        super().__init__()
        if not d0 > 0:
            raise ValueError(f"GaussianInputFilter needs a cutoff D0 > 0, got {d0}")
        self.register_buffer("d0", torch.tensor([float(d0)], dtype=torch.float64))  # 1-d: fingerprintable

    def extra_repr(self) -> str:
        return f"d0={float(self.d0):.3g}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not math.isfinite(float(self.d0)):
            return x
        transfer = gaussian_transfer(x.shape[-2], x.shape[-1], float(self.d0), x.device, x.dtype)
        return torch.fft.ifft2(torch.fft.fft2(x) * transfer).real


# --- Fixed Robustness Anchor ------------------------------------------------------------------

class AnchorShapeError(ValueError):
    pass


def tower_of(model: nn.Module) -> nn.Module:
    """The open_clip VisionTransformer of a ZeroShotClassifier (or the tower itself)."""
    tower = model.visual if isinstance(model, ZeroShotClassifier) else model
    if not hasattr(tower, "transformer") or not hasattr(tower.transformer, "resblocks"):
        raise TypeError(f"{type(tower).__name__} is not an open_clip VisionTransformer (no transformer.resblocks)")
    return tower


def token_shape(tower: nn.Module) -> tuple[int, int]:
    """(tokens, width) of the tower's residual stream: grid^2 + 1 class token, and the width."""
    grid = tower.grid_size
    tokens = int(grid[0] * grid[1]) + 1
    return tokens, int(tower.class_embedding.shape[-1])


class FixedAnchorAttention(nn.Module):
    """Drop-in for block 1's nn.MultiheadAttention: returns (alpha * A + beta * h, None).

    `inner` is the original attention (frozen); A (tokens x width), alpha and beta are buffers.
    With beta == 0 the original attention is not evaluated (its output would be multiplied by 0).
    """

    def __init__(self, inner: nn.Module, anchor: torch.Tensor, alpha: float, beta: float):
        super().__init__()
        self.inner = inner
        self.batch_first = getattr(inner, "batch_first", True)
        self.register_buffer("anchor", anchor.detach().clone().float())
        self.register_buffer("alpha", torch.tensor([float(alpha)]))
        self.register_buffer("beta", torch.tensor([float(beta)]))

    def extra_repr(self) -> str:
        n, d = self.anchor.shape
        return f"anchor={n}x{d}, alpha={float(self.alpha):.3g}, beta={float(self.beta):.3g}"

    def forward(self, query, key=None, value=None, need_weights: bool = False, attn_mask=None, **kwargs):
        tokens_dim = 1 if self.batch_first else 0
        n, d = query.shape[tokens_dim], query.shape[-1]
        if (n, d) != tuple(self.anchor.shape):
            raise AnchorShapeError(f"anchor is {self.anchor.shape[0]} x {self.anchor.shape[1]} but block 1 sees "
                                   f"{n} tokens x {d} width: extract the anchor from a tower of the same architecture "
                                   "and resolution")
        anchor = self.anchor.to(query.dtype)
        anchor = anchor.unsqueeze(0) if self.batch_first else anchor.unsqueeze(1)
        if float(self.beta) == 0.0:
            return (self.alpha * anchor).expand_as(query), None
        key = query if key is None else key
        value = query if value is None else value
        h = self.inner(query, key, value, need_weights=False, attn_mask=attn_mask)[0]
        return self.alpha * anchor + self.beta * h, None


def first_block(tower: nn.Module) -> nn.Module:
    return tower.transformer.resblocks[0]


def original_attention(tower: nn.Module) -> nn.Module:
    attn = first_block(tower).attn
    return attn.inner if isinstance(attn, FixedAnchorAttention) else attn


def check_anchor(tower: nn.Module, anchor: torch.Tensor) -> None:
    expected = token_shape(tower)
    if tuple(anchor.shape) != expected:
        raise AnchorShapeError(f"anchor is {' x '.join(map(str, anchor.shape))} but this model expects "
                               f"{expected[0]} tokens x {expected[1]} width")


# --- anchors (Sec. 4.2) -------------------------------------------------------------------------

@torch.no_grad()
def white_anchor(model: nn.Module, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> torch.Tensor:
    """Eq. 6 / 7: block 1's attention-sublayer output attn(ln_1(embeds(white))) for a uniform white image.

    `model` is a ZeroShotClassifier (its own mean/std are used) or a VisionTransformer (give mean/std).
    From the standard CLIP this is the training-free anchor; from FARE/TeCoA/TGA the model-guided one.
    Returns a (tokens x width) tensor.
    """
    tower = tower_of(model)
    if isinstance(model, ZeroShotClassifier):
        norm = model.normalize
    elif mean is None or std is None:
        raise ValueError("white_anchor on a bare tower needs the model's mean and std")
    else:
        norm = Normalize(mean, std)
    device = tower.class_embedding.device
    size = tower.image_size
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    white = torch.ones(1, 3, *size, device=device)
    tokens = tower._embeds(norm.to(device)(white))
    block = first_block(tower)
    q = block.ln_1(tokens)
    attn = original_attention(tower)
    if not getattr(attn, "batch_first", True):
        q = q.transpose(0, 1)
        return attn(q, q, q, need_weights=False)[0].transpose(0, 1)[0].detach().clone()
    return attn(q, q, q, need_weights=False)[0][0].detach().clone()


# --- one call: the defended model ----------------------------------------------------------------

def defend(classifier: ZeroShotClassifier, anchor: torch.Tensor | None, alpha: float = 1.2, beta: float = 0.0,
           d0_224: float | None = 40.0) -> ZeroShotClassifier:
    """The R-Adapt form of `classifier` (a deep copy; the original is untouched).

    anchor None -> no FRA (GIF only); d0_224 None -> no GIF (FRA only). D0 is scaled to the
    classifier's input resolution with `d0_at`.
    """
    model = copy.deepcopy(classifier)
    if d0_224 is not None:
        model.input_filter = GaussianInputFilter(d0_at(model.image_size, d0_224)).to(model.mean.device)
    if anchor is not None:
        tower = tower_of(model)
        check_anchor(tower, anchor)
        block = first_block(tower)
        block.attn = FixedAnchorAttention(original_attention(tower), anchor.to(model.mean.device), alpha, beta)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


@dataclass(frozen=True)
class Preset:
    """Table 9's setting for one R-Adapt variant: whose white response is the anchor, alpha, beta, D0."""

    name: str
    anchor_from: str  # "CLIP" | "TeCoA" | "TGA" | "FARE" | "trained"
    alpha: float
    beta: float
    d0_224: float


PRESETS: dict[str, Preset] = {
    name: Preset(name, "trained" if name == "R-Adapt+" else name.split("_", 1)[1],
                 float(cfg["alpha"]), float(cfg["beta"]), float(cfg["d0"]))
    for name, cfg in reference.TABLE9.items()
}


def defend_preset(classifier: ZeroShotClassifier, preset: str | Preset, anchor: torch.Tensor) -> ZeroShotClassifier:
    p = PRESETS[preset] if isinstance(preset, str) else preset
    return defend(classifier, anchor, p.alpha, p.beta, p.d0_224)
