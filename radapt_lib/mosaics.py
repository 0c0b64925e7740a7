"""The mini retrieval set: 2 x 2 mosaics of CIFAR-10 images, each captioned with its four objects in place.

Flickr30k's captions describe one photo among many of the same kind; a caption per CIFAR class would not (Recall@1
would be zero-shot accuracy under another name). A mosaic's caption ("top: cat and ship. bottom: dog and truck.")
names four objects and where they are, so among n test mosaics the right caption differs from the others by which
objects are where, not by one class: retrieving it is an instance-level match, as in Flickr30k. Each cell is a CIFAR
image at half size (16 x 16), so that a mosaic has the 32 px of every mini image.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import config, data, training
from .zeroshot import Normalize

CELL = 16
CELLS = ((0, 0), (0, CELL), (CELL, 0), (CELL, CELL))  # reading order: top left, top right, bottom left, bottom right
CAPTION = "top: {} and {}. bottom: {} and {}."


def caption(objects: torch.Tensor) -> str:
    """The caption of one mosaic from its four CIFAR-10 labels in reading order."""
    return CAPTION.format(*(data.CIFAR10_CLASSES[int(k)] for k in objects))


def compose(images: torch.Tensor) -> torch.Tensor:
    """N x 4 x 3 x 32 x 32 images in [0, 1] -> N x 3 x 32 x 32 mosaics (each image halved by 2 x 2 averaging)."""
    n = images.shape[0]
    small = F.avg_pool2d(images.flatten(0, 1), 2).view(n, 4, 3, CELL, CELL)
    out = images.new_zeros(n, 3, 2 * CELL, 2 * CELL)
    for k, (row, col) in enumerate(CELLS):
        out[:, :, row:row + CELL, col:col + CELL] = small[:, k]
    return out


def random_mosaics(pool: data.ImageSet, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n training mosaics of images drawn at random from `pool` (each flipped at random): images, N x 4 labels."""
    idx = torch.randint(0, len(pool), (n, 4), generator=generator)
    cells = pool.images[idx].float().div(255)
    flip = torch.rand(n, 4, generator=generator) < 0.5
    cells[flip] = cells[flip].flip(-1)
    return compose(cells), pool.labels[idx]


def test_mosaics(n: int, seed: int = 0, split: str = "test") -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """n mosaics of distinct CIFAR-10 `split` images with n distinct captions (uint8 images, N x 4 labels, captions).

    Images are taken four at a time from a seeded permutation; a mosaic whose caption another already has is
    skipped, so that every caption names exactly one image (Recall@k is then well defined without ties).
    """
    n = data.check_n(n)
    base = data.load_cifar10(split)
    order = data.seeded_subset(len(base), None, seed).view(-1, 4)
    chosen, captions, seen = [], [], set()
    for group in order:
        text = caption(base.labels[group])
        if text not in seen:
            chosen.append(group)
            captions.append(text)
            seen.add(text)
        if len(chosen) == n:
            break
    if len(chosen) < n:
        raise ValueError(f"n={n}: CIFAR-10 {split} makes only {len(chosen)} mosaics with distinct captions")
    idx = torch.stack(chosen)
    mosaics = compose(base.images[idx].float().div(255))
    return (mosaics * 255).round().to(torch.uint8), base.labels[idx], captions


def vocabulary() -> list[str]:
    """Every caption word the mosaics use: the template's and the ten class names (for the token rows a release keeps)."""
    return [CAPTION.format(*(data.CIFAR10_CLASSES[(k + i) % 10] for i in range(4))) for k in range(10)]


# --- the CLIP that reads them (zoo: mini-clip-mosaic) ----------------------------------------

@dataclass(frozen=True)
class MosaicClipConfig:
    """mini-clip fine-tuned, both towers, on mosaics with their captions; half of every batch stays single CIFAR
    images with CLIP's templates, so that the model still classifies (its FARE fine-tune and R-Adapt+ anchor are
    trained on single images, as the paper's are on ImageNet)."""

    steps: int = 360  # ~13 min on the 2-core EPYC here (issue 12: a new model trains in at most 15)
    batch_size: int = 256  # half mosaics, half single images
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 20
    eval_every: int = 50
    eval_n: int = 500
    seed: int = 0


