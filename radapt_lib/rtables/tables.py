"""The comparison tables the pages print: our accuracies with 95% CIs beside the paper's numbers.

Table 1 (per dataset and averaged), Tables 2/3 (robust accuracy per attack and eps), Table 6 (the
ablation), the sweep tables of Fig. 7 and Tables 7/8, AutoAttack's own warnings, and `ci`, the one
"mean [low, high]" format every table and sentence uses. Tables only lay out numbers that the study
(`study.average`) has computed; they evaluate nothing themselves.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import reference
from .study import PLUS_DEFAULT, Study, average
from .sweeps import ABLATION, _paper_default, _paper_mean, _paper_t6


def ci(mean: float, lo: float, hi: float) -> str:
    return f"{mean:.1f} [{lo:.1f}, {hi:.1f}]"


def _flag(row) -> str:
    return "COLLAPSE" if row["collapse"] else ""


def table1(study: Study, frame: pd.DataFrame) -> pd.DataFrame:
    """Table 1 layout: per dataset clean / robust (95% CI), top-class shares, collapse flag; paper Avg beside."""
    avg = average(study, frame)
    out = pd.DataFrame(index=pd.Index(list(dict.fromkeys(frame["method"])), name="method"))
    for d, g in frame.groupby("dataset", sort=False):
        g = g.set_index("method")
        out[f"{d} clean"] = [ci(*g.loc[m, ["clean", "clean_lo", "clean_hi"]]) for m in out.index]
        out[f"{d} robust"] = [ci(*g.loc[m, ["robust", "robust_lo", "robust_hi"]]) for m in out.index]
    a = avg.set_index("method")
    out["avg clean"] = [ci(*a.loc[m, ["clean", "clean_lo", "clean_hi"]]) for m in out.index]
    out["avg robust"] = [ci(*a.loc[m, ["robust", "robust_lo", "robust_hi"]]) for m in out.index]
    out["top-class % clean/adv"] = [f"{a.loc[m, 'top_clean']:.1f} / {a.loc[m, 'top_adv']:.1f}" for m in out.index]
    out["flag"] = [_flag(a.loc[m]) for m in out.index]
    out["paper clean Avg"] = [reference.TABLE1_CLEAN.get(m, {}).get("Avg", np.nan) for m in out.index]
    out["paper AA Avg"] = [reference.TABLE1_AUTOATTACK.get(m, {}).get("Avg", np.nan) for m in out.index]
    return out


def table_by_eps(study: Study, frame: pd.DataFrame, paper: dict, paper_names: dict | None = None) -> pd.DataFrame:
    """Tables 2/3 layout: dataset-averaged robust accuracy per (attack, eps) with CIs, paper's value beside."""
    avg = average(study, frame)
    paper_names = paper_names or {}
    methods = list(dict.fromkeys(avg["method"]))
    out = pd.DataFrame(index=pd.Index(methods, name="method"))
    first = avg.drop_duplicates("method").set_index("method")
    out["clean"] = [ci(*first.loc[m, ["clean", "clean_lo", "clean_hi"]]) for m in methods]
    out["paper clean"] = [paper.get(m, {}).get("clean", np.nan) for m in methods]
    for (attack, eps), g in avg.groupby(["attack", "eps"], sort=False):
        g = g.set_index("method")
        key = (paper_names.get(attack, attack), int(eps))
        label = f"{paper_names.get(attack, attack)} {int(eps)}/255"
        out[label] = [ci(*g.loc[m, ["robust", "robust_lo", "robust_hi"]]) if m in g.index else "" for m in methods]
        out[f"paper {label}"] = [paper.get(m, {}).get(key, np.nan) for m in methods]
    flags = avg.groupby("method", sort=False).agg(top_clean=("top_clean", "max"), top_adv=("top_adv", "max"),
                                                  collapse=("collapse", "any"))
    out["top-class % clean/adv (max)"] = [f"{flags.loc[m, 'top_clean']:.1f} / {flags.loc[m, 'top_adv']:.1f}" for m in methods]
    out["flag"] = ["COLLAPSE" if flags.loc[m, "collapse"] else "" for m in methods]
    return out


def warnings_of(frame: pd.DataFrame) -> pd.DataFrame:
    """AutoAttack's own warnings, one row per (method, dataset, attack, eps, message)."""
    rows = [{"method": r.method, "dataset": r.dataset, "attack": r.attack, "eps": r.eps, "warning": w}
            for r in frame.itertuples() for w in r.warnings]
    return pd.DataFrame(rows, columns=["method", "dataset", "attack", "eps", "warning"])


def stack(*frames: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(list(frames), ignore_index=False)


def table6(study: Study, frame: pd.DataFrame) -> pd.DataFrame:
    avg = average(study, frame).set_index("method")
    rows = []
    for m in avg.index:
        r = avg.loc[m]
        gif, fra = ABLATION.get(m, (None, None))
        row = {"variant": m, "clean": ci(r.clean, r.clean_lo, r.clean_hi), "robust": ci(r.robust, r.robust_lo, r.robust_hi),
               "top-class % clean/adv": f"{r.top_clean:.1f} / {r.top_adv:.1f}", "flag": "COLLAPSE" if r.collapse else ""}
        row.update(_paper_t6(gif, fra) if gif is not None else {})
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def sweep_table(avg: pd.DataFrame, param: str) -> pd.DataFrame:
    return pd.DataFrame({"setting": [f"{param} = {v:g}" for v in avg[param]],
                         "clean": [ci(r.clean, r.clean_lo, r.clean_hi) for r in avg.itertuples()],
                         "robust": [ci(r.robust, r.robust_lo, r.robust_hi) for r in avg.itertuples()],
                         "top-class % clean/adv": [f"{r.top_clean:.1f} / {r.top_adv:.1f}" for r in avg.itertuples()],
                         "flag": ["COLLAPSE" if c else "" for c in avg["collapse"]]}).set_index("setting")


def training_scale_table(study: Study, avg: pd.DataFrame, param: str, paper: dict) -> pd.DataFrame:
    """Ours and the paper's robust accuracy against the training setting, both relative to their defaults."""
    default = getattr(PLUS_DEFAULT[study.profile], param)
    paper_default = _paper_default(param)
    ours = pd.DataFrame({"relative to default": [round(v / default, 2) for v in avg[param]],
                         "ours setting": [f"{param} = {v:g}" for v in avg[param]],
                         "ours robust": [ci(r.robust, r.robust_lo, r.robust_hi) for r in avg.itertuples()],
                         "ours clean": [ci(r.clean, r.clean_lo, r.clean_hi) for r in avg.itertuples()],
                         "flag": ["COLLAPSE" if c else "" for c in avg["collapse"]]})
    theirs = pd.DataFrame({"relative to default": [round(k / paper_default, 2) for k in paper],
                           "paper setting": [f"{k}" for k in paper],
                           "paper robust Caltech256": [v["Caltech256"] for v in paper.values()],
                           "paper robust (4-ds mean)": [round(_paper_mean(paper, k), 1) for k in paper]})
    out = ours.merge(theirs, on="relative to default", how="outer").sort_values("relative to default")
    out.insert(0, "table", "7 (images)" if param == "n_images" else "8 (epochs / iterations)")
    return out.astype(object).where(out.notna(), "").set_index(["table", "relative to default"])
