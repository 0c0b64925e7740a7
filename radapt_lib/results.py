"""The collapse rule, the display row of one evaluation, and the methods x datasets pivot.

Evaluating is the study's job (`rtables.Study.evaluate`, or `Study.grid` for one eps laid out with
`row`); this module holds what every page shares to present a result: `collapse_flag` (one rule, stated
in `COLLAPSE_RULE`), `row` (rounded accuracies, CI strings, top-class shares, the flag's reasons) and
`pivot`.
"""
from __future__ import annotations

import pandas as pd

from .evaluation import EvalResult

# A model looks robust by collapsing when it predicts one class for more than COLLAPSE_SHARE % of the
# clean images, or its clean accuracy is less than COLLAPSE_OVER_CHANCE pp above chance. One rule for
# every page (main results and the R-Adapt tables).
COLLAPSE_SHARE = 50.0
COLLAPSE_OVER_CHANCE = 10.0
COLLAPSE_RULE = (f"collapse = more than {COLLAPSE_SHARE:.0f}% of clean predictions on one class, or clean accuracy "
                 f"below chance + {COLLAPSE_OVER_CHANCE:.0f} pp")


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


def pivot(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """Methods x datasets for one column, with the across-dataset mean as 'Avg'."""
    wide = table.pivot(index="method", columns="dataset", values=value)
    wide = wide[list(dict.fromkeys(table["dataset"]))].reindex(list(dict.fromkeys(table["method"])))
    wide["Avg"] = wide.mean(axis=1).round(1)
    return wide

