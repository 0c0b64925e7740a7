"""The released mini zoo: trained weights committed in `zoo/` with a manifest, like a pretrained registry.

Pages never train. `build(name)` reads `zoo/<name>.safetensors` only after two checks: the manifest's
spec hash must equal the hash of the training spec in the current code (a changed training default
means the file is stale), and the file's sha256 must equal the manifest's (a corrupt or edited file).
Either failure is a `ZooError` naming `scripts/train_zoo.sh`, which retrains from scratch and re-releases.

mini-clip is released whole; each fine-tune releases only its vision tower (the text tower is its parent
CLIP's), so towers are shared, not copied. The other CLIPs (the trend's mini-clip stopped early or trained longer,
the retrieval page's mini-clip-mosaic, ...) are released whole but for their token embedding, of which only the rows
that the pages' prompts and captions use are kept (`prune_tokens`, `kept_token_ids`): ~49,380 of its 49,408 rows are
25 MB that no page reads, and a prompt that needs a dropped row is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from open_clip.model import CLIP

from . import config, hpt, mosaics, training
from .cache import file_sha256  # noqa: F401  (zoo.file_sha256: anchor_zoo and the tests read it here)

RETRAIN = "scripts/train_zoo.sh"
# mini-clip, its early-stopped prefixes (the trend), the CLIPs fine-tuned from it (retrieval), then the fine-tunes, the
# clean control, the seed replicas and the trend's and retrieval's fine-tunes: parents before children, so that one
# command can train them in this order.
ORDER = ("mini-clip", *training.OTHER_CLIPS, *training.PRETRAIN_PREFIXES, *training.CLIP_PARENTS, *training.MINI_FINETUNES,
         *hpt.HPT_FINETUNES)
# The reproducibility test retrains these prefixes (steps) and compares them with the manifest.
PREFIX_STEPS = {"mini-clip": 8, "mini-fare": 6}
# Losses of a prefix must match the release to this relative tolerance. Float noise between CPUs grows
# with the steps: an AVX2-only EPYC reproduced mini-fare's 6 released steps to 1.4e-4 at worst (the
# release machine's kernels differ); the schedule's lr scaled by 1.01 moves them by 2.4e-3, by 1.05 by 1.3e-2.
PREFIX_RTOL = 1e-3


class ZooError(RuntimeError):
    pass


def zoo_dir() -> Path:
    """The released weights' folder (RADAPT_ZOO overrides it, e.g. for tests)."""
    return Path(os.environ.get("RADAPT_ZOO", config.REPO_ROOT / "zoo"))


def manifest_path() -> Path:
    return zoo_dir() / "manifest.json"


def check_name(name: str) -> str:
    if name not in ORDER:
        raise ValueError(f"unknown mini model {name!r}: the zoo holds {ORDER}")
    return name


def is_clip(name: str) -> bool:
    """A whole CLIP (mini-clip, one of its prefixes, or a CLIP fine-tuned from it), not a fine-tuned vision tower."""
    return (check_name(name) == "mini-clip" or name in training.PRETRAIN_PREFIXES or name in training.CLIP_PARENTS
            or name in training.OTHER_CLIPS)


def parent(name: str) -> str | None:
    """The released model another was trained from (None: mini-clip and its prefixes, which start from nothing)."""
    if check_name(name) == "mini-clip" or name in training.PRETRAIN_PREFIXES or name in training.OTHER_CLIPS:
        return None
    return training.parent_of(name)


def clip_of(name: str) -> str:
    """The CLIP whose text tower (and, for a CLIP, whose everything) a model uses."""
    return name if is_clip(name) else training.parent_of(name)


def training_spec(name: str) -> dict[str, Any]:
    """Everything that determines a model's weights, as the current code would train it."""
    clip = {"model": "mini-clip", "config": asdict(training.MiniClipConfig()), "threads": config.CPU_THREADS}
    if check_name(name) == "mini-clip":
        return clip
    if name in training.OTHER_CLIPS:
        return {"model": name, "config": asdict(training.clip_config(name)), "threads": config.CPU_THREADS}
    if name in training.PRETRAIN_PREFIXES:
        return {**clip, "stop_after": training.PRETRAIN_PREFIXES[name]}
    if name in training.CLIP_PARENTS:
        return {"model": name, "parent": hash_spec(training_spec(training.parent_of(name))),
                "config": asdict(mosaics.MosaicClipConfig()), "threads": config.CPU_THREADS}
    if name in hpt.HPT_FINETUNES:
        cfg = hpt.HPT_FINETUNES[name]
        return {"model": name, "parent": hash_spec(training_spec(training.parent_of(name))),
                "proxy": hash_spec(training_spec(cfg.proxy)), "hpt": asdict(cfg), "threads": config.CPU_THREADS}
    return {"model": name, "parent": hash_spec(training_spec(training.parent_of(name))),
            "finetune": asdict(training.MINI_FINETUNES[name]), "threads": config.CPU_THREADS}


