"""Manifold-Adversarial Adapters (MAA) on a frozen open_clip VisionTransformer.

Why: MAA repairs corrupted images' features inside the encoder instead of restoring pixels. A small gated
residual adapter follows every transformer block; only the adapters train, on clean / corrupted pairs, with
a feature distillation loss (student on the corrupted image -> frozen teacher on the clean one) plus an
adversarial "manifold" loss from a discriminator that sees clean teacher features as real and corrected
features as fake. The discriminator is discarded at inference.

Each adapter has three correction paths (any subset, for the ablations): window self-attention over the
patch grid, a token-wise MLP, and 3 x 3 max pooling over the grid. Each path has its own gate tanh(alpha),
alpha initialised to 0 (Flamingo's gated cross-attention): an untrained adapter is exactly the identity, so
the adapted tower starts as the frozen tower bit for bit.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import config, corruptions
from .training import TrainLog, adamw, cosine_lr, n_steps
from .zeroshot import Normalize

PATHS = ("attn", "mlp", "pool")


@dataclass(frozen=True)
class AdapterConfig:
    paths: tuple[str, ...] = PATHS
    hidden: int = 32  # MLP path's bottleneck width
    window: int = 4  # window attention on window x window patches (must divide the grid)
    heads: int = 2
    gate_init: float = 0.0  # alpha of the tanh gates; 0: the adapter starts as the identity


class Adapter(nn.Module):
    """tokens (B, 1 + H*W, D) -> tokens + sum_p tanh(alpha_p) * path_p(tokens).

    [CLS] (token 0) has no place on the patch grid, so the spatial paths give it their global version: in
    the window-attention path it attends to all tokens (same weights), in the pooling path it gets the
    projected max over the whole grid. Why not a zero correction: the tower pools [CLS] ('tok'), so after
    the last block a zero [CLS] correction would leave that adapter's spatial paths without any effect on
    the embedding (and without gradient).
    """

    def __init__(self, width: int, grid: tuple[int, int], cfg: AdapterConfig):
        super().__init__()
        unknown = set(cfg.paths) - set(PATHS)
        if not cfg.paths or unknown:
            raise ValueError(f"adapter paths {cfg.paths!r}: use a non-empty subset of {PATHS}")
        self.grid, self.window = (int(grid[0]), int(grid[1])), int(cfg.window)
        self.paths = tuple(p for p in PATHS if p in cfg.paths)  # a fixed order: the sum is order-sensitive in floats
        if "attn" in self.paths:
            if self.grid[0] % self.window or self.grid[1] % self.window:
                raise ValueError(f"window {self.window} does not divide the {self.grid} patch grid")
            if width % cfg.heads:
                raise ValueError(f"width {width} is not divisible by heads={cfg.heads}")
            self.attn_norm = nn.LayerNorm(width)
            self.attn = nn.MultiheadAttention(width, cfg.heads, batch_first=True)
        if "mlp" in self.paths:
            self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, cfg.hidden), nn.GELU(),
                                     nn.Linear(cfg.hidden, width))
        if "pool" in self.paths:
            self.pool_norm = nn.LayerNorm(width)
            self.pool_proj = nn.Linear(width, width)
        # Ordinary init of the paths: with the gates at 0 only the gates get gradient at the first step,
        # after which the paths train; zero-initialising both would leave every gradient at zero.
        self.alpha = nn.ParameterDict({p: nn.Parameter(torch.tensor(float(cfg.gate_init))) for p in self.paths})

    def _to_grid(self, patches: torch.Tensor) -> torch.Tensor:
        b, _, d = patches.shape
        return patches.reshape(b, self.grid[0], self.grid[1], d)

    def _window_attn(self, tokens: torch.Tensor) -> torch.Tensor:
        b, _, d = tokens.shape
        (h, w), s = self.grid, self.window
        z = self.attn_norm(tokens)
        g = self._to_grid(z[:, 1:])
        win = g.reshape(b, h // s, s, w // s, s, d).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, d)
        out, _ = self.attn(win, win, win, need_weights=False)
        out = out.reshape(b, h // s, w // s, s, s, d).permute(0, 1, 3, 2, 4, 5).reshape(b, h * w, d)
        cls, _ = self.attn(z[:, :1], z, z, need_weights=False)  # [CLS]: one global window
        return torch.cat([cls, out], dim=1)

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        z = self.pool_norm(tokens[:, 1:])
        g = self._to_grid(z).permute(0, 3, 1, 2)
        pooled = F.max_pool2d(g, kernel_size=3, stride=1, padding=1).flatten(2).transpose(1, 2)
        cls = z.amax(dim=1, keepdim=True)  # [CLS]: the max over the whole grid
        return self.pool_proj(torch.cat([cls, pooled], dim=1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out = tokens
        for p in self.paths:
            delta = self.mlp(tokens) if p == "mlp" else self._window_attn(tokens) if p == "attn" else self._pool(tokens)
            out = out + torch.tanh(self.alpha[p]) * delta  # tanh(0) = 0 exactly: identity at init
        return out


class AdaptedTower(nn.Module):
    """A frozen open_clip VisionTransformer with an Adapter after each residual block.

    `forward` mirrors VisionTransformer.forward (embeddings, blocks, `_pool` with its ln_post and pool type,
    proj), so it is a drop-in `visual` for `ZeroShotClassifier`. The tower is wrapped, not copied, and its
    parameters are frozen in place.
    """

    def __init__(self, visual: nn.Module, cfg: AdapterConfig):
        super().__init__()
        self.visual = visual
        for p in visual.parameters():
            p.requires_grad_(False)
        width = visual.transformer.width
        self.adapters = nn.ModuleList([Adapter(width, tuple(visual.grid_size), cfg)
                                       for _ in visual.transformer.resblocks])
        self.visual.eval()

    @property
    def image_size(self):
        return self.visual.image_size

    def train(self, mode: bool = True) -> "AdaptedTower":
        # The frozen tower stays in eval mode: training the adapters must not switch on its dropout.
        super().train(mode)
        self.visual.eval()
        return self

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The residual stream (B, 1 + H*W, D) after the last block and adapter, before ln_post."""
        v = self.visual
        h = v._embeds(x)
        batch_first = getattr(v.transformer, "batch_first", True)
        for block, adapter in zip(v.transformer.resblocks, self.adapters):
            if batch_first:
                h = adapter(block(h, attn_mask=None))
            else:  # blocks take (L, N, D); adapters always see (N, L, D)
                h = adapter(block(h.transpose(0, 1), attn_mask=None).transpose(0, 1))
        return h

    def forward(self, x: torch.Tensor):
        v = self.visual
        pooled, tokens = v._pool(self.tokens(x))
        if v.proj is not None:
            pooled = pooled @ v.proj
        return (pooled, tokens) if getattr(v, "output_tokens", False) else pooled

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """The trainable part only: what `train_maa` returns and `load_adapted` takes."""
        return {k: t.detach().clone() for k, t in self.adapters.state_dict().items()}


