"""Ablations and sweeps: Table 6's component split, Fig. 7's alpha / D0 sweeps and Tables 7/8's training scale.

`add_ablation_variants` registers Table 6's rows (GIF only, FRA only, both) on a study; `sweep` registers
and evaluates R-Adapt+ variants along one setting (alpha, D0, training images or epochs) and returns their
dataset averages. On held-out validation images, `anchor_epochs` follows the default anchor through its
training and `anchor_choices` compares Eq. 8's open choices (`ANCHOR_CHOICES`). `ABLATION` and the
`_paper_*` helpers read the paper's corresponding numbers from `reference` for the tables and verdicts.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .. import config, defense, evaluation, reference, stats
from .study import PLUS_DEFAULT, Study, average


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


def _heldout(study: Study, anchor: torch.Tensor, cfg, images: dict, attack: str, eps_255: float, n_iter: int | None,
             label: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-image clean and robust correctness (in %, datasets pooled) of CLIP defended with `anchor` on `images`."""
    clean, robust = [], []
    for d, imgs in images.items():
        model = defense.defend(study.classifier("CLIP", d), anchor, cfg.alpha, cfg.beta, cfg.d0_224)
        res = evaluation.evaluate(model, imgs, attack, eps_255 / 255, label=f"{label}/{d}", n_iter=n_iter, seed=study.seed)
        clean.append(res.correct("clean"))
        robust.append(res.correct("robust"))
    return 100.0 * np.concatenate(clean), 100.0 * np.concatenate(robust)


def _accuracy_columns(clean: np.ndarray, robust: np.ndarray, seed: int) -> dict:
    c, r = stats.bootstrap_mean(clean, seed=seed), stats.bootstrap_mean(robust, seed=seed)
    return {"clean": c.mean, "clean_lo": c.low, "clean_hi": c.high, "robust": r.mean, "robust_lo": r.low, "robust_hi": r.high}


def anchor_epochs(study: Study, images: dict, attack: str, eps_255: float, n_iter: int | None) -> pd.DataFrame:
    """The default R-Adapt+ anchor after every epoch (epoch 0: the white anchor it starts from), on held-out images.

    `images`: per dataset, images the anchor never trained on and no table evaluates on (validation); the
    attack is the page's (stronger than the inner attack of training). Per-epoch anchors are cache hits:
    a run caches every epoch it passes through. Columns: epoch, train loss (adversarial CE of that epoch),
    clean / robust accuracy pooled over datasets with CIs, robust minus epoch 0 and (`vs1*`) minus epoch 1 (paired, pp).
    """
    cfg = PLUS_DEFAULT[study.profile]
    anchors = {0: study.white_anchor("CLIP")}
    losses = {0: float("nan")}
    for e in range(1, cfg.epochs + 1):
        run = study.train_plus(name=f"R-Adapt+ epoch {e}", register=False, progress=False, epochs=e)
        anchors[e], losses[e] = run.anchor, run.losses[-1]
    correct = {e: _heldout(study, a, cfg, images, attack, eps_255, n_iter, f"anchor epoch {e}") for e, a in anchors.items()}
    rows = []
    for e in anchors:
        gain = stats.bootstrap_diff(correct[e][1], correct[0][1], seed=study.seed)
        vs1 = stats.bootstrap_diff(correct[e][1], correct[1][1], seed=study.seed)  # Table 8's comparison: from epoch 1
        rows.append({"epoch": e, "train adversarial CE": round(losses[e], 3), **_accuracy_columns(*correct[e], study.seed),
                     "robust vs epoch 0": gain.fmt(1), "gain": gain.mean, "gain_lo": gain.low, "gain_hi": gain.high,
                     "vs1": vs1.mean, "vs1_lo": vs1.low, "vs1_hi": vs1.high})
    return pd.DataFrame(rows)


# Eq. 8 leaves open how its adversarial examples are made and how A is optimised. Each setting changes only
# these fields of the profile's default: examples regenerated every step against the defended model
# ("minmax") or App. E's fixed set made once against the undefended encoder ("fixed"), the inner PGD's
# steps, and Adam's learning rate.
ANCHOR_CHOICES = {
    "min-max, PGD-2, lr 1e-2": {"examples": "minmax", "pgd_steps": 2, "lr": 1e-2},
    "min-max, PGD-2, lr 1e-3": {"examples": "minmax", "pgd_steps": 2, "lr": 1e-3},
    "min-max, PGD-10, lr 1e-2": {"examples": "minmax", "pgd_steps": 10, "lr": 1e-2},
    "fixed (App. E), PGD-2, lr 1e-2": {"examples": "fixed", "pgd_steps": 2, "lr": 1e-2},
    "fixed (App. E), PGD-10, lr 1e-2": {"examples": "fixed", "pgd_steps": 10, "lr": 1e-2},
    "fixed (App. E), PGD-10, lr 1e-3": {"examples": "fixed", "pgd_steps": 10, "lr": 1e-3},
}


def anchor_choices(study: Study, images: dict, attack: str, eps_255: float, n_iter: int | None,
                   choices: dict[str, dict] | None = None) -> pd.DataFrame:
    """Each of Eq. 8's open choices, trained with everything else as the default, judged on held-out images.

    `images` as in `anchor_epochs` (validation: no table evaluates on them). Columns: the setting, its
    last training loss and wall-clock, clean / robust accuracy pooled over datasets with CIs, robust
    minus the white anchor (epoch 0) paired, `pick` on the setting with the highest held-out robust accuracy, and
    each setting's robust accuracy minus the pick's (paired; `tied with pick` when that CI holds 0).
    """
    base = PLUS_DEFAULT[study.profile]
    white = _heldout(study, study.white_anchor("CLIP"), base, images, attack, eps_255, n_iter, "anchor epoch 0")
    rows, robust = [], {}
    for name, changes in (choices or ANCHOR_CHOICES).items():
        run = study.train_plus(name=name, register=False, progress=False,
                               **{k: config.smoke_budget(v) if k == "pgd_steps" else v for k, v in changes.items()})
        clean, robust[name] = _heldout(study, run.anchor, run.config, images, attack, eps_255, n_iter, f"anchor {name}")
        gain = stats.bootstrap_diff(robust[name], white[1], seed=study.seed)
        rows.append({"setting": name, **changes, "train adversarial CE": round(run.losses[-1], 3),
                     "train minutes": round(run.seconds / 60, 1), **_accuracy_columns(clean, robust[name], study.seed),
                     "robust vs white anchor": gain.fmt(1), "gain_lo": gain.low, "gain_hi": gain.high,
                     "is default": all(getattr(base, k) == v for k, v in changes.items())})
    frame = pd.DataFrame(rows)
    frame["pick"] = frame.index == frame["robust"].idxmax()  # ties: the first listed (the cheaper inner attack)
    best = frame.loc[frame["pick"], "setting"].iloc[0]
    vs = [stats.bootstrap_diff(robust[s], robust[best], seed=study.seed) for s in frame["setting"]]
    frame["robust vs pick"] = [d.fmt(1) for d in vs]
    frame["tied with pick"] = [d.low <= 0 <= d.high for d in vs]  # the paired CI holds 0: not told apart
    return frame