def spec_hash(name: str) -> str:
    return hash_spec(training_spec(name))


def hash_spec(spec: dict[str, Any]) -> str:
    """The short hash every release records for a training spec (stale-release checks compare it)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over names, shapes, dtypes and bytes: equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def read_manifest() -> dict[str, Any]:
    path = manifest_path()
    if not path.exists():
        raise ZooError(f"no zoo manifest at {path}: restore the zoo/ folder from git, or train it with `{RETRAIN}`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ZooError(f"{path} is not valid JSON ({exc}): restore it from git or re-release with `{RETRAIN}`") from exc


def entry(name: str) -> dict[str, Any]:
    """The manifest's record of a released model, checked against the current training spec."""
    models = read_manifest().get("models", {})
    if check_name(name) not in models:
        raise ZooError(f"{name} is not released in {manifest_path()}: train and release it with `{RETRAIN} {name}`")
    record = models[name]
    if record["spec_hash"] != spec_hash(name):
        raise ZooError(f"released {name} was trained with spec {record['spec_hash']}, but the code's training spec is now "
                       f"{spec_hash(name)} (a training default changed): retrain and re-release with `{RETRAIN}`")
    origin = parent(name)
    if origin is not None and record.get("parent_sha256") != models.get(origin, {}).get("sha256"):
        raise ZooError(f"released {name} was fine-tuned from another {origin} than the released one: "
                       f"re-release the fine-tunes with `{RETRAIN} {name}`")
    return record


def read_checked(file: str, sha256: str, release: str = RETRAIN) -> dict[str, torch.Tensor]:
    """A released safetensors file of zoo/, read only if its sha256 is the manifest's; else a ZooError naming the fix."""
    from safetensors.torch import load_file

    path = zoo_dir() / file
    if not path.exists():
        raise ZooError(f"{path} is missing: restore it with `git checkout -- zoo/` or re-release with `{release}`")
    actual = file_sha256(path)
    if actual != sha256:
        raise ZooError(f"{path} is corrupt or was edited (sha256 {actual[:12]}... != manifest {sha256[:12]}...): "
                       f"restore it with `git checkout -- zoo/` or re-release with `{release}`")
    return load_file(str(path))


def load_state(name: str) -> dict[str, torch.Tensor]:
    """A released model's loadable weights (a CLIP: whole; fine-tunes: vision tower), checked."""
    return _read_release(name)[0]


def _read_release(name: str) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """A released model's weights, checked, and the token rows kept when its token embedding was pruned (else None)."""
    record = entry(name)
    return unprune_tokens(read_checked(record["file"], record["sha256"]))


def build(name: str) -> CLIP:
    """A mini CLIP, or its CLIP with a fine-tune's vision tower, from the released weights (eval mode)."""
    base = clip_of(name)
    clip = training.build_mini_clip(training.clip_config(base))
    state, rows = _read_release(base)
    clip.load_state_dict(state)
    if rows is not None:
        guard_tokens(clip, rows, base)
    if name != base:
        clip.visual.load_state_dict(load_state(name))
    return clip.eval()


# --- token-embedding pruning (the trend's intermediate CLIPs) ----------------------------------

EMBEDDING_KEY, ROWS_KEY, KEPT_KEY = "token_embedding.weight", "token_embedding.rows", "token_embedding.kept"


def prompt_token_ids() -> torch.Tensor:
    """Every token id of every mini dataset's prompts (all templates x class names), padding included."""
    from . import data

    tokenizer = training.mini_tokenizer(training.MiniClipConfig())
    prompts = [t.format(c) for spec in data.MINI_DATASETS.values() for c in spec.classes for t in data.CIFAR_TEMPLATES]
    return torch.unique(tokenizer(prompts))


