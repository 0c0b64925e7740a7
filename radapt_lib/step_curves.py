"""Robustness against fine-tuning length: the step sweeps recorded in `zoo/sweeps/` and read by the zoo page.

A sweep (`scripts/finetune_sweep.py NAME --steps 1000 --every 200 --release`) retrains one fine-tune of the
released mini-clip with more steps and measures it as it trains. Intermediate weights are not released (6 MB
each), so the record keeps each checkpoint's per-image outcomes instead: every interval on the page is
recomputed from them, and the record names the recipe, parent, machine and commit that made it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from . import stats, zoo


def sweeps_dir() -> Path:
    return zoo.zoo_dir() / "sweeps"


def bits(correct: np.ndarray) -> str:
    """Per-image booleans as a compact string of 0s and 1s (what a record stores)."""
    return "".join("1" if ok else "0" for ok in np.asarray(correct, dtype=bool).ravel())


def unbits(text: str) -> np.ndarray:
    if set(text) - {"0", "1"}:
        raise ValueError("a sweep record's per-image outcomes must be a string of 0s and 1s")
    return np.frombuffer(text.encode(), dtype=np.uint8) == ord("1")


def read_records(folder: Path | None = None) -> list[dict[str, Any]]:
    """Every sweep record in zoo/sweeps/, checked to hold what the page reads (a clear error otherwise)."""
    folder = folder or sweeps_dir()
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            for point in record["checkpoints"]:
                for key in ("clean_correct", "robust_correct"):
                    if len(point[key]) != record["n"]:
                        raise ValueError(f"{key} at step {point['step']} has {len(point[key])} images, not {record['n']}")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise zoo.ZooError(f"sweep record {path} is unreadable ({err}); rewrite it with "
                               f"scripts/finetune_sweep.py ... --release") from err
        records.append({**record, "file": path.name})
    return records


def curve_frame(records: list[dict[str, Any]]):
    """One row per (sweep, checkpoint): clean and robust accuracy with 95% bootstrap intervals."""
    import pandas as pd

    rows = []
    for record in records:
        for point in record["checkpoints"]:
            clean = stats.accuracy(unbits(point["clean_correct"]))
            robust = stats.accuracy(unbits(point["robust_correct"]))
            rows.append({"model": record["model"], "sweep steps": record["config"]["steps"], "step": point["step"],
                         "images seen": point["images"], "clean (%)": clean.mean, "clean low": clean.low,
                         "clean high": clean.high, "robust (%)": robust.mean, "robust low": robust.low,
                         "robust high": robust.high, "clean [95% CI]": clean.fmt(1), "PGD-10 robust [95% CI]": robust.fmt(1)})
    return pd.DataFrame(rows)
