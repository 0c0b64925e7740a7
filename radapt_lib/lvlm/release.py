"""The released mini LVLMs and their R-Adapt+ anchors, in the zoo like every other trained tensor.

* `zoo/<name>.safetensors`: a mini LVLM's projector(s) and LM (its frozen tower is a released CLIP's, not copied);
  the manifest's `lvlms` section records its training spec (hash), the tower's file sha256, sha256, time and log.
* `zoo/lvlm-anchors.safetensors`: the R-Adapt+ anchors of Table 5 / 11's settings, one per (LVLM, eps); the
  manifest's `lvlm_anchors` section records each one's config, spec hash, losses, seconds and tensor sha256.

Loading checks the spec hash against the current code and the file hashes (a `zoo.ZooError` names
`scripts/train_lvlms.sh`, which retrains and re-releases). Pages never train.
"""
from __future__ import annotations

import functools
from dataclasses import asdict
from typing import Any

import torch

from .. import config, data, zoo
from ..evaluation import fingerprint
from .anchor import LvlmAnchorConfig, LvlmAnchorRun, train_lvlm_anchor
from .mini_vlm import MINI_VLMS, MiniVLM
from .train_vlm import VlmTrainLog, check_name, train_mini_vlm, untrained

RETRAIN = "scripts/train_lvlms.sh"
ANCHOR_FILE = "lvlm-anchors.safetensors"
SETTINGS = (4, 8, 16)  # Table 5 / 11: the anchor's training eps, in 1/255


def training_spec(name: str) -> dict[str, Any]:
    cfg = MINI_VLMS[check_name(name)]
    return {"model": name, "config": asdict(cfg), "tower": zoo.spec_hash(cfg.tower), "threads": config.CPU_THREADS}


def anchor_config(eps_255: int) -> LvlmAnchorConfig:
    if eps_255 not in SETTINGS:
        raise ValueError(f"no released LVLM anchor setting eps={eps_255}/255: Table 5's settings are {SETTINGS}")
    return LvlmAnchorConfig(eps=eps_255 / 255)


def anchor_spec(name: str, eps_255: int) -> dict[str, Any]:
    from .. import cache

    return {"model": name, "model_spec": zoo.hash_spec(training_spec(name)), "config": asdict(anchor_config(eps_255)),
            "images": anchor_images_origin(), "threads": config.CPU_THREADS,
            **cache.code_spec("lvlm.anchor", "lvlm.mini_vlm", "defense", "attacks")}


def anchor_images_origin() -> dict[str, Any]:
    return {"dataset": "cifar10", "split": "train", "seed": 7, "n": LvlmAnchorConfig().n_images}


def anchor_images() -> torch.Tensor:
    o = anchor_images_origin()
    return data.mini_dataset(o["dataset"], o["split"], n=o["n"], seed=o["seed"]).images.float().div(255)


def _section(key: str) -> dict[str, Any]:
    return zoo.read_manifest().get(key, {})


def entry(name: str) -> dict[str, Any]:
    record = _section("lvlms").get(check_name(name))
    if record is None:
        raise zoo.ZooError(f"{name} is not released in {zoo.manifest_path()}: train and release it with `{RETRAIN}`")
    if record["spec_hash"] != zoo.hash_spec(training_spec(name)):
        raise zoo.ZooError(f"released {name} was trained with spec {record['spec_hash']}, the code's is now "
                           f"{zoo.hash_spec(training_spec(name))}: retrain and re-release with `{RETRAIN}`")
    return record


def load_mini_vlm(name: str) -> MiniVLM:
    """A released mini LVLM (eval mode, every weight frozen)."""
    record = entry(name)
    model = untrained(name)
    missing, unexpected = model.load_state_dict(zoo.read_checked(record["file"], record["sha256"], RETRAIN), strict=False)
    if unexpected or any(not (k.startswith("visual.") or k == "concepts") for k in missing):
        raise zoo.ZooError(f"{record['file']} does not fit {name} (missing {missing[:3]}, unexpected {unexpected[:3]}): "
                           f"re-release it with `{RETRAIN}`")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def anchor_key(name: str, eps_255: int) -> str:
    return f"{name}@{eps_255}"


