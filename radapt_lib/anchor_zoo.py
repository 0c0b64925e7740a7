"""Released R-Adapt+ anchors: the anchors that pages read, committed like the zoo's weights.

The anchors live in `zoo/anchors.safetensors`, with one record each in the zoo manifest's `anchors`
section (origin, config, per-epoch losses, training seconds, tensor sha256). A record is found by its
release key, which hashes everything that made the anchor: origin and config, the frozen model's
released file, the training images and the code of `plus` (training) and what it calls. A record with
the same origin and config but another key is stale: a `ZooError` names the command that re-releases.
An anchor never released (a page run with new parameters) trains and caches as before, unless
RADAPT_NO_TRAINING=1 (CI) makes that an error too.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict

import torch

from . import cache, config, data, models, zoo
from .data import ImageSet
from .plus import AnchorRun, AnchorTrainConfig, check_config, train_anchor

ANCHOR_FILE = "anchors.safetensors"
RELEASE = "scripts/train_zoo.sh --anchors"


def mini_origin(model: str = "mini-clip", dataset: str = "animals", seed: int = 0) -> dict:
    """A mini anchor's origin: the frozen model's registry name and the seeded train split it fits."""
    return {"model": model, "dataset": dataset, "split": "train", "seed": seed}


def origin_images(origin: dict, n_images: int) -> ImageSet:
    return data.mini_dataset(origin["dataset"], origin["split"], n=n_images, seed=origin["seed"])


def identity(origin: dict, cfg: AnchorTrainConfig) -> str:
    return json.dumps({"origin": origin, "config": asdict(cfg)}, sort_keys=True)


def anchor_records(manifest: dict | None = None) -> dict[str, dict]:
    return (manifest or zoo.read_manifest()).get("anchors", {})


@functools.cache
def _released_tensors(sha256: str) -> dict[str, torch.Tensor]:
    return zoo.read_checked(ANCHOR_FILE, sha256, RELEASE)


def release_key(origin: dict, cfg: AnchorTrainConfig, images: ImageSet) -> str:
    """A released anchor's key: what made it, by content that every machine computes alike (the frozen model's
    released file hash, not its text head, whose last float bits depend on the CPU)."""
    from .evaluation import fingerprint

    return cache.key_of({"identity": identity(origin, cfg), "weights": zoo.entry(origin["model"])["sha256"],
                         "images": fingerprint(images.images), "labels": fingerprint(images.labels),
                         "threads": config.CPU_THREADS, **cache.code_spec("plus", "defense", "attacks", "zeroshot")})


def released(key: str, origin: dict, cfg: AnchorTrainConfig) -> AnchorRun | None:
    """The released anchor with this release key; None if none was released for this origin and config."""
    manifest = zoo.read_manifest()
    records = anchor_records(manifest)
    if key in records:
        r = records[key]
        anchor = _released_tensors(manifest["anchor_file"]["sha256"])[key].clone()
        return AnchorRun(anchor, AnchorTrainConfig(**r["config"]), list(r["losses"]), r["seconds"], r["images_seen"],
                         {}, origin)
    stale = [k for k, r in records.items() if r["identity"] == identity(origin, cfg)]
    if stale:
        raise zoo.ZooError(f"the released R-Adapt+ anchor for {origin['model']} on {origin['dataset']} ({cfg}) was made by "
                           f"other code, weights or images (key {stale[0]}, now {key}): re-release the anchors with `{RELEASE}`")
    return None


def _train(origin: dict, cfg: AnchorTrainConfig, images: ImageSet, progress: bool,
           model: models.LoadedModel | None) -> AnchorRun:
    if model is None or model.name != origin["model"]:
        model = models.load_model(origin["model"])
    return train_anchor(models.classifier(model, images.classnames), images, cfg, progress, origin)


def load_or_train(origin: dict, cfg: AnchorTrainConfig, progress: bool = True,
                  model: models.LoadedModel | None = None) -> AnchorRun:
    """The released anchor for (origin, cfg) if there is one, else trained here (cached).

    `model`: the origin's frozen model if the caller holds it loaded (else it is loaded, only to train).
    """
    images = origin_images(origin, check_config(cfg).n_images)
    run = released(release_key(origin, cfg, images), origin, cfg)
    if run is not None:
        return run
    if os.environ.get("RADAPT_NO_TRAINING") == "1":
        raise zoo.ZooError(f"the R-Adapt+ anchor {cfg} is not released and RADAPT_NO_TRAINING=1 forbids training it: "
                           f"build the book, then release what it trained with `{RELEASE} --from-cache`")
    return _train(origin, cfg, images, progress, model)


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


def release_anchors(pairs: list[tuple[dict, AnchorTrainConfig]], keep_current: bool = False) -> list[dict]:
    """Train (or take from the cache) each (origin, config); write zoo/anchors.safetensors and the manifest's records.

    keep_current: a pair already released under its current key is kept as released, not retrained (to add anchors
    without retraining the others). Returns one summary row per anchor, saying whether it is bit-identical to the
    one released before.
    """
    old = {r["identity"]: r for r in anchor_records().values()}
    tensors, records, rows = {}, {}, []
    if keep_current:
        current = {key: r for key, r in anchor_records().items()
                   if key == release_key(r["origin"], AnchorTrainConfig(**r["config"]),
                                         origin_images(r["origin"], r["config"]["n_images"]))}
        wanted = {identity(o, c) for o, c in pairs}
        kept = {key: r for key, r in current.items() if r["identity"] in wanted}
        if kept:
            released_file = _released_tensors(zoo.read_manifest()["anchor_file"]["sha256"])
            tensors.update({key: released_file[key].clone() for key in kept})
            records.update(kept)
            rows += [{"key": key, "model": r["origin"]["model"], "vs released": "kept"} for key, r in kept.items()]
        pairs = [(o, c) for o, c in pairs if identity(o, c) not in {r["identity"] for r in kept.values()}]
    loaded: dict[str, models.LoadedModel] = {}
    for origin, cfg in sorted(pairs, key=lambda p: -p[1].epochs):  # longest first: shorter epochs become cache hits
        if origin["model"] not in loaded:  # one load per frozen model, not one per anchor
            loaded[origin["model"]] = models.load_model(origin["model"])
        model = loaded[origin["model"]]
        images = origin_images(origin, cfg.n_images)
        run = _train(origin, cfg, images, True, model)
        key = release_key(origin, cfg, images)
        sha = zoo.state_sha256({"anchor": run.anchor})
        tensors[key] = run.anchor
        records[key] = {"identity": identity(origin, cfg), "origin": origin, "config": asdict(cfg), "losses": run.losses,
                        "seconds": run.seconds, "cpu": zoo.cpu_name(), "threads": config.CPU_THREADS,
                        "images_seen": run.images_seen, "sha256": sha}
        before = old.get(identity(origin, cfg))
        rows.append({"key": key, "model": origin["model"], "n_images": cfg.n_images, "epochs": cfg.epochs,
                     "examples": cfg.examples, "pgd_steps": cfg.pgd_steps, "lr": cfg.lr, "d0_224": cfg.d0_224,
                     "seed": cfg.seed, "last loss": round(run.losses[-1], 4), "seconds": round(run.seconds, 1),
                     "vs released": "new" if before is None else ("bit-identical" if before["sha256"] == sha else "changed")})
    sha = zoo.save_weights(tensors, zoo.zoo_dir() / ANCHOR_FILE)
    zoo.write_manifest(anchors=records, anchor_file={"file": ANCHOR_FILE, "sha256": sha})
    _released_tensors.cache_clear()
    return rows
