"""Grids of clean / adversarial accuracy with bootstrap intervals, and the paper's numbers beside them."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from . import data, evaluation, models
from .evaluation import EvalResult

# A model looks robust by collapsing when it predicts one class for more than COLLAPSE_SHARE % of the
# clean images, or its clean accuracy is less than COLLAPSE_OVER_CHANCE pp above chance. One rule for
# every page (main results and the R-Adapt tables).
COLLAPSE_SHARE = 50.0
COLLAPSE_OVER_CHANCE = 10.0
COLLAPSE_RULE = (f"collapse = more than {COLLAPSE_SHARE:.0f}% of clean predictions on one class, or clean accuracy "
                 f"below chance + {COLLAPSE_OVER_CHANCE:.0f} pp")


def classifier_for(model_name: str, images: data.ImageSet):
    """The zero-shot classifier of a registry model over an image set's classes."""
    return models.classifier(models.load_model(model_name), images.classnames)


def collapse_flag(result: EvalResult, n_classes: int) -> str:
    """Why a result should not be read as robustness: near-chance clean accuracy or one dominant class."""
    reasons = []
    chance = 100.0 / n_classes
    if result.clean().mean < chance + COLLAPSE_OVER_CHANCE:
        reasons.append(f"clean near chance ({chance:.0f}%)")
    if result.clean_top_share() > COLLAPSE_SHARE:
        reasons.append(f"{result.clean_top_share():.0f}% of clean predictions one class")
    return "; ".join(reasons)


def row(method: str, dataset: str, result: EvalResult, n_classes: int) -> dict:
    clean, robust = result.clean(), result.robust()
    return {"method": method, "dataset": dataset, "n": result.n,
            "clean": round(clean.mean, 1), "clean 95% CI": f"[{clean.low:.1f}, {clean.high:.1f}]",
            "robust": round(robust.mean, 1), "robust 95% CI": f"[{robust.low:.1f}, {robust.high:.1f}]",
            "top-class share clean": round(result.clean_top_share(), 1),
            "top-class share adv": round(result.adv_top_share(), 1),
            "flag": collapse_flag(result, n_classes)}


def evaluate_grid(model_names: dict[str, str], datasets: Sequence[str], attack: str, eps: float, n_samples: int,
                  profile: str = "mini", seed: int = 0, n_iter: int = 10) -> tuple[pd.DataFrame, dict]:
    """Evaluate every (method -> registry model) on every dataset; returns the table and raw results."""
    rows, raw = [], {}
    for dataset in datasets:
        images = data.load_images(profile, dataset, n_samples, seed)
        for method, name in model_names.items():
            result = evaluation.evaluate(classifier_for(name, images), images, attack, eps, label=f"{method}/{dataset}",
                                         n_iter=n_iter, seed=seed)
            raw[(method, dataset)] = result
            rows.append(row(method, dataset, result, len(images.classnames)))
    return pd.DataFrame(rows), raw


def pivot(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """Methods x datasets for one column, with the across-dataset mean as 'Avg'."""
    wide = table.pivot(index="method", columns="dataset", values=value)
    wide = wide[list(dict.fromkeys(table["dataset"]))].reindex(list(dict.fromkeys(table["method"])))
    wide["Avg"] = wide.mean(axis=1).round(1)
    return wide


def beside_paper(ours: pd.DataFrame, paper: dict[str, dict[str, float]], paper_columns: Sequence[str]) -> pd.DataFrame:
    """Our per-method averages next to the paper's values (labelled 'paper: <column>')."""
    out = ours.copy()
    for column in paper_columns:
        out[f"paper: {column}"] = [paper.get(m, {}).get(column, float("nan")) for m in out.index]
    return out
