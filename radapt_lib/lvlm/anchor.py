"""R-Adapt+ for an LVLM's vision encoder (App. E), on any `base.VisionLanguageModel`.

App. E's recipe: a small fixed set of adversarial examples made once against the clean encoder (2k in the paper),
the anchor initialised from the clean encoder's white-image response, then optimised on those examples with the
Gaussian input filter in front, every weight frozen. Table 5's "Setting" is the examples' eps (4, 8, 16 / 255).

An LVLM encoder has no class head (Qwen3-VL's has no text tower at all), so the loss is FARE's: the squared
distance between the defended encoder's features of an adversarial example and the clean encoder's features of its
clean image, on the features the language model reads (`encoder_features`). The examples maximise the same
distance against the clean encoder (PGD). Both are our choices; the paper states neither.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from .. import attacks, config
from .base import VisionLanguageModel


@dataclass(frozen=True)
class LvlmAnchorConfig:
    eps: float = 16 / 255
    n_images: int = 1000
    epochs: int = 5
    batch_size: int = 50
    pgd_steps: int = 10  # the fixed examples' PGD (step 2.5 eps / steps, random start)
    lr: float = 1e-2
    alpha: float = 0.8
    beta: float = 0.2
    d0_224: float = 40.0
    seed: int = 0


@dataclass
class LvlmAnchorRun:
    anchor: torch.Tensor
    config: LvlmAnchorConfig
    losses: list[float] = field(default_factory=list)  # mean feature MSE per epoch
    seconds: float = 0.0  # examples and epochs


def check_config(cfg: LvlmAnchorConfig) -> LvlmAnchorConfig:
    config.check_eps(cfg.eps)
    if cfg.epochs < 1 or cfg.n_images < 1 or cfg.pgd_steps < 1 or cfg.batch_size < 1:
        raise ValueError(f"LVLM anchor training needs epochs, n_images, pgd_steps and batch_size >= 1, got {cfg}")
    return cfg


def feature_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image: mean squared difference of two feature maps (N x tokens x dim)."""
    return (a - b).pow(2).flatten(1).mean(1)


def fixed_examples(model: VisionLanguageModel, images: torch.Tensor, cfg: LvlmAnchorConfig) -> torch.Tensor:
    """PGD examples against the clean encoder, pushing its features away from the clean image's."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    out = []
    for lo in range(0, len(images), cfg.batch_size):
        x = images[lo:lo + cfg.batch_size]
        with torch.no_grad():
            clean = model.encoder_features(x)
        out.append(attacks.pgd_maximize(lambda z: feature_distance(model.encoder_features(z), clean).sum(), x,
                                        cfg.eps, cfg.pgd_steps, generator=gen))
    return torch.cat(out)


def train_lvlm_anchor(model: VisionLanguageModel, images: torch.Tensor, cfg: LvlmAnchorConfig = LvlmAnchorConfig(),
                      progress: bool = False) -> LvlmAnchorRun:
    """The anchor fitted to cfg.n_images of `images` ([0, 1]); `model` is the undefended LVLM (left untouched)."""
    check_config(cfg)
    if len(images) < cfg.n_images:
        raise ValueError(f"train_lvlm_anchor needs {cfg.n_images} images, got {len(images)}")
    images = images[:cfg.n_images]
    start = time.perf_counter()
    adversarial = fixed_examples(model, images, cfg)
    defended = model.defended(model.white_anchor(), cfg.alpha, cfg.beta, cfg.d0_224)
    anchor = defended.anchor_buffer()
    anchor.requires_grad_(True)
    opt = torch.optim.Adam([anchor], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for _ in tqdm(range(cfg.epochs), desc="R-Adapt+ anchor (LVLM)", unit="epoch", disable=not progress, leave=False):
        order = torch.randperm(len(images), generator=gen)
        total = 0.0
        for lo in range(0, len(images), cfg.batch_size):
            idx = order[lo:lo + cfg.batch_size]
            with torch.no_grad():  # recomputed per batch: 2000 images' LLaVA features would hold ~19 GB
                clean = model.encoder_features(images[idx])
            loss = feature_distance(defended.encoder_features(adversarial[idx]), clean).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(images))
    return LvlmAnchorRun(anchor.detach().clone(), cfg, losses, time.perf_counter() - start)
