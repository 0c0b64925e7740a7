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


# The zoo's targets for its fine-tunes (set by the team, not the paper): PGD-10 robust accuracy at 4/255 on the
# source split, and FARE's clean accuracy there. The paper's ImageNet-scale robust CLIPs hold ~50% robust.
ROBUST_TARGET = 25.0
CLEAN_TARGET = {"mini-fare": 45.0}


def _outcomes(point: dict[str, Any], which: str) -> np.ndarray:
    return 100.0 * unbits(point[f"{which}_correct"])


def _reading(low: float, high: float, target: float) -> str:
    return "meets" if low >= target else "misses" if high < target else "undecided"


def verdicts(records: list[dict[str, Any]]):
    """Per sweep: does robustness still rise at the end, and does the best checkpoint reach the targets?

    "Still rising" reads the paired gain (same images) from the middle checkpoint to the last: its interval
    above 0 means the curve has not flattened. Targets read the best checkpoint's interval (above, below, across).
    """
    import pandas as pd

    rows = []
    for record in records:
        points = record["checkpoints"]
        first, middle, last = points[0], points[len(points) // 2], points[-1]
        best = max(points, key=lambda p: unbits(p["robust_correct"]).mean())
        late = stats.bootstrap_diff(_outcomes(last, "robust"), _outcomes(middle, "robust"))
        whole = stats.bootstrap_diff(_outcomes(last, "robust"), _outcomes(first, "robust"))
        robust, clean = stats.accuracy(unbits(best["robust_correct"])), stats.accuracy(unbits(best["clean_correct"]))
        clean_target = CLEAN_TARGET.get(record["model"])
        rows.append({
            "model": record["model"], "steps": f"{first['step']} -> {last['step']}",
            f"robust gain {first['step']} -> {last['step']} (pp)": whole.fmt(1),
            f"robust gain {middle['step']} -> {last['step']} (pp)": late.fmt(1),
            "still rising at the end": "yes" if late.low > 0 else "no",
            "best step": best["step"], "best robust": robust.fmt(1),
            f"robust >= {ROBUST_TARGET:g} %": _reading(robust.low, robust.high, ROBUST_TARGET),
            "clean at best": clean.fmt(1),
            "clean target": "" if clean_target is None else f">= {clean_target:g} %: "
                                                             f"{_reading(clean.low, clean.high, clean_target)}"})
    return pd.DataFrame(rows).set_index("model")


def conclusion(frame) -> str:
    """One sentence from `verdicts`: whether longer fine-tuning is still buying robustness, and the target."""
    if not len(frame):
        return "no step sweeps in this profile"
    rising = [m for m, r in frame.iterrows() if r["still rising at the end"] == "yes"]
    target = f"robust >= {ROBUST_TARGET:g} %"
    met = [m for m, r in frame.iterrows() if r[target] == "meets"]
    missed = [m for m, r in frame.iterrows() if r[target] == "misses"]
    parts = [(f"{', '.join(rising)} still gain{'s' if len(rising) == 1 else ''} robustness over the last half of the run "
              "(paired CI above 0)" if rising
              else "none of the fine-tunes still gains robustness over the last half of the run (each paired CI holds 0 "
                   "or lies below it)"),
             f"{len(met)} of {len(frame)} reach{'es' if len(met) == 1 else ''} the {ROBUST_TARGET:g} % target beyond the interval"
             + (f" ({', '.join(met)})" if met else "")
             + (f", {len(missed)} stay{'s' if len(missed) == 1 else ''} below it beyond the interval ({', '.join(missed)})"
                if missed else "")]
    return "; ".join(parts)
