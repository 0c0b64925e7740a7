"""The released MAA adapters: the slides' six variants and our lambda_adv check on mini-clip's frozen tower, in the
zoo like every trained tensor.

`zoo/maa-adapters.safetensors` holds every variant's adapter weights (keys `<variant>/<name>`); the manifest's `maa`
section records each variant's training spec (hash), tensor sha256, parameters, wall-clock and log, and the file's
sha256. Loading checks the spec hash against the current code and the file hash; a stale or corrupt release is a
`zoo.ZooError` naming `scripts/train_zoo.sh --maa`, which retrains and re-releases. Pages never train.
"""
from __future__ import annotations

import functools
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from . import config, data, maa, zoo
from .training import CIFAR_MEAN, CIFAR_STD

RETRAIN = "scripts/train_zoo.sh --maa"
FILE = "maa-adapters.safetensors"
TOWER = "mini-clip"  # the frozen tower every variant adapts
TRAIN_SET = {"dataset": "cifar10", "split": "train"}  # clean images; their corrupted copies are drawn per step


def training_spec(variant: str) -> dict[str, Any]:
    cfg = maa.variant(variant)
    return {"variant": variant, "config": asdict(cfg), "tower": zoo.spec_hash(TOWER), "train": TRAIN_SET,
            "threads": config.CPU_THREADS}


def _section() -> dict[str, Any]:
    return zoo.read_manifest().get("maa", {})


def entry(variant: str) -> dict[str, Any]:
    record = _section().get("variants", {}).get(variant)
    if record is None:
        raise zoo.ZooError(f"MAA variant {variant!r} is not released in {zoo.manifest_path()}: train and release it "
                           f"with `{RETRAIN}`")
    if record["spec_hash"] != zoo.hash_spec(training_spec(variant)):
        raise zoo.ZooError(f"released MAA variant {variant!r} was trained with spec {record['spec_hash']}, the code's is "
                           f"now {zoo.hash_spec(training_spec(variant))}: retrain and re-release with `{RETRAIN}`")
    return record


@functools.cache
def _tensors(sha256: str) -> dict[str, torch.Tensor]:
    return zoo.read_checked(FILE, sha256, RETRAIN)


def load_adapted(variant: str, visual: nn.Module) -> maa.AdaptedTower:
    """mini-clip's `visual` (frozen in place) with a released variant's adapters; eval mode."""
    record = entry(variant)
    tensors = _tensors(_section()["sha256"])
    state = {k.split("/", 1)[1]: t for k, t in tensors.items() if k.startswith(f"{variant}/")}
    if zoo.state_sha256(state) != record["state_sha256"]:
        raise zoo.ZooError(f"{FILE} holds other weights for {variant!r} than the manifest records: re-release with "
                           f"`{RETRAIN}`")
    return maa.load_adapted(visual, maa.variant(variant), state)


def train(variant: str) -> tuple[dict[str, torch.Tensor], Any]:
    clip = zoo.build(TOWER)
    images = data.load_cifar10(TRAIN_SET["split"]).images
    return maa.train_maa(clip.visual, maa.variant(variant), images, CIFAR_MEAN, CIFAR_STD, f"MAA {variant}")


def release(variants: list[str] | None = None) -> list[dict]:
    """Train the variants (default: all), keep the other released ones, write the file and the manifest section."""
    names = variants or list(maa.MAA_VARIANTS)
    section = _section()
    old = dict(section.get("variants", {}))
    tensors = {k: t for k, t in _tensors(section["sha256"]).items() if k.split("/", 1)[0] not in names} \
        if section.get("sha256") else {}
    records = {k: v for k, v in old.items() if k not in names}
    rows = []
    for name in names:
        state, log = train(name)
        tensors.update({f"{name}/{k}": t for k, t in state.items()})
        spec, cfg = training_spec(name), maa.variant(name)
        records[name] = {"spec_hash": zoo.hash_spec(spec), "spec": spec,
                         "state_sha256": zoo.state_sha256(state), "parameters": maa.adapter_parameters(state),
                         "steps": cfg.steps, "images_seen": cfg.steps * cfg.batch_size,
                         "seconds": round(log.seconds, 1), "minutes": round(log.seconds / 60, 2),
                         "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": zoo.cpu_name(),
                         "checkpoints": log.checkpoints}
        same = "new" if name not in old else ("bit-identical" if old[name]["state_sha256"] == records[name]["state_sha256"]
                                              else "changed")
        rows.append({"variant": name, "minutes": records[name]["minutes"], "parameters": records[name]["parameters"],
                     "vs released": same})
    sha = zoo.save_weights(tensors, zoo.zoo_dir() / FILE)
    ordered = {k: records[k] for k in maa.MAA_VARIANTS if k in records}
    zoo.write_manifest(maa={"file": FILE, "sha256": sha, "variants": ordered})
    return rows


def release_frame():
    """The released variants: paths, adversarial loss, parameters, steps, images and minutes."""
    import pandas as pd

    rows = []
    for name in maa.MAA_VARIANTS:
        rec, cfg = entry(name), maa.variant(name)
        rows.append({"variant": name, "paths": "+".join(cfg.paths), "adversarial loss": "yes" if cfg.adv else "no",
                     "parameters": rec["parameters"], "steps": rec["steps"], "images seen": rec["images_seen"],
                     "minutes (release)": rec["minutes"]})
    return pd.DataFrame(rows).set_index("variant")
