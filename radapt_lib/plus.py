"""R-Adapt+ (Eq. 8): the data-driven anchor, its optimisation and its cache (the release: `anchor_zoo`).

* `AnchorTrainConfig` / `train_anchor`: optimise block 1's anchor A by cross-entropy on adversarial
  examples, the CLIP frozen and the GIF in front. The paper states neither the inner attack nor the
  optimiser, and reads two ways: `examples="minmax"` regenerates PGD examples against the defended model
  at every step (a min-max); `examples="fixed"` is App. E's recipe, a fixed set made once against the
  undefended encoder, which A then fits. A constant learning rate makes a run to E epochs pass through
  every E' < E; every epoch is cached, and a longer run resumes from the longest cached shorter one.

The cache and the release key hash this module's code, not the release's (`anchor_zoo`), so editing how
anchors are released does not make the trained ones stale.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F

from . import attacks, cache, config
from .data import ImageSet
from .defense import defend, first_block, tower_of, white_anchor
from .zeroshot import ZeroShotClassifier

EXAMPLES = ("minmax", "fixed")


@dataclass(frozen=True)
class AnchorTrainConfig:
    """R-Adapt+ anchor optimisation (Adam on A only).

    Paper: 2k ImageNet images, 10 epochs, eps 4/255, alpha 0.8, beta 0.2, D0 40 (optimiser and inner
    attack unstated). `pgd_steps`: the inner PGD's steps (step size 2.5 eps / steps, random start).
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
    examples: str = "minmax"


@dataclass
class AnchorRun:
    anchor: torch.Tensor
    config: AnchorTrainConfig
    losses: list[float] = field(default_factory=list)  # mean adversarial CE per epoch
    seconds: float = 0.0  # wall-clock of all epochs (including those resumed from)
    images_seen: int = 0  # clean images x epochs
    state: dict = field(default_factory=dict)  # optimiser and generator state, to resume
    origin: dict | None = None  # where the frozen model and images came from (for the release)


def check_config(cfg: AnchorTrainConfig) -> AnchorTrainConfig:
    if cfg.examples not in EXAMPLES:
        raise ValueError(f"unknown anchor examples {cfg.examples!r}: use one of {EXAMPLES}")
    if cfg.epochs < 1 or cfg.n_images < 1 or cfg.pgd_steps < 1:
        raise ValueError(f"anchor training needs epochs, n_images and pgd_steps >= 1, got {cfg}")
    return cfg


def anchor_spec(classifier: ZeroShotClassifier, images: ImageSet, cfg: AnchorTrainConfig) -> dict:
    from .evaluation import fingerprint

    return {"model": fingerprint(classifier), "images": fingerprint(images.images), "labels": fingerprint(images.labels),
            "config": asdict(cfg), "threads": config.CPU_THREADS, **cache.code_spec("plus", "defense", "attacks", "zeroshot")}


