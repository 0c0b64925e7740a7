"""R-Adapt (Sec. 4): a Gaussian Input Filter and a Fixed Robustness Anchor on a frozen CLIP tower.

* `GaussianInputFilter` (Eq. 5): x~ = F^-1(F(x) * exp(-D^2 / (2 D0^2))) per channel on [0, 1]
  pixels, D the distance to the centred frequency origin (in frequency-index units of the image the
  encoder sees). D0 is given at 224 px (paper: 40) and scaled with the resolution (`d0_at`).
* `FixedAnchorAttention`: replaces block 1's attention sub-layer output h by alpha * A + beta * h.
* Anchors (Sec. 4.2): `white_anchor` (Eq. 6 training-free / Eq. 7 model-guided, depending on the
  tower given) and `train_anchor` (Eq. 8, R-Adapt+, cached).
* `defend(classifier, anchor, alpha, beta, d0_224)`: one call that returns the defended copy of a
  ZeroShotClassifier; filter and anchor live inside the model (as buffers), so every attack and
  evaluation goes through them end-to-end and the evaluation cache key covers the defense.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import attacks, cache, config, reference
from .data import ImageSet
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


# --- R-Adapt+ (Eq. 8) -------------------------------------------------------------------------

@dataclass(frozen=True)
class AnchorTrainConfig:
    """R-Adapt+ anchor optimisation: CE on PGD examples made against the defended model each step.

    Paper: 2k ImageNet images, 10 epochs, eps 4/255, alpha 0.8, beta 0.2, D0 40 (optimiser and
    inner attack unstated). Constant learning rate, so a run to E epochs passes through the run
    to any E' < E, and a longer run resumes from the cached shorter one.
    """

    n_images: int = 1000
    epochs: int = 5
    eps: float = 4 / 255
    pgd_steps: int = 2
    batch_size: int = 50
    lr: float = 1e-2
    alpha: float = 0.8
    beta: float = 0.2
    d0_224: float = 40.0
    seed: int = 0


@dataclass
class AnchorRun:
    anchor: torch.Tensor
    config: AnchorTrainConfig
    losses: list[float] = field(default_factory=list)  # mean adversarial CE per epoch
    seconds: float = 0.0  # wall-clock of all epochs (including those resumed from)
    images_seen: int = 0  # clean images x epochs
    state: dict = field(default_factory=dict)  # optimiser and generator state, to resume


def _anchor_spec(classifier: ZeroShotClassifier, images: ImageSet, cfg: AnchorTrainConfig) -> dict:
    from .evaluation import fingerprint

    return {"model": fingerprint(classifier), "images": fingerprint(images.images), "labels": fingerprint(images.labels),
            "config": asdict(cfg), "threads": config.CPU_THREADS, **cache.code_spec("defense", "attacks", "zeroshot")}


def _train_epochs(classifier: ZeroShotClassifier, images: ImageSet, cfg: AnchorTrainConfig,
                  start: AnchorRun | None, progress: bool, on_epoch=None) -> AnchorRun:
    from tqdm import tqdm

    init = start.anchor if start is not None else white_anchor(classifier)
    model = defend(classifier, init, cfg.alpha, cfg.beta, cfg.d0_224)
    fra = first_block(tower_of(model)).attn
    fra.anchor.requires_grad_(True)
    opt = torch.optim.Adam([fra.anchor], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses, seconds, done = [], 0.0, 0
    if start is not None:
        opt.load_state_dict(start.state["optimizer"])
        gen.set_state(start.state["generator"])
        losses, seconds, done = list(start.losses), start.seconds, len(start.losses)
    device = model.mean.device
    t0 = time.perf_counter()
    n = len(images)
    for _ in tqdm(range(done, cfg.epochs), desc="R-Adapt+ anchor", unit="epoch", disable=not progress, leave=False):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for lo in range(0, n, cfg.batch_size):
            idx = order[lo:lo + cfg.batch_size]
            x = images.images[idx].float().div(255).to(device)
            y = images.labels[idx].to(device)
            x_adv = attacks.pgd_maximize(lambda z: F.cross_entropy(model(z), y, reduction="sum"), x, cfg.eps,
                                         cfg.pgd_steps, generator=gen)
            loss = F.cross_entropy(model(x_adv), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / n)
        run = AnchorRun(fra.anchor.detach().clone(), _with_epochs(cfg, len(losses)), list(losses),
                        seconds + time.perf_counter() - t0, n * len(losses),
                        {"optimizer": copy.deepcopy(opt.state_dict()), "generator": gen.get_state()})
        if on_epoch is not None and len(losses) < cfg.epochs:
            on_epoch(run)
    return run


def train_anchor(classifier: ZeroShotClassifier, images: ImageSet, cfg: AnchorTrainConfig = AnchorTrainConfig(),
                 progress: bool = True) -> AnchorRun:
    """Eq. 8 (R-Adapt+): the anchor trained on `images` (first cfg.n_images) against the defended model.

    The classifier (standard CLIP with the training classes' head) stays frozen; A starts from its
    white response. Cached per config; a longer run resumes from the longest cached shorter one, and
    every intermediate epoch is cached too (a shorter run after a longer one is a cache hit).
    """
    config.setup(cfg.seed)
    if cfg.epochs < 1:
        raise ValueError(f"train_anchor needs epochs >= 1, got {cfg.epochs}")
    if len(images) < cfg.n_images:
        raise ValueError(f"train_anchor needs {cfg.n_images} images, got {len(images)}")
    images = ImageSet(images.images[:cfg.n_images], images.labels[:cfg.n_images], images.classnames, images.source)

    def compute() -> AnchorRun:
        start = None
        for shorter in range(cfg.epochs - 1, 0, -1):
            path = cache.path_for("anchors", _anchor_spec(classifier, images, _with_epochs(cfg, shorter)))
            if path.exists():
                try:
                    start = cache.load_checked(path)["value"]
                    break
                except cache.CorruptCacheError:
                    continue

        def save(run: AnchorRun) -> None:
            spec = _anchor_spec(classifier, images, run.config)
            path = cache.path_for("anchors", spec)
            if not path.exists():
                cache.save_atomic({"spec": spec, "value": run}, path)

        return _train_epochs(classifier, images, cfg, start, progress, save)

    return cache.cached("anchors", _anchor_spec(classifier, images, cfg), compute)


def _with_epochs(cfg: AnchorTrainConfig, epochs: int) -> AnchorTrainConfig:
    return AnchorTrainConfig(**{**asdict(cfg), "epochs": epochs})


def anchor_loss(classifier: ZeroShotClassifier, anchor: torch.Tensor, images: ImageSet, cfg: AnchorTrainConfig,
                seed: int = 0) -> float:
    """Mean CE of the defended model on PGD examples (cfg's eps and steps): the quantity Eq. 8 minimises."""
    model = defend(classifier, anchor, cfg.alpha, cfg.beta, cfg.d0_224)
    gen = torch.Generator().manual_seed(seed)
    x = images.images.float().div(255)
    y = images.labels
    x_adv = attacks.pgd_maximize(lambda z: F.cross_entropy(model(z), y, reduction="sum"), x, cfg.eps, cfg.pgd_steps,
                                 generator=gen)
    with torch.no_grad():
        return float(F.cross_entropy(model(x_adv), y))
