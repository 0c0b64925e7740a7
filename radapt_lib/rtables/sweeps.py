"""Ablations and sweeps: Table 6's component split, Fig. 7's alpha / D0 sweeps and Tables 7/8's training scale.

`add_ablation_variants` registers Table 6's rows (GIF only, FRA only, both) on a study; `sweep`
registers and evaluates R-Adapt+ variants along one setting (alpha, D0, training images or epochs)
and returns their dataset averages. `ABLATION` and the `_paper_*` helpers read the paper's
corresponding numbers from `reference` for the tables and verdicts.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .. import defense, reference
from .study import Study, average


ABLATION = {"CLIP": (False, False), "FRA only": (False, True), "GIF only": (True, False), "R-Adapt+": (True, True)}


def add_ablation_variants(study: Study, plus_anchor: torch.Tensor) -> list[str]:
    """Register Table 6's rows (R-Adapt+ anchor) and the same split for the training-free anchor."""
    p, free = defense.PRESETS["R-Adapt+"], defense.PRESETS["R-Adapt_CLIP"]
    study.add("GIF only", d0_224=p.d0_224)
    study.add("FRA only", anchor=plus_anchor, alpha=p.alpha, beta=p.beta)
    study.add("FRA only (white anchor)", anchor=study.white_anchor("CLIP"), alpha=free.alpha, beta=free.beta)
    return ["CLIP", "FRA only", "GIF only", "R-Adapt+", "FRA only (white anchor)", "R-Adapt_CLIP"]


def _paper_t6(gif: bool, fra: bool) -> dict:
    row = next(r for r in reference.TABLE6 if r["gif"] == gif and r["fra"] == fra)
    ds = reference.TABLE6_DATASETS
    return {"paper clean (4-ds mean)": round(float(np.mean([row[d]["clean"] for d in ds])), 1),
            "paper robust (4-ds mean)": round(float(np.mean([row[d]["rob"] for d in ds])), 1),
            "paper robust Caltech256": row["Caltech256"]["rob"]}


def _paper_mean(table: dict, key: int) -> float:
    return float(np.mean(list(table[key].values())))


def _paper_default(param: str) -> int:
    """The paper's R-Adapt+ default for a training setting (2000 images, 10 iterations)."""
    return int(reference.R_ADAPT_PLUS_BUDGET["images" if param == "n_images" else "epochs"])


def sweep(study: Study, param: str, values: Sequence[float], anchor: torch.Tensor | None, attack: str, eps_255: float,
          n_iter: int) -> pd.DataFrame:
    """Dataset-averaged clean/robust accuracy of R-Adapt+ variants along one setting.

    param: "alpha" (beta = max(1 - alpha, 0)), "d0" (GIF cutoff at 224 px), "n_images" or "epochs"
    (separately trained anchors, other settings as PLUS_DEFAULT).
    """
    p = defense.PRESETS["R-Adapt+"]
    names = []
    for v in values:
        name = f"R-Adapt+ {param}={v:g}"
        if param == "alpha":
            study.add(name, anchor=anchor, alpha=v, beta=max(1 - v, 0.0), d0_224=p.d0_224)
        elif param == "d0":
            study.add(name, anchor=anchor, alpha=p.alpha, beta=p.beta, d0_224=v)
        elif param in ("n_images", "epochs"):
            study.train_plus(name=name, progress=False, **{param: int(v)})
        else:
            raise ValueError(f"unknown sweep parameter {param!r}: use alpha, d0, n_images or epochs")
        names.append(name)
    frame = study.evaluate(names, attack, [eps_255], n_iter=n_iter)
    avg = average(study, frame)
    avg[param] = [float(values[names.index(m)]) for m in avg["method"]]
    return avg