def fixed_examples(classifier: ZeroShotClassifier, images: ImageSet, cfg: AnchorTrainConfig) -> torch.Tensor:
    """App. E: PGD examples made once against the undefended encoder (no filter, no anchor)."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    device = classifier.mean.device
    out = []
    for lo in range(0, len(images), cfg.batch_size):
        x = images.images[lo:lo + cfg.batch_size].float().div(255).to(device)
        y = images.labels[lo:lo + cfg.batch_size].to(device)
        out.append(attacks.pgd_maximize(lambda z: F.cross_entropy(classifier(z), y, reduction="sum"), x, cfg.eps,
                                        cfg.pgd_steps, generator=gen))
    return torch.cat(out)


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
    fixed = fixed_examples(classifier, images, cfg) if cfg.examples == "fixed" else None
    n = len(images)
    for _ in tqdm(range(done, cfg.epochs), desc="R-Adapt+ anchor", unit="epoch", disable=not progress, leave=False):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for lo in range(0, n, cfg.batch_size):
            idx = order[lo:lo + cfg.batch_size]
            y = images.labels[idx].to(device)
            if fixed is not None:
                x_adv = fixed[idx.to(device)]
            else:
                x = images.images[idx].float().div(255).to(device)
                x_adv = attacks.pgd_maximize(lambda z: F.cross_entropy(model(z), y, reduction="sum"), x, cfg.eps,
                                             cfg.pgd_steps, generator=gen)
            loss = F.cross_entropy(model(x_adv), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / n)
        run = AnchorRun(fra.anchor.detach().clone(), replace(cfg, epochs=len(losses)), list(losses),
                        seconds + time.perf_counter() - t0, n * len(losses),
                        {"optimizer": copy.deepcopy(opt.state_dict()), "generator": gen.get_state()})
        if on_epoch is not None and len(losses) < cfg.epochs:
            on_epoch(run)
    return run


def train_anchor(classifier: ZeroShotClassifier, images: ImageSet, cfg: AnchorTrainConfig = AnchorTrainConfig(),
                 progress: bool = True, origin: dict | None = None) -> AnchorRun:
    """Eq. 8: the anchor trained on the first cfg.n_images `images` against the defended classifier (cached).

    The classifier (standard CLIP with the training classes' head) stays frozen; A starts from its
    white response. Every epoch is cached; a longer run resumes from the longest cached shorter one.
    """
    config.setup(cfg.seed)
    check_config(cfg)
    if len(images) < cfg.n_images:
        raise ValueError(f"train_anchor needs {cfg.n_images} images, got {len(images)}")
    images = ImageSet(images.images[:cfg.n_images], images.labels[:cfg.n_images], images.classnames, images.source)

    def save(run: AnchorRun) -> None:
        run.origin = origin
        spec = anchor_spec(classifier, images, run.config)
        path = cache.path_for("anchors", spec)
        if not path.exists():
            cache.save_atomic({"spec": spec, "value": run}, path)

    def compute() -> AnchorRun:
        start = None
        for shorter in range(cfg.epochs - 1, 0, -1):
            path = cache.path_for("anchors", anchor_spec(classifier, images, replace(cfg, epochs=shorter)))
            if path.exists():
                try:
                    start = cache.load_checked(path)["value"]
                    break
                except cache.CorruptCacheError:
                    continue
        run = _train_epochs(classifier, images, cfg, start, progress, save)
        run.origin = origin
        return run

    return cache.cached("anchors", anchor_spec(classifier, images, cfg), compute)


def seconds_per_batch(classifier: ZeroShotClassifier, images: ImageSet, cfg: AnchorTrainConfig, batches: int = 3) -> float:
    """Wall-clock of one optimisation step of cfg, from a short uncached run here (to compare costs on one machine)."""
    n = min(len(images), batches * cfg.batch_size)
    short = replace(cfg, n_images=n, epochs=1)
    run = _train_epochs(classifier, ImageSet(images.images[:n], images.labels[:n], images.classnames, images.source),
                        short, None, progress=False)
    return run.seconds / -(-n // cfg.batch_size)


def anchor_loss(classifier: ZeroShotClassifier, anchor: torch.Tensor, images: ImageSet, cfg: AnchorTrainConfig,
                seed: int = 0) -> float:
    """Mean CE of the defended model on PGD examples (cfg's eps and steps): the quantity Eq. 8 minimises."""
    model = defend(classifier, anchor, cfg.alpha, cfg.beta, cfg.d0_224)
    gen = torch.Generator().manual_seed(seed)
    x, y = images.images.float().div(255).to(model.mean.device), images.labels.to(model.mean.device)
    x_adv = attacks.pgd_maximize(lambda z: F.cross_entropy(model(z), y, reduction="sum"), x, cfg.eps, cfg.pgd_steps,
                                 generator=gen)
    with torch.no_grad():
        return float(F.cross_entropy(model(x_adv), y))