def kept_token_ids(name: str) -> torch.Tensor:
    """The token rows a pruned CLIP keeps: the mini prompts', and for the mosaic CLIP the mosaic captions' too."""
    if name not in training.CLIP_PARENTS:
        return prompt_token_ids()
    tokenizer = training.mini_tokenizer(training.MiniClipConfig())
    return torch.unique(torch.cat([prompt_token_ids(), tokenizer(mosaics.vocabulary()).flatten()]))


def prune_tokens(state: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """A whole-CLIP state with its token embedding cut to `rows` (`kept_token_ids`)."""
    out = {k: v for k, v in state.items() if k != EMBEDDING_KEY}
    out[ROWS_KEY], out[KEPT_KEY] = rows.to(torch.int64), state[EMBEDDING_KEY][rows].clone()
    return out


def unprune_tokens(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """The whole state again, dropped token rows as zeros, and the kept rows' ids (None: the state was not pruned)."""
    if KEPT_KEY not in state:
        return state, None
    vocab = training.mini_tokenizer(training.MiniClipConfig()).vocab_size
    out = {k: v for k, v in state.items() if k not in (KEPT_KEY, ROWS_KEY)}
    full = torch.zeros(vocab, state[KEPT_KEY].shape[1], dtype=state[KEPT_KEY].dtype)
    full[state[ROWS_KEY]] = state[KEPT_KEY]
    out[EMBEDDING_KEY] = full
    return out, state[ROWS_KEY]


def guard_tokens(clip: CLIP, rows: torch.Tensor, name: str) -> None:
    """Make a pruned CLIP refuse a prompt that needs a dropped token row, instead of reading a zero embedding."""
    known = torch.zeros(clip.token_embedding.num_embeddings, dtype=torch.bool)
    known[rows] = True

    def check(_module, args):
        ids = args[0]
        hits = known[ids.cpu()]
        if not bool(hits.all()):
            missing = sorted(set(ids[~hits.to(ids.device)].tolist()))[:5]
            raise ZooError(f"{name} is released with the token embeddings of the mini datasets' prompts only, and this "
                           f"prompt needs other tokens (ids {missing}...): add the class names to data.MINI_DATASETS "
                           f"and re-release it with `{RETRAIN} {name}`")

    clip.token_embedding.register_forward_pre_hook(check)


def train_log(name: str) -> training.TrainLog:
    """The training log recorded in the manifest when the model was released."""
    record = entry(name)
    return training.TrainLog(name, record["checkpoints"], record["seconds"], record["final"])


def training_logs() -> dict[str, training.TrainLog]:
    return {name: train_log(name) for name in ORDER}


# --- training and release (scripts/train_zoo.sh) ---------------------------------------------

def train(name: str, stop_after: int | None = None) -> tuple[dict[str, torch.Tensor], training.TrainLog]:
    """Train a zoo model from scratch (fine-tunes start from the *released* mini-clip)."""
    clip_cfg = training.MiniClipConfig()
    if check_name(name) == "mini-clip":
        return training.train_mini_clip(clip_cfg, stop_after=stop_after)
    if name in training.OTHER_CLIPS:
        return training.train_mini_clip(training.clip_config(name), stop_after=stop_after)
    if name in training.PRETRAIN_PREFIXES:
        return training.train_mini_clip(clip_cfg, stop_after=stop_after or training.PRETRAIN_PREFIXES[name], final=True)
    start = load_state(training.parent_of(name))
    if name in training.CLIP_PARENTS:
        return mosaics.train_mosaic_clip(start, stop_after=stop_after)
    if name in hpt.HPT_FINETUNES:
        cfg = hpt.HPT_FINETUNES[name]
        return hpt.train_hpt(start, build(cfg.proxy), training.clip_config(cfg.proxy), cfg, name, stop_after=stop_after)
    return training.finetune(start, clip_cfg, training.MINI_FINETUNES[name], name, stop_after=stop_after)


def prefix_record(name: str, steps: int) -> dict[str, Any]:
    """Fingerprint of the first `steps` training steps: per-step losses and the weights' sha256."""
    state, log = train(name, stop_after=steps)
    return {"steps": steps, "losses": log.losses, "sha256": state_sha256(state)}


def compare_prefix(recorded: dict[str, Any], new: dict[str, Any]) -> str:
    """'bit-identical', 'within float tolerance', or a ZooError when training changed."""
    if recorded["sha256"] == new["sha256"]:
        return "bit-identical"
    a, b = torch.tensor(recorded["losses"], dtype=torch.float64), torch.tensor(new["losses"], dtype=torch.float64)
    if a.shape == b.shape and torch.allclose(a, b, rtol=PREFIX_RTOL, atol=0.0):
        return "within float tolerance"
    raise ZooError(f"training changed: the first {recorded['steps']} steps give losses {[round(x, 5) for x in new['losses']]}, "
                   f"the release recorded {[round(x, 5) for x in recorded['losses']]}; retrain and re-release with `{RETRAIN}`")


def record_of(name: str, state: dict[str, torch.Tensor], log: training.TrainLog, file: str) -> dict[str, Any]:
    """The manifest entry of a freshly trained model (everything but the prefix fingerprint)."""
    spec = training_spec(name)
    cfg = spec.get("finetune") or spec.get("hpt") or spec["config"]
    steps = spec.get("stop_after", cfg["steps"])
    images = steps * cfg["batch_size"]
    origin = parent(name)
    what = "the mini prompts and the mosaic captions" if name in training.CLIP_PARENTS else "the mini prompts"
    tensors = ("whole CLIP" if name == "mini-clip" else
               f"whole CLIP, token embedding cut to the {len(kept_token_ids(name))} rows of {what}" if is_clip(name)
               else f"vision tower (text tower: {training.parent_of(name)}'s)")
    return {"file": file, "spec_hash": spec_hash(name), "spec": spec, "sha256": None,
            "parent_sha256": None if origin is None else entry(origin)["sha256"],
            "parameters": int(sum(t.numel() for t in state.values() if t.is_floating_point())),
            "tensors": tensors, "steps": steps, "images_seen": images, "seconds": round(log.seconds, 1),
            "minutes": round(log.seconds / 60, 2), "images_per_s": round(images / log.seconds, 1),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_name(),
            "checkpoints": log.checkpoints, "final": log.final}


def release_state(name: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the zoo folder stores for a trained model: CLIPs but mini-clip lose the token rows no prompt uses."""
    return prune_tokens(state, kept_token_ids(name)) if is_clip(name) and name != "mini-clip" else state


def save_weights(state: dict[str, torch.Tensor], path: Path) -> str:
    """Write safetensors atomically; returns the file's sha256."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file_sha256(path)


def write_manifest(models: dict[str, dict[str, Any]] | None = None, **sections: Any) -> None:
    """Rewrite the manifest: `models` and any named section (e.g. the released anchors) replace theirs, the rest is kept."""
    path = manifest_path()
    try:
        payload = read_manifest()
    except ZooError:
        payload = {}
    payload.update({"format": 1, "about": "Released mini zoo; see README 'The released zoo'. Written by " + RETRAIN})
    if models is not None:
        payload["models"] = {name: models[name] for name in ORDER if name in models}
    payload.update(sections)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=1)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def manifest_frame():
    """The release as a table: what each file is, its size and hashes, and how it was trained."""
    import pandas as pd

    rows = []
    for name in ORDER:
        record = entry(name)
        rows.append({"model": name, "file": record["file"], "MB": round((zoo_dir() / record["file"]).stat().st_size / 2**20, 1),
                     "tensors": record["tensors"], "parameters": record["parameters"], "sha256": record["sha256"][:12],
                     "spec hash": record["spec_hash"], "steps": record["steps"], "images seen": record["images_seen"],
                     "minutes": record["minutes"], "images/s": record["images_per_s"], "torch": record["torch"],
                     "threads": record["threads"]})
    return pd.DataFrame(rows).set_index("model")


def clip_comparison(fare_of: dict[str, str]):
    """Released CLIPs side by side (keys of `fare_of`, in order): their training, zero-shot accuracy and their FARE's."""
    import pandas as pd

    rows = []
    for clip, fare in fare_of.items():
        record, tuned = entry(clip), entry(fare)
        rows.append({"model": clip, "steps": record["steps"], "images seen": record["images_seen"],
                     "training minutes": record["minutes"],
                     "zero-shot top-1, CIFAR-10 test (%)": round(record["final"]["zero_shot_top1_cifar10_test"], 1),
                     "its FARE": fare, "its FARE: clean probe (%)": round(tuned["checkpoints"][-1]["probe_acc"], 1)})
    return pd.DataFrame(rows).set_index("model")
