"""l-inf attacks on [0, 1] inputs, always end-to-end through the model as wrapped.

PGD (cross-entropy) and CW (margin loss, PGD-style) are written here; APGD-CE, APGD-DLR, FAB,
Square and AutoAttack come from `pyautoattack`. Every adversarial batch is checked to lie in
the eps-ball around its clean images and in [0, 1].
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import config

OWN_ATTACKS = ("pgd", "cw")
AUTOATTACK_PARTS = ("apgd-ce", "apgd-dlr", "fab", "square")
ATTACKS = OWN_ATTACKS + AUTOATTACK_PARTS + ("autoattack",)
EPS_SLACK = 1e-6  # float32 rounding of x + delta


class PerturbationError(AssertionError):
    pass


def check_attack(name: str) -> str:
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}: use one of {ATTACKS}")
    return name


def check_perturbation(x: torch.Tensor, x_adv: torch.Tensor, eps: float) -> None:
    """Raise unless x_adv is inside the l-inf eps-ball around x and inside [0, 1]."""
    dist = (x_adv - x).abs().amax().item() if x.numel() else 0.0
    if dist > eps + EPS_SLACK:
        raise PerturbationError(f"perturbation {dist:.6f} exceeds eps {eps:.6f}")
    if x_adv.numel() and (x_adv.min().item() < -EPS_SLACK or x_adv.max().item() > 1 + EPS_SLACK):
        raise PerturbationError(f"adversarial images leave [0, 1]: [{x_adv.min().item():.4f}, {x_adv.max().item():.4f}]")


def pgd_maximize(loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float, steps: int,
                 step_size: float | None = None, random_start: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected sign-gradient ascent on loss_fn(x_adv) (a scalar) within the l-inf eps-ball and [0, 1]."""
    eps = config.check_eps(eps)
    step_size = step_size if step_size is not None else 2.5 * eps / max(steps, 1)
    x = x.detach()
    if random_start and eps > 0:
        noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device)
        delta = (2 * noise - 1) * eps
    else:
        delta = torch.zeros_like(x)
    x_adv = (x + delta).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        grad, = torch.autograd.grad(loss_fn(x_adv), x_adv)
        with torch.no_grad():
            x_adv = x_adv + step_size * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner margin: best other logit minus the true one (summed over the batch)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
    return (other - true).sum()


@dataclass
class AttackResult:
    x_adv: torch.Tensor
    warnings: list[str] = field(default_factory=list)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: str, eps: float, n_iter: int,
                n_restarts: int, n_queries: int, seed: int, n_classes: int) -> AttackResult:
    from pyautoattack import AutoAttack

    device = x.device
    if attack == "autoattack":
        adversary = AutoAttack(model, eps=eps, norm="Linf", version="standard", seed=seed, device=device)
    else:
        adversary = AutoAttack(model, eps=eps, norm="Linf", version="custom", attacks=[attack], seed=seed, device=device)
    adversary.verbose = False
    targets = max(1, min(9, n_classes - 1))  # targeted parts need fewer targets than classes
    adversary.apgd_targeted.n_target_classes = targets
    adversary.fab.n_target_classes = targets
    for part in (adversary.apgd, adversary.apgd_targeted, adversary.fab):
        part.n_iter = n_iter
    adversary.apgd.n_restarts = n_restarts
    adversary.fab.n_restarts = n_restarts
    adversary.square.n_queries = n_queries
    logger = logging.getLogger("auto-attack")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=x.shape[0])
    finally:
        logger.removeHandler(handler)
    return AttackResult(x_adv.detach(), handler.messages)


def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, eps: float, *, n_iter: int = 10,
           n_restarts: int = 1, n_queries: int = 1000, seed: int = 0) -> AttackResult:
    """Adversarial images for one batch, end-to-end through `model`, checked to stay in the eps-ball."""
    check_attack(name)
    eps = config.check_eps(eps)
    model.eval()
    x = x.detach()
    if eps == 0:
        return AttackResult(x.clone())
    if name in OWN_ATTACKS:
        gen = torch.Generator().manual_seed(seed)
        if name == "pgd":
            loss = lambda z: F.cross_entropy(model(z), y, reduction="sum")  # noqa: E731
            x_adv = pgd_maximize(loss, x, eps, n_iter, step_size=eps / 4, generator=gen)
        else:
            x_adv = pgd_maximize(lambda z: margin_loss(model(z), y), x, eps, n_iter, step_size=eps / 4, generator=gen)
        result = AttackResult(x_adv)
    else:
        n_classes = int(model(x[:1]).shape[1])
        result = _autoattack(model, x, y, name, eps, n_iter, n_restarts, n_queries, seed, n_classes)
    check_perturbation(x, result.x_adv, eps)
    return result
