"""Training the mini LVLMs (pages never call this: they load the release, `lvlm.release`).

LLaVA's recipe with its two stages merged: the projector(s) and the LM are trained together on generated
captions and question-answer pairs, the vision tower frozen. Because the tower is frozen and the images are
not augmented, its outputs are computed once for the training images (the run then costs seconds per
hundred steps).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import config, data, training, zoo
from ..zeroshot import text_head
from .protocol import default_words, names_object
from .mini_vlm import ANSWER, BOS, CAPTION_TEMPLATES, EOS, MINI_VLMS, PAD, TASKS, MiniVLM, MiniVLMConfig, prompt_text, target_text


@dataclass
class VlmTrainLog:
    name: str
    checkpoints: list[dict[str, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    final: dict[str, float] = field(default_factory=dict)


def check_name(name: str) -> str:
    if name not in MINI_VLMS:
        raise ValueError(f"unknown mini LVLM {name!r}: use one of {tuple(MINI_VLMS)}")
    return name


def concept_table(clip: torch.nn.Module, tower: str) -> torch.Tensor:
    """(10 x embed_dim) unit text embeddings of the CIFAR-10 class names (the zero-shot head's templates)."""
    tokenizer = training.mini_tokenizer(training.clip_config(tower))
    return text_head(clip, tokenizer, data.CIFAR10_CLASSES, data.CIFAR_TEMPLATES).T.contiguous()


def untrained(name: str) -> MiniVLM:
    """The mini LVLM around its released, frozen tower, projector(s) and LM freshly initialised (seeded)."""
    cfg = MINI_VLMS[check_name(name)]
    clip = zoo.build(cfg.tower)
    concepts = concept_table(clip, cfg.tower)
    torch.manual_seed(cfg.seed)
    return MiniVLM(name, clip.visual, training.CIFAR_MEAN, training.CIFAR_STD, concepts, cfg).eval()


@torch.no_grad()
def precompute(model: MiniVLM, images: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The frozen tower's (tokens, DeepStack taps) for uint8 images, in batches."""
    outs = [model.vision_tokens(images[lo:lo + batch].float().div(255)) for lo in range(0, len(images), batch)]
    return torch.cat([o[0] for o in outs]), [torch.cat([o[1][k] for o in outs]) for k in range(len(outs[0][1]))]


def text_batch(model: MiniVLM, labels: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (right-padded) and LM targets (-100 outside the answer) for one random task per image."""
    tasks = torch.randint(0, len(TASKS), (len(labels),), generator=gen)
    templates = torch.randint(0, len(CAPTION_TEMPLATES), (len(labels),), generator=gen)
    rows, targets = [], []
    for y, t, k in zip(labels.tolist(), tasks.tolist(), templates.tolist()):
        prompt = model.prompt_ids(prompt_text(t))
        answer = [*model.tokenizer.encode(target_text(t, data.CIFAR10_CLASSES[y], k)), EOS]
        rows.append(prompt + answer)
        targets.append([-100] * len(prompt) + answer)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD)
    tgt = torch.full((len(rows), width), -100)
    for i, (r, t) in enumerate(zip(rows, targets)):
        ids[i, :len(r)], tgt[i, :len(t)] = torch.tensor(r), torch.tensor(t)
    return ids, tgt


def lm_loss(model: MiniVLM, tokens: torch.Tensor, taps: list[torch.Tensor], ids: torch.Tensor,
            targets: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on the answer tokens (causal: right padding never reaches them)."""
    visual, extra = model.project(tokens, taps)
    logits = model.logits(visual, extra, ids)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets[:, 1:].reshape(-1))


def caption_accuracy(model: MiniVLM, images: data.ImageSet) -> float:
    """% of test images whose caption names their class (the probe printed while training)."""
    x = images.images.float().div(255)
    captions = model.answer(x, [prompt_text(0)] * len(x))
    objects = [data.CIFAR10_CLASSES[y] for y in images.labels.tolist()]
    hits = [names_object(c, default_words(o)) for o, c in zip(objects, captions)]
    return 100.0 * sum(hits) / len(hits)


def trainable_state(model: MiniVLM) -> dict[str, torch.Tensor]:
    """What the release stores: everything but the frozen tower and the text-derived concepts (the tower's CLIP has them)."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("visual.") and k != "concepts"}


def train_mini_vlm(name: str, stop_after: int | None = None) -> tuple[dict[str, torch.Tensor], VlmTrainLog]:
    cfg: MiniVLMConfig = MINI_VLMS[check_name(name)]
    config.setup(cfg.seed)
    model = untrained(name)
    train = data.load_cifar10("train")
    gen = torch.Generator().manual_seed(cfg.seed)
    pick = torch.randperm(len(train), generator=gen)[:cfg.n_images]
    labels = train.labels[pick]
    start = time.perf_counter()
    tokens, taps = precompute(model, train.images[pick])
    probe = data.mini_dataset("cifar10", "test", n=cfg.eval_n, seed=cfg.seed + 1)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = training.adamw(params, cfg.lr, cfg.weight_decay)
    log = VlmTrainLog(name)
    steps = training.n_steps(cfg.steps, stop_after)
    bar = tqdm(range(steps), desc=f"{name} training", unit="step", mininterval=10)
    for step in bar:
        idx = torch.randint(0, cfg.n_images, (cfg.batch_size,), generator=gen)
        ids, targets = text_batch(model, labels[idx], gen)
        for group in opt.param_groups:
            group["lr"] = training.cosine_lr(step, cfg.steps, cfg.warmup, cfg.lr)
        model.train()
        loss = lm_loss(model, tokens[idx], [t[idx] for t in taps], ids, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.losses.append(float(loss.detach()))
        if (step + 1) % cfg.eval_every == 0 or step + 1 == steps:
            model.eval()
            log.checkpoints.append({"step": step + 1, "loss": log.losses[-1], "probe_caption_acc": caption_accuracy(model, probe),
                                    "seconds": time.perf_counter() - start})
            bar.set_postfix(loss=f"{log.losses[-1]:.3f}", probe=f"{log.checkpoints[-1]['probe_caption_acc']:.1f}%")
    model.eval()
    log.seconds = time.perf_counter() - start
    if stop_after is None:
        log.final = {"caption_acc_cifar10_test": caption_accuracy(model, data.mini_dataset("cifar10", "test"))}
    return trainable_state(model), log
