"""HPT and HPT-GPD (Fu et al., "Proxy Robustness in Vision Language Models is Effortlessly Transferable"): make a
CLIP's vision tower robust by distilling from a *vanilla* CLIP of another architecture (the proxy) instead of an
adversarially trained teacher.

Our reading of the summary (the paper's code was not reachable), stated on the page:
- HPT: each step makes adversarial images against the target itself (PGD on its zero-shot cross-entropy, as
  TeCoA's inner loop), and the target is trained so that its outputs on them match the **proxy's** outputs on the
  same images: KL(proxy || target) over the source classes' zero-shot logits. The proxy is what makes this work:
  it still classifies most of the target's adversarial images (proxy robustness, the transfer matrix), so its
  soft labels are a robust teacher that nobody trained adversarially. No labels enter the loss.
- GPD, two phases decoupled by their learning-rate schedules: a generalization-anchored warm-up (the lr rises
  linearly from 0; the HPT loss plus a KL term that holds the target's clean outputs to the original CLIP's), then
  the generalization-pulled HPT phase (a fresh cosine schedule from the peak; the HPT loss plus a KL term that
  pulls its clean outputs towards the *pivot*, the target as the warm-up left it). Without GPD (plain HPT): one
  warm-up + cosine schedule and the HPT loss alone, as every other fine-tune in the zoo.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from tqdm import tqdm

from . import attacks, config, data, training
from .training import CIFAR_MEAN, CIFAR_STD, TrainLog
from .zeroshot import ZeroShotClassifier, text_head


@dataclass(frozen=True)
class HptConfig:
    """HPT's fine-tuning of mini-clip's vision tower from a proxy CLIP, on the animal source split (l-inf eps on [0, 1])."""

    proxy: str = "mini-clip-p8"
    gpd: bool = False
    eps: float = 4 / 255
    pgd_steps: int = 2
    batch_size: int = 64
    steps: int = 200
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup: int = 10  # plain HPT's linear warm-up (as the other fine-tunes)
    temperature: float = 1.0  # on the zero-shot logits (scale 100) of both models
    gpd_warmup: int = 50  # GPD: steps of the generalization-anchored warm-up (phase 1)
    gpd_anchor: float = 1.0  # GPD phase 1: weight of KL(original || target) on clean images
    gpd_pull: float = 1.0  # GPD phase 2: weight of KL(pivot || target) on clean images
    eval_every: int = 50
    eval_n: int = 500
    seed: int = 0


HPT_FINETUNES: dict[str, HptConfig] = {"mini-hpt": HptConfig(), "mini-hpt-gpd": HptConfig(gpd=True)}


def distill(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the softened distributions, batch mean, times T^2 (Hinton et al.)."""
    return F.kl_div(F.log_softmax(student / temperature, -1), F.softmax(teacher / temperature, -1),
                    reduction="batchmean") * temperature**2


def learning_rate(cfg: HptConfig, step: int) -> tuple[float, int]:
    """(lr, phase) at a step: plain HPT one warm-up + cosine; GPD a linear warm-up, then a cosine of its own."""
    if not cfg.gpd:
        return training.cosine_lr(step, cfg.steps, cfg.warmup, cfg.lr), 2
    if step < cfg.gpd_warmup:
        return cfg.lr * (step + 1) / cfg.gpd_warmup, 1
    return training.cosine_lr(step - cfg.gpd_warmup, cfg.steps - cfg.gpd_warmup, 0, cfg.lr), 2


def check_config(cfg: HptConfig) -> None:
    if cfg.gpd and not 0 < cfg.gpd_warmup < cfg.steps:
        raise ValueError(f"gpd_warmup={cfg.gpd_warmup} must be in [1, steps={cfg.steps})")
    if cfg.temperature <= 0:
        raise ValueError(f"temperature={cfg.temperature} must be > 0")


def train_hpt(base_state: dict[str, torch.Tensor], proxy: CLIP, proxy_cfg: training.MiniClipConfig, cfg: HptConfig,
              name: str, stop_after: int | None = None) -> tuple[dict[str, torch.Tensor], TrainLog]:
    """Fine-tune mini-clip's vision tower by HPT (and GPD when cfg.gpd); returns the tower's state and the log."""
    check_config(cfg)
    clip_cfg = training.MiniClipConfig()
    config.setup(cfg.seed)
    clip = training.build_mini_clip(clip_cfg)
    clip.load_state_dict(base_state)
    clip.eval()
    proxy.eval()
    classes = data.MINI_DATASETS[data.FINETUNE_SOURCE].classes
    train = data.mini_dataset(data.FINETUNE_SOURCE, "train")
    probe = data.mini_dataset(data.FINETUNE_SOURCE, "test", n=cfg.eval_n, seed=cfg.seed + 1)
    head = text_head(clip, training.mini_tokenizer(clip_cfg), classes, data.CIFAR_TEMPLATES)
    proxy_head = text_head(proxy, training.mini_tokenizer(proxy_cfg), classes, data.CIFAR_TEMPLATES)
    original = clip.visual
    for module in (original, proxy):
        for p in module.parameters():
            p.requires_grad_(False)
    tuned = copy.deepcopy(original)
    for p in tuned.parameters():
        p.requires_grad_(True)
    # Zero-shot classifiers of [0, 1] images: the target being tuned, the original (GPD's anchor) and the proxy.
    target = ZeroShotClassifier(tuned, head, CIFAR_MEAN, CIFAR_STD, classes)
    anchor = ZeroShotClassifier(original, head, CIFAR_MEAN, CIFAR_STD, classes)
    teacher = ZeroShotClassifier(proxy.visual, proxy_head, CIFAR_MEAN, CIFAR_STD, classes)
    opt = training.adamw(list(tuned.named_parameters()), cfg.lr, cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(train), generator=gen)
    log, pivot = TrainLog(name), None
    start = time.perf_counter()
    for step in tqdm(range(training.n_steps(cfg.steps, stop_after)), desc=f"{name} fine-tuning", unit="step",
                     mininterval=10):
        idx = order[(step * cfg.batch_size) % len(order):][: cfg.batch_size]
        x, y = train.images[idx].float().div(255), train.labels[idx]
        lr, phase = learning_rate(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        if cfg.gpd and phase == 2 and pivot is None:
            pivot = copy.deepcopy(target).requires_grad_(False)  # the generalization pivot: the warm-up's end
        inner = lambda z: F.cross_entropy(target(z), y, reduction="sum")  # noqa: E731
        x_adv = attacks.pgd_maximize(inner, x, cfg.eps, cfg.pgd_steps, generator=gen)
        with torch.no_grad():
            soft = teacher(x_adv)
        loss = distill(target(x_adv), soft, cfg.temperature)
        if cfg.gpd:
            weight, reference = (cfg.gpd_anchor, anchor) if phase == 1 else (cfg.gpd_pull, pivot)
            with torch.no_grad():
                ref = reference(x)
            loss = loss + weight * distill(target(x), ref, cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.losses.append(float(loss.detach()))
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            log.checkpoints.append({"step": step + 1, "images": (step + 1) * cfg.batch_size, "loss": float(loss.detach()),
                                    "probe_acc": training.zero_shot_accuracy(target, probe),
                                    "seconds": time.perf_counter() - start})
    log.seconds = time.perf_counter() - start
    return tuned.state_dict(), log