class Discriminator(nn.Module):
    """Pooled embedding -> real/fake logit. Spectral norm keeps it Lipschitz, so its gradient to the
    adapters stays bounded as it gets good at separating the two sets (Miyato et al. 2018)."""

    def __init__(self, embed_dim: int, hidden: int = 256, spectral: bool = True):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        self.net = nn.Sequential(sn(nn.Linear(embed_dim, hidden)), nn.LeakyReLU(0.2),
                                 sn(nn.Linear(hidden, hidden)), nn.LeakyReLU(0.2), sn(nn.Linear(hidden, 1)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


@dataclass(frozen=True)
class MaaConfig:
    paths: tuple[str, ...] = PATHS
    adv: bool = True
    lambda_adv: float = 0.05
    steps: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    disc_lr: float = 2e-4
    weight_decay: float = 1e-4
    warmup: int = 20
    hidden: int = 32
    window: int = 4
    heads: int = 2
    eval_every: int = 50
    seed: int = 0

    def adapter(self) -> AdapterConfig:
        return AdapterConfig(self.paths, self.hidden, self.window, self.heads)


# The slides' ablation rows as data. "mse-only" is their "Naive Adaptation": an MLP adapter, feature MSE only.
MAA_VARIANTS: dict[str, MaaConfig] = {
    "mse-only": MaaConfig(paths=("mlp",), adv=False),
    "maa-mlp-only": MaaConfig(paths=("mlp",)),
    "maa-no-adv": MaaConfig(adv=False),
    "maa-no-wattn": MaaConfig(paths=("mlp", "pool")),
    "maa-no-pool": MaaConfig(paths=("attn", "mlp")),
    "maa": MaaConfig(),
    # A scaling check, not a slide row: at lambda_adv 0.05 the adversarial term is ~0.1 % of the summed-MSE
    # distillation loss (~40 after training), too small to move the adapters; at 10 it is of the same order.
    "maa-lambda10": MaaConfig(lambda_adv=10.0),
}


def adapter_parameters(state: dict[str, torch.Tensor]) -> int:
    """Number of trained numbers in an adapter state (the slides' "lightweight")."""
    return int(sum(t.numel() for t in state.values()))


def load_adapted(visual: nn.Module, cfg: MaaConfig | AdapterConfig, state: dict[str, torch.Tensor]) -> AdaptedTower:
    """`visual` (frozen in place) with trained adapters; eval mode."""
    tower = AdaptedTower(visual, cfg.adapter() if isinstance(cfg, MaaConfig) else cfg)
    tower.adapters.load_state_dict(state, strict=True)
    return tower.eval()


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def train_maa(visual: nn.Module, cfg: MaaConfig, train_images: torch.Tensor, mean: Sequence[float],
              std: Sequence[float], name: str, stop_after: int | None = None,
              on_checkpoint: Callable[[AdaptedTower], dict] | None = None) -> tuple[dict[str, torch.Tensor], TrainLog]:
    """Train adapters on a copy of the frozen `visual` with clean / corrupted pairs of `train_images`.

    Per step: a batch of clean uint8 images, each corrupted by `corruptions.random_corruption_batch`;
    teacher = frozen tower on the clean image, student = adapted tower on the corrupted one.
    L_distill = ||student - teacher||^2 summed over the embedding and averaged over the batch (FARE's distance
    in `training._finetune_loss`). With `cfg.adv`, a non-saturating GAN: a discriminator step on (teacher:
    real, student.detach(): fake), then the adapters minimise L_distill + lambda_adv * BCE(D(student), real).
    Returns the adapter state only (the discriminator is discarded) and the log; deterministic on the CPU
    given cfg.seed. `stop_after` / `on_checkpoint` as in `training.finetune`.
    """
    if train_images.dtype != torch.uint8 or train_images.ndim != 4:
        raise ValueError(f"train_images must be uint8 N x 3 x H x W, got {train_images.dtype} {tuple(train_images.shape)}")
    config.setup(cfg.seed)
    tower = AdaptedTower(copy.deepcopy(visual), cfg.adapter())  # the caller's tower keeps its grad flags
    device = next(tower.visual.parameters()).device
    tower.to(device).train()
    norm = Normalize(mean, std).to(device)
    opt = adamw(list(tower.adapters.named_parameters()), cfg.lr, cfg.weight_decay)
    disc = d_opt = None
    if cfg.adv:
        disc = Discriminator(tower.visual.output_dim).to(device).train()
        d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999))  # DCGAN's betas
    gen = torch.Generator().manual_seed(cfg.seed)
    order, cursor = torch.randperm(len(train_images), generator=gen), 0
    log, start = TrainLog(name), time.perf_counter()
    for step in tqdm(range(n_steps(cfg.steps, stop_after)), desc=f"{name} (MAA) training", unit="step", mininterval=10):
        if cursor + cfg.batch_size > len(order):
            order, cursor = torch.randperm(len(train_images), generator=gen), 0
        idx = order[cursor:cursor + cfg.batch_size]
        cursor += cfg.batch_size
        x = train_images[idx].float().div(255)
        x_bad, _, _ = corruptions.random_corruption_batch(x, gen)
        x, x_bad = x.to(device), x_bad.to(device)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, cfg.steps, cfg.warmup, cfg.lr)
        with torch.no_grad():
            teacher = tower.visual(norm(x))
        student = tower(norm(x_bad))
        distill = (student - teacher).pow(2).sum(-1).mean()
        loss, record = distill, {"distill": float(distill.detach())}
        if disc is not None:
            d_loss = _bce(disc(teacher), True) + _bce(disc(student.detach()), False)
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            disc.requires_grad_(False)  # the adapters' step must not leave gradients on D
            adv = _bce(disc(student), True)  # non-saturating: -log D(student)
            disc.requires_grad_(True)
            loss = distill + cfg.lambda_adv * adv
            record.update(adv=float(adv.detach()), d_loss=float(d_loss.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.losses.append(float(loss.detach()))
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            paused = time.perf_counter()
            extra = on_checkpoint(tower.eval()) if on_checkpoint is not None else {}
            tower.train()
            start += time.perf_counter() - paused  # training time excludes the callback's measurements
            log.checkpoints.append({"step": step + 1, "images": (step + 1) * cfg.batch_size,
                                    "loss": float(loss.detach()), **record, "seconds": time.perf_counter() - start,
                                    **extra})
    log.seconds = time.perf_counter() - start
    return tower.adapter_state(), log


def variant(name: str, **changes) -> MaaConfig:
    """A named MAA variant, optionally with fields changed (e.g. steps for a smoke run)."""
    if name not in MAA_VARIANTS:
        raise ValueError(f"unknown MAA variant {name!r}: use one of {sorted(MAA_VARIANTS)}")
    return replace(MAA_VARIANTS[name], **changes)
