"""Content-addressed artifacts: key = hash of everything that determines them; atomic writes.

A file that cannot be read back (truncated, corrupt, wrong format) is treated as missing:
it is deleted, recomputed and rewritten, never used.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from . import config

T = TypeVar("T")
# Bump when the meaning of cached results changes without their inputs changing.
CACHE_VERSION = 1


LIBRARY_ROOT = Path(__file__).resolve().parent
# (kind, key) of every artifact this process computed rather than read: how a caller tells a hit from a miss.
COMPUTED: list[tuple[str, str]] = []
VERSIONED_PACKAGES = ("torch", "open_clip_torch", "pyautoattack")


@functools.cache
def code_fingerprint(*modules: str) -> str:
    """Hash of the source of the radapt_lib modules that compute an artifact (e.g. "attacks", "analysis.cka").

    In a cache key it makes an edit to that code a miss, while edits elsewhere keep their hits.
    """
    h = hashlib.sha256()
    for module in sorted(set(modules)):
        path = LIBRARY_ROOT.joinpath(*module.split(".")).with_suffix(".py")
        if not path.exists():
            raise ValueError(f"code_fingerprint: no module radapt_lib.{module} ({path})")
        h.update(module.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def library_versions() -> dict[str, str]:
    return {package: version(package) for package in VERSIONED_PACKAGES}


def code_spec(*modules: str) -> dict[str, Any]:
    """The part of a cache key that names the code and library versions behind an artifact."""
    return {"code": code_fingerprint(*modules), "versions": library_versions()}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def key_of(spec: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable spec."""
    blob = json.dumps({"v": CACHE_VERSION, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def path_for(kind: str, spec: dict[str, Any]) -> Path:
    return config.cache_dir() / kind / f"{key_of(spec)}.pt"


def save_atomic(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CorruptCacheError(RuntimeError):
    pass


def load_checked(path: Path) -> Any:
    """Load a cache file; raise CorruptCacheError (naming the file and the fix) if unreadable."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated/corrupt zips
        raise CorruptCacheError(
            f"cache file {path} is corrupt ({type(exc).__name__}); delete it to recompute"
        ) from exc
    if not isinstance(payload, dict) or "spec" not in payload or "value" not in payload:
        raise CorruptCacheError(f"cache file {path} has no spec/value record; delete it to recompute")
    return payload


def cached(kind: str, spec: dict[str, Any], compute: Callable[[], T], refresh: bool = False) -> T:
    """The value for spec: from the local cache, else the released results (radapt_lib.released), else computed
    and stored locally. A corrupt local file is recomputed; a corrupt released one is an error."""
    from . import released  # it reads this module's hashing helpers

    path = path_for(kind, spec)
    released.log_access(kind, path.stem)
    if path.exists() and not refresh:
        try:
            return load_checked(path)["value"]
        except CorruptCacheError as err:
            print(f"[cache] {err} -> recomputing")
            path.unlink(missing_ok=True)
    record = None if refresh else released.lookup(kind, path.stem)
    if record is not None:
        return record["value"]
    value = compute()
    save_atomic({"spec": spec, "value": value}, path)
    COMPUTED.append((kind, path.stem))
    return value
