"""R-Adapt+ (Eq. 8): the data-driven anchor, its optimisation, its cache and its release.

* `AnchorTrainConfig` / `train_anchor`: optimise block 1's anchor A by cross-entropy on adversarial
  examples, the CLIP frozen and the GIF in front. The paper states neither the inner attack nor the
  optimiser, and reads two ways: `examples="minmax"` regenerates PGD examples against the defended model
  at every step (a min-max); `examples="fixed"` is App. E's recipe, a fixed set made once against the
  undefended encoder, which A then fits. A constant learning rate makes a run to E epochs pass through
  every E' < E; every epoch is cached, and a longer run resumes from the longest cached shorter one.
* Released anchors (`load_or_train`): the anchors that pages read are committed in
  `zoo/anchors.safetensors` with records in the zoo manifest, like the zoo's weights, so pages do not
  train them. A record is found by its release key, which hashes everything that made the anchor.
  A record with the same origin and config but another key is stale (code, model or images changed):
  a `ZooError` names the command that re-releases. An anchor never released (a page run with new
  parameters) trains and caches as before, unless RADAPT_NO_TRAINING=1 (CI) makes that an error too.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F

from . import attacks, cache, config, data, zoo
from .data import ImageSet
from .defense import defend, first_block, tower_of, white_anchor
from .zeroshot import ZeroShotClassifier

ANCHOR_FILE = "anchors.safetensors"
RELEASE = "scripts/train_zoo.sh --anchors"
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
        path = cache.path_for("anchors", anchor_spec(classifier, images, run.config))
        if not path.exists():
            cache.save_atomic({"spec": anchor_spec(classifier, images, run.config), "value": run}, path)

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


# --- released anchors ----------------------------------------------------------------------------

def mini_origin(model: str = "mini-clip", dataset: str = "animals", seed: int = 0) -> dict:
    """A mini anchor's origin: the frozen model's registry name and the seeded train split it fits."""
    return {"model": model, "dataset": dataset, "split": "train", "seed": seed}


def inputs(origin: dict, n_images: int) -> tuple[ZeroShotClassifier, ImageSet]:
    """The frozen classifier and the training images an origin names (mini profile)."""
    from . import models

    images = data.mini_dataset(origin["dataset"], origin["split"], n=n_images, seed=origin["seed"])
    return models.classifier(models.load_model(origin["model"]), images.classnames), images


def identity(origin: dict, cfg: AnchorTrainConfig) -> str:
    return json.dumps({"origin": origin, "config": asdict(cfg)}, sort_keys=True)


def anchor_records() -> dict[str, dict]:
    return zoo.read_manifest().get("anchors", {})


@functools.cache
def _released_tensors(sha256: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = zoo.zoo_dir() / ANCHOR_FILE
    if not path.exists():
        raise zoo.ZooError(f"{path} is missing: restore it with `git checkout -- zoo/` or re-release with `{RELEASE}`")
    actual = zoo.file_sha256(path)
    if actual != sha256:
        raise zoo.ZooError(f"{path} is corrupt or was edited (sha256 {actual[:12]}... != manifest {sha256[:12]}...): "
                           f"restore it with `git checkout -- zoo/` or re-release with `{RELEASE}`")
    return load_file(str(path))


def release_key(origin: dict, cfg: AnchorTrainConfig, images: ImageSet) -> str:
    """A released anchor's key: what made it, by content that every machine computes alike (the frozen model's
    released file hash, not its text head, whose last float bits depend on the CPU)."""
    from .evaluation import fingerprint

    return cache.key_of({"identity": identity(origin, cfg), "weights": zoo.entry(origin["model"])["sha256"],
                         "images": fingerprint(images.images), "labels": fingerprint(images.labels),
                         "threads": config.CPU_THREADS, **cache.code_spec("plus", "defense", "attacks", "zeroshot")})


def released(key: str, origin: dict, cfg: AnchorTrainConfig) -> AnchorRun | None:
    """The released anchor with this release key; None if none was released for this origin and config."""
    records = anchor_records()
    if key in records:
        r = records[key]
        anchor = _released_tensors(zoo.read_manifest()["anchor_file"]["sha256"])[key].clone()
        return AnchorRun(anchor, AnchorTrainConfig(**r["config"]), list(r["losses"]), r["seconds"], r["images_seen"],
                         {}, origin)
    stale = [k for k, r in records.items() if r["identity"] == identity(origin, cfg)]
    if stale:
        raise zoo.ZooError(f"the released R-Adapt+ anchor for {origin['model']} on {origin['dataset']} ({cfg}) was made by "
                           f"other code, weights or images (key {stale[0]}, now {key}): re-release the anchors with `{RELEASE}`")
    return None


def load_or_train(origin: dict, cfg: AnchorTrainConfig, progress: bool = True) -> AnchorRun:
    """The released anchor for (origin, cfg) if there is one, else trained here (cached)."""
    classifier, images = inputs(origin, check_config(cfg).n_images)
    run = released(release_key(origin, cfg, images), origin, cfg)
    if run is not None:
        return run
    if os.environ.get("RADAPT_NO_TRAINING") == "1":
        raise zoo.ZooError(f"the R-Adapt+ anchor {cfg} is not released and RADAPT_NO_TRAINING=1 forbids training it: "
                           f"build the book, then release what it trained with `{RELEASE} --from-cache`")
    return train_anchor(classifier, images, cfg, progress, origin)


def cached_origins() -> list[tuple[dict, AnchorTrainConfig]]:
    """(origin, config) of every anchor in the local cache that was trained from a named origin."""
    found = {}
    for path in sorted((config.cache_dir() / "anchors").glob("*.pt")):
        try:
            run = cache.load_checked(path)["value"]
        except cache.CorruptCacheError:
            continue
        if getattr(run, "origin", None):
            found[identity(run.origin, run.config)] = (run.origin, run.config)
    return list(found.values())


def release_anchors(pairs: list[tuple[dict, AnchorTrainConfig]]) -> list[dict]:
    """Train (or take from the cache) each (origin, config); write zoo/anchors.safetensors and the manifest's records.

    Returns one summary row per anchor, saying whether it is bit-identical to the one released before.
    """
    old = {r["identity"]: r for r in anchor_records().values()}
    tensors, records, rows = {}, {}, []
    for origin, cfg in sorted(pairs, key=lambda p: -p[1].epochs):  # longest first: shorter epochs become cache hits
        classifier, images = inputs(origin, cfg.n_images)
        run = train_anchor(classifier, images, cfg, progress=True, origin=origin)
        key = release_key(origin, cfg, images)
        sha = zoo.state_sha256({"anchor": run.anchor})
        tensors[key] = run.anchor
        records[key] = {"identity": identity(origin, cfg), "origin": origin, "config": asdict(cfg), "losses": run.losses,
                        "seconds": run.seconds, "images_seen": run.images_seen, "sha256": sha}
        before = old.get(identity(origin, cfg))
        rows.append({"key": key, "model": origin["model"], "n_images": cfg.n_images, "epochs": cfg.epochs,
                     "examples": cfg.examples, "pgd_steps": cfg.pgd_steps, "lr": cfg.lr, "d0_224": cfg.d0_224,
                     "seed": cfg.seed, "last loss": round(run.losses[-1], 4), "seconds": round(run.seconds, 1),
                     "vs released": "new" if before is None else ("bit-identical" if before["sha256"] == sha else "changed")})
    sha = zoo.save_weights(tensors, zoo.zoo_dir() / ANCHOR_FILE)
    zoo.write_manifest(anchors=records, anchor_file={"file": ANCHOR_FILE, "sha256": sha})
    _released_tensors.cache_clear()
    return rows
