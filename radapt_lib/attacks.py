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


# Croce & Hein's standard AutoAttack (l-inf): APGD-CE (1 restart), APGD-T and FAB-T over 9 target
# classes, 100 iterations each, Square with 5000 queries. "autoattack" means exactly this unless a
# caller overrides a value explicitly; the override is then stated in the result's warnings.
AUTOATTACK_STANDARD = {"n_iter": 100, "n_restarts": 1, "n_target_classes": 9, "n_queries": 5000}
# Defaults of the single attacks (PGD, CW, APGD-CE, ...), which pages name with their iterations.
SINGLE_DEFAULTS = {"n_iter": 10, "n_restarts": 1, "n_queries": 1000}


def resolve_settings(name: str, n_iter: int | None = None, n_restarts: int | None = None,
                     n_queries: int | None = None, n_classes: int | None = None) -> dict:
    """The settings an attack runs with: the caller's values, else the attack's own defaults.

    For "autoattack" the defaults are the standard version's; `overrides` lists what a caller changed.
    """
    given = {"n_iter": n_iter, "n_restarts": n_restarts, "n_queries": n_queries}
    for key, value in given.items():
        if value is not None and int(value) < 1:
            raise ValueError(f"{key}={value}: attack settings must be >= 1")
    base = AUTOATTACK_STANDARD if check_attack(name) == "autoattack" else SINGLE_DEFAULTS
    out = {k: int(v) if v is not None else base[k] for k, v in given.items()}
    targets = AUTOATTACK_STANDARD["n_target_classes"]
    out["n_target_classes"] = max(1, min(targets, n_classes - 1)) if n_classes else targets
    out["overrides"] = sorted(k for k, v in given.items() if v is not None and name == "autoattack"
                              and int(v) != AUTOATTACK_STANDARD[k])
    return out


def describe(name: str, n_iter: int | None = None, n_restarts: int | None = None, n_queries: int | None = None,
             n_classes: int | None = None) -> str:
    """The settings an attack actually runs with, in words, for a page's protocol line."""
    s = resolve_settings(name, n_iter, n_restarts, n_queries, n_classes)
    if name == "autoattack":
        kind = "standard" if not s["overrides"] else "NON-STANDARD (" + ", ".join(
            f"{k}={s[k]} instead of {AUTOATTACK_STANDARD[k]}" for k in s["overrides"]) + ")"
        return (f"AutoAttack {kind}: APGD-CE, APGD-T and FAB-T ({s['n_target_classes']} target classes), {s['n_iter']} "
                f"iterations, {s['n_restarts']} restart(s); Square {s['n_queries']} queries")
    if name == "square":
        return f"square, {s['n_queries']} queries, {s['n_restarts']} restart(s)"
    return f"{name}, {s['n_iter']} iterations, {s['n_restarts']} restart(s)"


def _autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: str, eps: float, settings: dict,
                seed: int) -> AttackResult:
    from pyautoattack import AutoAttack

    device = x.device
    if attack == "autoattack":
        adversary = AutoAttack(model, eps=eps, norm="Linf", version="standard", seed=seed, device=device)
    else:
        adversary = AutoAttack(model, eps=eps, norm="Linf", version="custom", attacks=[attack], seed=seed, device=device)
    adversary.verbose = False
    configure_autoattack(adversary, settings)
    logger = logging.getLogger("auto-attack")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=x.shape[0])
    finally:
        logger.removeHandler(handler)
    notes = [f"non-standard AutoAttack: {', '.join(f'{k}={settings[k]}' for k in settings['overrides'])}"] \
        if settings["overrides"] else []
    return AttackResult(x_adv.detach(), notes + handler.messages)


def configure_autoattack(adversary, settings: dict) -> None:
    """Set the iterations, restarts, targets and queries that reach pyautoattack's attack objects."""
    adversary.apgd_targeted.n_target_classes = settings["n_target_classes"]
    adversary.fab.n_target_classes = settings["n_target_classes"]
    for part in (adversary.apgd, adversary.apgd_targeted, adversary.fab):
        part.n_iter = settings["n_iter"]
    adversary.apgd.n_restarts = settings["n_restarts"]
    adversary.fab.n_restarts = settings["n_restarts"]
    adversary.square.n_queries = settings["n_queries"]


def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, eps: float, *, n_iter: int | None = None,
           n_restarts: int | None = None, n_queries: int | None = None, seed: int = 0) -> AttackResult:
    """Adversarial images for one batch, end-to-end through `model`, checked to stay in the eps-ball.

    Settings left None take the attack's defaults (`resolve_settings`): standard AutoAttack for "autoattack".
    """
    check_attack(name)
    eps = config.check_eps(eps)
    model.eval()
    x = x.detach()
    if eps == 0:
        return AttackResult(x.clone())
    if name in OWN_ATTACKS:
        steps = resolve_settings(name, n_iter)["n_iter"]
        gen = torch.Generator().manual_seed(seed)
        if name == "pgd":
            loss = lambda z: F.cross_entropy(model(z), y, reduction="sum")  # noqa: E731
            x_adv = pgd_maximize(loss, x, eps, steps, step_size=eps / 4, generator=gen)
        else:
            x_adv = pgd_maximize(lambda z: margin_loss(model(z), y), x, eps, steps, step_size=eps / 4, generator=gen)
        result = AttackResult(x_adv)
    else:
        n_classes = int(model(x[:1]).shape[1])
        settings = resolve_settings(name, n_iter, n_restarts, n_queries, n_classes)
        result = _autoattack(model, x, y, name, eps, settings, seed)
    check_perturbation(x, result.x_adv, eps)
    return result
