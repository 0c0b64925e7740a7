"""Released evaluation results: the book's attack outcomes, committed beside the zoo's weights.

Attacks are ~85 % of the time it takes to execute every page from nothing (38 of 45 minutes on a 2-core CPU).
Their results are content-addressed: the key hashes the model's weights and buffers (anchor and filter included),
the images, every attack setting, and the code and library versions that compute them. A released result is
therefore what the same computation gives, and anything that changes it (an edited attack, new weights, new
images, another torch) misses the release and is computed afresh. `tests/test_released_results.py` recomputes a
sample on the machine that runs it and compares the per-image outcomes bit for bit.

The audit page's derived per-image outcomes (kind `audit`: transfer attacks, the attacks adapted to the filter)
are released the same way, since the adversarial images behind them are not; so are three page analyses that cost
~45 s each and fit in a few KB (kind `analyses`: the D0 calibration, the CKA comparison, the fixed-example head
Shapley values), which CI would otherwise recompute on every run.

Lookup order in `cache.cached`: the local cache (data_cache/), then results/ (read-only), then compute.
RADAPT_RECOMPUTE=1 skips results/; `scripts/book.sh --release-results` re-derives every page that way and
rewrites results/ with exactly the results the pages read.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from . import config
from .cache import file_sha256, key_of

RELEASED_KINDS = ("evaluations", "audit", "analyses", "retrieval", "lvlm", "transfer")
RECOMPUTE_ENV = "RADAPT_RECOMPUTE"
ACCESS_LOG_ENV = "RADAPT_CACHE_LOG"
RELEASE_COMMAND = "scripts/book.sh --release-results"


class ReleasedResultError(RuntimeError):
    pass


def results_dir() -> Path:
    return config.REPO_ROOT / "results"


def manifest_path() -> Path:
    return results_dir() / "manifest.json"


def recomputing() -> bool:
    return os.environ.get(RECOMPUTE_ENV) == "1"


@functools.cache
def _manifest(path: Path, mtime_ns: int) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReleasedResultError(f"{path} cannot be read ({exc}); restore it with `git checkout {path.name}` "
                                  f"or rewrite results/ with `{RELEASE_COMMAND}`") from exc


def read_manifest() -> dict[str, Any]:
    path = manifest_path()
    if not path.exists():
        return {"results": {}}
    return _manifest(path, path.stat().st_mtime_ns)


def lookup(kind: str, key: str) -> dict[str, Any] | None:
    """The released {spec, value} record for kind/key, None when none is released (or RADAPT_RECOMPUTE=1).

    A file that is not in the manifest, whose sha256 differs from it, or whose spec does not hash to its key is an
    error, never a silent recompute: a hand-edited release must not pass for one.
    """
    if kind not in RELEASED_KINDS or recomputing():
        return None
    path = results_dir() / kind / f"{key}.pt"
    if not path.exists():
        return None
    shown = path.relative_to(config.REPO_ROOT) if path.is_relative_to(config.REPO_ROOT) else path
    fix = f"restore it with `git checkout -- {shown}` or rewrite results/ with `{RELEASE_COMMAND}`"
    entry = read_manifest()["results"].get(f"{kind}/{key}")
    if entry is None:
        raise ReleasedResultError(f"released result {path} is not in {manifest_path().name}: {fix}")
    if file_sha256(path) != entry["sha256"]:
        raise ReleasedResultError(f"released result {path} does not match its sha256 in {manifest_path().name} "
                                  f"(corrupt or edited): {fix}")
    record = torch.load(path, map_location="cpu", weights_only=False)
    if key_of(record["spec"]) != key:
        raise ReleasedResultError(f"released result {path} holds another spec: {fix}")
    return record


def log_access(kind: str, key: str) -> None:
    """Append kind/key to $RADAPT_CACHE_LOG (if set): the record of what a book build read, for `release`."""
    log = os.environ.get(ACCESS_LOG_ENV)
    if log:
        with open(log, "a") as handle:
            handle.write(f"{kind}/{key}\n")


def _summary(kind: str, record: dict[str, Any], path: Path) -> dict[str, Any]:
    value, spec, out = record["value"], record["spec"], {"sha256": file_sha256(path)}
    if kind == "evaluations":
        return {**out, "label": value.label, "attack": spec["attack"], "eps_255": round(spec["eps"] * 255, 3),
                "n": value.n, "seconds": round(value.seconds, 1)}
    if kind == "audit":
        return {**out, "what": spec["what"], "eps_255": spec["eps"], "n": len(value)}
    if kind == "retrieval":
        return {**out, "label": value.label, "attack": spec["attack"], "eps_255": round(spec["eps"] * 255, 3),
                "n": len(value.clean_rank), "seconds": round(value.seconds, 1)}
    if kind == "lvlm":
        return {**out, "label": value.label, "attack": "v-attack", "eps_255": round(spec["attack"]["eps"] * 255, 3),
                "n": int(value.clean.shape[1]), "seconds": round(value.seconds, 1)}
    if kind == "transfer":
        return {**out, "label": f"{value.source} -> {len(value.adv_pred)} targets", "attack": spec["attack"],
                "eps_255": round(spec["eps"] * 255, 3), "n": int(value.labels.shape[0]), "seconds": round(value.seconds, 1)}
    return {**out, "what": spec["what"]}


def release(access_log: Path, cache_root: Path | None = None, keep: bool = False) -> dict[str, Any]:
    """Rewrite results/ with the released kinds' records named in access_log (copied from the local cache).

    Records that keep adversarial images (keep_adv) stay out: they are large and cheap to recompute. `keep`: keep
    every record released before as well. Keys hash the models' weights and buffers, and a zero-shot head is computed
    from the text tower on the machine that runs the page: CPUs with other float kernels (AVX-512 and AVX2-only
    EPYCs) compute heads that differ in the last bits, hence other keys for the same page. Releasing from each kind
    with `keep` lets every kind find its own records; the pages' rounded numbers agree across kinds.
    """
    cache_root = cache_root or config.cache_dir()
    wanted = sorted({line.strip() for line in access_log.read_text().splitlines() if line.strip()})
    entries, seconds = {}, 0.0
    staging = results_dir().with_name("results.staging")
    shutil.rmtree(staging, ignore_errors=True)
    if keep and results_dir().exists():
        shutil.copytree(results_dir(), staging)
        entries = dict(read_manifest()["results"])
    for name in wanted:
        kind, key = name.split("/")
        if kind not in RELEASED_KINDS or name in entries:
            continue
        source = cache_root / kind / f"{key}.pt"
        if not source.exists():
            raise ReleasedResultError(f"{name} was read but is not in {cache_root}: run the release on a local cache")
        record = torch.load(source, map_location="cpu", weights_only=False)
        if record["spec"].get("keep_adv"):
            continue
        target = staging / kind / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        entries[name] = _summary(kind, record, target)
        seconds += getattr(record["value"], "seconds", 0.0)
    manifest = {"format": 1, "about": "Released evaluation results; see README 'Released results'. Written by "
                f"{RELEASE_COMMAND}", "released": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
                "threads": config.CPU_THREADS, "compute_seconds": round(seconds, 1), "results": entries}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(results_dir(), ignore_errors=True)
    staging.replace(results_dir())  # results/ is never left half-written
    return manifest