def load_anchor(name: str, eps_255: int) -> torch.Tensor:
    key = anchor_key(name, eps_255)
    record = _section("lvlm_anchors").get(key)
    if record is None:
        raise zoo.ZooError(f"the R-Adapt+ anchor {key} is not released: train and release it with `{RETRAIN}`")
    if record["spec_hash"] != zoo.hash_spec(anchor_spec(name, eps_255)):
        raise zoo.ZooError(f"the released anchor {key} was trained by other code or settings than the current ones: "
                           f"retrain and re-release it with `{RETRAIN}`")
    return _anchor_tensors(_section("lvlm_anchor_file")["sha256"])[key]


@functools.cache
def _anchor_tensors(sha256: str) -> dict[str, torch.Tensor]:
    """The anchor file, read and checked once per release (a page asks for each anchor several times)."""
    return zoo.read_checked(ANCHOR_FILE, sha256, RETRAIN)


def anchor_record(name: str, eps_255: int) -> dict[str, Any]:
    load_anchor(name, eps_255)
    return _section("lvlm_anchors")[anchor_key(name, eps_255)]


# --- training and release (scripts/train_lvlms.sh) -------------------------------------------------

def release_model(name: str) -> dict[str, Any]:
    state, log = train_mini_vlm(name)
    file = f"{name}.safetensors"
    sha = zoo.save_weights(state, zoo.zoo_dir() / file)
    cfg = MINI_VLMS[name]
    record = {"file": file, "spec_hash": zoo.hash_spec(training_spec(name)), "spec": training_spec(name), "sha256": sha,
              "tower": cfg.tower, "tower_sha256": zoo.entry(cfg.tower)["sha256"],
              "parameters": int(sum(t.numel() for t in state.values())), "steps": cfg.steps,
              "seconds": round(log.seconds, 1), "minutes": round(log.seconds / 60, 2), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "cpu": zoo.cpu_name(), "checkpoints": log.checkpoints, "final": log.final}
    zoo.write_manifest(lvlms={**_section("lvlms"), name: record})
    return record


def release_anchors(names: list[str]) -> list[dict[str, Any]]:
    """Train every (LVLM, setting) anchor of `names` and rewrite the anchor file (other LVLMs' anchors kept)."""
    from safetensors.torch import load_file

    records = dict(_section("lvlm_anchors"))
    path = zoo.zoo_dir() / ANCHOR_FILE
    tensors = load_file(str(path)) if path.exists() else {}
    rows = []
    for name in names:
        model = load_mini_vlm(name)
        images = anchor_images()
        for eps in SETTINGS:
            config.setup(0)
            run: LvlmAnchorRun = train_lvlm_anchor(model, images, anchor_config(eps), progress=True)
            key = anchor_key(name, eps)
            tensors[key] = run.anchor
            records[key] = {"spec_hash": zoo.hash_spec(anchor_spec(name, eps)), "config": asdict(run.config),
                            "images": anchor_images_origin(), "losses": run.losses, "seconds": round(run.seconds, 1),
                            "tensor": fingerprint(run.anchor), "cpu": zoo.cpu_name()}
            rows.append({"anchor": key, "seconds": round(run.seconds, 1), "loss first/last epoch":
                         f"{run.losses[0]:.4g} / {run.losses[-1]:.4g}"})
    sha = zoo.save_weights(tensors, path)
    zoo.write_manifest(lvlm_anchors=records, lvlm_anchor_file={"file": ANCHOR_FILE, "sha256": sha})
    return rows


def log_of(name: str) -> VlmTrainLog:
    record = entry(name)
    return VlmTrainLog(name, record["checkpoints"], [], record["seconds"], record["final"])