def mosaic_keys(objects: torch.Tensor) -> torch.Tensor:
    """One integer per caption (10 + the four labels as base-10 digits): equal keys, equal captions."""
    return 10 + (objects * 10 ** torch.arange(4)).sum(1)


def probe_recall_at_1(clip, tokenizer, images: torch.Tensor, captions: list[str]) -> float:
    """Image -> text Recall@1 (%) of mosaics among their own captions (the training log's probe)."""
    norm = Normalize(training.CIFAR_MEAN, training.CIFAR_STD)
    with torch.no_grad():
        img = F.normalize(clip.visual(norm(images.float().div(255))), dim=-1)
        txt = F.normalize(clip.encode_text(tokenizer(captions)), dim=-1)
    return float((img @ txt.T).argmax(1).eq(torch.arange(len(captions))).float().mean() * 100)


def train_mosaic_clip(base_state: dict[str, torch.Tensor], cfg: MosaicClipConfig = MosaicClipConfig(),
                      stop_after: int | None = None) -> tuple[dict[str, torch.Tensor], training.TrainLog]:
    """Contrastive fine-tuning of a mini CLIP on mosaics + single images (`training.contrastive_loss`)."""
    config.setup(cfg.seed)
    clip_cfg = training.MiniClipConfig()
    clip = training.build_mini_clip(clip_cfg)
    clip.load_state_dict(base_state)
    tokenizer = training.mini_tokenizer(clip_cfg)
    train = data.load_cifar10("train")
    probe_images, _, probe_captions = test_mosaics(cfg.eval_n, seed=cfg.seed + 1)
    templates = len(data.CIFAR_TEMPLATES)
    singles = tokenizer([t.format(c) for c in data.CIFAR10_CLASSES for t in data.CIFAR_TEMPLATES])
    opt = training.adamw(list(clip.named_parameters()), cfg.lr, cfg.weight_decay)
    norm = Normalize(training.CIFAR_MEAN, training.CIFAR_STD)
    gen = torch.Generator().manual_seed(cfg.seed)
    half = cfg.batch_size // 2
    log = training.TrainLog("mini-clip-mosaic")
    start = time.perf_counter()
    for step in tqdm(range(training.n_steps(cfg.steps, stop_after)), desc="mini-clip-mosaic fine-tuning", unit="step",
                     mininterval=10):
        mosaics, objects = random_mosaics(train, half, gen)
        single = torch.randint(0, len(train), (half,), generator=gen)
        x = train.images[single].float().div(255)
        flip = torch.rand(half, generator=gen) < 0.5
        x[flip] = x[flip].flip(-1)
        y = train.labels[single]
        tmpl = torch.randint(0, templates, (half,), generator=gen)
        tokens = torch.cat([tokenizer([caption(o) for o in objects]), singles[y * templates + tmpl]])
        for group in opt.param_groups:
            group["lr"] = training.cosine_lr(step, cfg.steps, cfg.warmup, cfg.lr)
        clip.train()
        loss = training.contrastive_loss(clip, norm(torch.cat([mosaics, x])), tokens, torch.cat([mosaic_keys(objects), y]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.losses.append(float(loss.detach()))
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            clip.eval()
            log.checkpoints.append({"step": step + 1, "images": (step + 1) * cfg.batch_size, "loss": float(loss.detach()),
                                    "probe_acc": probe_recall_at_1(clip, tokenizer, probe_images, probe_captions),
                                    "seconds": time.perf_counter() - start})
    log.seconds = time.perf_counter() - start
    clip.eval()
    if stop_after is None:
        log.final = training.cifar10_zero_shot(clip, clip_cfg)
    return clip.state_dict(), log
