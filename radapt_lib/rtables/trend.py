"""The trend with scale: the quantities behind the verdicts, measured on smaller and larger training runs.

Four axes, each a few released zoo models (`POINTS`), each with one robust fine-tune method:
- pre-training (FARE): mini-clip stopped at 120 and 240 of its 480 steps (prefixes of the released run), each with
  its own 200-step FARE fine-tune, and the released pair;
- pre-training, finished runs (FARE): the released pair and mini-clip trained three times longer (1440 steps, its own
  warm-up and cosine schedule) with its own 200-step FARE fine-tune;
- fine-tuning (TeCoA), fine-tuning (TGA): the fine-tune for 200 (released) and 1000 steps from the released mini-clip.

At each point `measure` reads six quantities, each a `Sampled` statistic of its units (images, or output kernels for
the spectral index), on the same images at every point: the Table 1 page's evaluation (APGD-CE on animals +
vehicles) for R-Adapt+ minus the robust model and R-Adapt_CLIP's collapse, page 11's replacement hybrid, page 12's
low-pass index and page 14's input-insensitivity. `trends` bootstraps each point's interval and, pairing the units,
the change between an axis's end points; `direction` says whether a quantity moved toward the paper's value, away
from it, or stayed flat (the change's interval holds 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .. import data, evaluation, models, reference, stats, zoo
from ..analysis import attention, replacement, spectral
from ..stats import Estimate
from ..zeroshot import top_class_share
from .study import Study


@dataclass(frozen=True)
class ScalePoint:
    axis: str  # one of AXES
    steps: int  # training steps along the axis (the plot's x)
    clip: str  # registry names of the point's CLIP and robust fine-tune
    robust: str

    @property
    def method(self) -> str:
        return AXES[self.axis][1]


# axis -> (short key for glue names, the robust method it varies)
AXES: dict[str, tuple[str, str]] = {"pre-training (FARE)": ("pre", "FARE"),
                                    "pre-training, finished runs (FARE)": ("prefull", "FARE"),
                                    "fine-tuning (TeCoA)": ("tecoa", "TeCoA"), "fine-tuning (TGA)": ("tga", "TGA")}
POINTS: tuple[ScalePoint, ...] = (
    ScalePoint("pre-training (FARE)", 120, "mini-clip-120", "mini-fare-p120"),
    ScalePoint("pre-training (FARE)", 240, "mini-clip-240", "mini-fare-p240"),
    ScalePoint("pre-training (FARE)", 480, "mini-clip", "mini-fare"),
    ScalePoint("pre-training, finished runs (FARE)", 480, "mini-clip", "mini-fare"),
    ScalePoint("pre-training, finished runs (FARE)", 1440, "mini-clip-1440", "mini-fare-p1440"),
    ScalePoint("fine-tuning (TeCoA)", 200, "mini-clip", "mini-tecoa"),
    ScalePoint("fine-tuning (TeCoA)", 1000, "mini-clip", "mini-tecoa-1000"),
    ScalePoint("fine-tuning (TGA)", 200, "mini-clip", "mini-tga"),
    ScalePoint("fine-tuning (TGA)", 1000, "mini-clip", "mini-tga-1000"),
)


def points_for(profile: str) -> tuple[ScalePoint, ...]:
    """The profile's scale points. The paper's models come without intermediate checkpoints: one point per axis,
    the released pair, so the paper profile measures the quantities but can show no trend."""
    if profile == "mini":
        return POINTS
    names = models.PROFILE_MODELS[profile]
    return tuple(ScalePoint(axis, 1, names["CLIP"], names[method]) for axis, (_, method) in AXES.items())


def points_frame(points: tuple[ScalePoint, ...]) -> pd.DataFrame:
    """The points as a table: the models and, for the mini zoo, what their training was (from the manifest)."""
    rows = []
    for p in points:
        row = {"axis": p.axis, "steps": p.steps, "CLIP": p.clip, "robust model": p.robust}
        if p.clip in zoo.ORDER:
            clip, robust = zoo.entry(p.clip), zoo.entry(p.robust)
            row.update({"CLIP images seen": clip["images_seen"],
                        "CLIP zero-shot CIFAR-10 test (%)": round(clip["final"]["zero_shot_top1_cifar10_test"], 1),
                        "fine-tune steps": robust["steps"],
                        "fine-tune probe accuracy (%)": round(robust["checkpoints"][-1]["probe_acc"], 1)})
        rows.append(row)
    return pd.DataFrame(rows).set_index(["axis", "steps"])


@dataclass(frozen=True)
class Quantity:
    key: str
    claim: str  # the claims page's key (C1 ...)
    what: str
    unit: str
    paper: dict[str, float]  # the paper's value per robust method; a method missing: the paper gives a direction only
    paper_side: int  # +1 / -1: the side the paper's claim sits on, used where `paper` has no value
    paper_text: str
    fine_tune_matters: bool = True  # False: the quantity reads CLIP only, so the fine-tuning axis cannot move it


def _paper_rep_share() -> float:
    fig = reference.FIG2B_PROGRESSIVE_FARE_CALTECH256
    return round(100 * fig["B1-Attn"] / reference.TABLE1_AUTOATTACK["FARE"]["Caltech256"], 1)


def _paper_t1(which: str) -> dict[str, float]:
    table = reference.TABLE1_CLEAN if which == "clean" else reference.TABLE1_AUTOATTACK
    return {m: round(table["R-Adapt+"]["Avg"] - table[m]["Avg"], 1) for m in ("FARE", "TeCoA", "TGA")}


_FIG10 = reference.FIG10_INPUT_INSENSITIVITY["random_pairs"]
QUANTITIES: tuple[Quantity, ...] = (
    # Fig. 2b shows FARE only; page 11 reads every robust model against it too.
    Quantity("rep", "C1", "share of the robust model's robust accuracy after swapping in its Emb + B1-Attn", "%",
             dict.fromkeys(("FARE", "TeCoA", "TGA"), _paper_rep_share()), 1, "Fig. 2b (FARE, Caltech256)"),
    Quantity("lpi", "C2", "low-pass index of the patch embedding's change, DC left out", "index", {}, 1,
             "Fig. 5: a low-pass shift (> 0)"),
    Quantity("ins", "C3", "first-block cosine between random image pairs, robust - CLIP", "cosine",
             {m: round(_FIG10[m] - _FIG10["CLIP"], 3) for m in ("FARE", "TeCoA")}, 1, "Fig. 10 (TGA: not shown, > 0)"),
    Quantity("plus_rob", "C5", "R-Adapt+ - the robust model, robust", "pp", _paper_t1("robust"), 1,
             "Table 1 (AutoAttack, mean)"),
    Quantity("plus_clean", "C5", "R-Adapt+ - the robust model, clean", "pp", _paper_t1("clean"), 1, "Table 1 (mean)"),
    Quantity("collapse", "C5", "R-Adapt_CLIP: share of clean predictions on its top class (source split)", "%", {}, -1,
             "not collapsed (Table 1: R-Adapt_CLIP keeps CLIP-like clean accuracy)", fine_tune_matters=False),
)
BY_KEY = {q.key: q for q in QUANTITIES}


def evaluated(method: str) -> tuple[str, ...]:
    return ("CLIP", method, "R-Adapt+", "R-Adapt_CLIP")


def base_methods(points: tuple[ScalePoint, ...]) -> tuple[str, ...]:
    """The base models a study of these points loads (CLIP and every axis's robust method)."""
    return ("CLIP", *dict.fromkeys(p.method for p in points))


def point_study(base: Study, point: ScalePoint) -> Study:
    """`base`'s images with the point's CLIP and robust model, R-Adapt_CLIP re-extracted and R-Adapt+'s anchor
    (released) added."""
    study = base.with_models({"CLIP": point.clip, point.method: point.robust})
    study.train_plus(progress=False)
    return study


@dataclass(frozen=True)
class Sampled:
    """A quantity as a statistic of its units (images, or output kernels for the spectral index) kept by index, so
    that its interval and the interval of its change between two points (the same units, resampled jointly: the
    test images are the same at every point) come from one seeded bootstrap."""

    statistic: Callable[[np.ndarray], float]
    n: int

    def estimate(self, seed: int = 0) -> Estimate:
        return stats.bootstrap(self.statistic, self.n, seed=seed)


def change(start: Sampled, end: Sampled, seed: int = 0) -> Estimate:
    """end - start with a paired bootstrap interval (both points' statistics on the same resampled units)."""
    if start.n != end.n:
        raise ValueError(f"a change needs the same units at both points, got {start.n} and {end.n}")
    return stats.bootstrap(lambda idx: end.statistic(idx) - start.statistic(idx), start.n, seed=seed)


def _mean_diff(a: np.ndarray, b: np.ndarray, scale: float = 1.0) -> Sampled:
    a, b = scale * np.asarray(a, dtype=np.float64), scale * np.asarray(b, dtype=np.float64)
    return Sampled(lambda idx: float((a[idx] - b[idx]).mean()), len(a))


def measure(study: Study, method: str, probe: data.ImageSet, attack: str, eps_255: float, n_iter: int | None,
            seed: int = 0) -> dict[str, Sampled]:
    """The six quantities at one point (`method`: the robust model's role); `probe`: the input-insensitivity images."""
    study.evaluate(evaluated(method), attack, [eps_255], n_iter=n_iter)
    source = study.datasets[0]
    clip, robust = study.classifier("CLIP", source), study.classifier(method, source)
    lpi = spectral.shift_statistic(lambda s: spectral.low_pass_index(s, include_dc=False),
                                   [robust.visual.conv1.weight.detach().cpu()], clip.visual.conv1.weight.detach().cpu())
    preds = study.results[("R-Adapt_CLIP", source, attack, float(eps_255))].clean_pred
    return {"rep": _replacement_share(study, method, attack, eps_255, n_iter),
            "lpi": Sampled(lpi, int(clip.visual.conv1.weight.shape[0])),
            "ins": _mean_diff(attention.pair_similarity(robust, probe.images, seed),
                              attention.pair_similarity(clip, probe.images, seed)),
            "plus_rob": _mean_diff(study.correct("R-Adapt+", attack, eps_255, "robust"),
                                   study.correct(method, attack, eps_255, "robust"), 100.0),
            "plus_clean": _mean_diff(study.correct("R-Adapt+", attack, eps_255, "clean"),
                                     study.correct(method, attack, eps_255, "clean"), 100.0),
            "collapse": Sampled(lambda idx: top_class_share(preds[idx]), len(preds))}


def _replacement_share(study: Study, method: str, attack: str, eps_255: float, n_iter: int | None) -> Sampled:
    """Robust accuracy of CLIP with the robust model's Emb + B1-Attn, as a share (%) of the robust model's own (source split)."""
    source = study.datasets[0]
    hybrid = replacement.hybrid_at(study.classifier("CLIP", source), study.classifier(method, source).visual, "B1-Attn")
    res = evaluation.evaluate(hybrid, study.images[source], attack, eps_255 / 255, label="Emb+B1-Attn hybrid",
                              n_iter=n_iter, seed=study.seed)
    part = res.correct("robust").astype(float)
    full = study.results[(method, source, attack, float(eps_255))].correct("robust").astype(float)
    return Sampled(lambda idx: 100 * part[idx].mean() / max(full[idx].mean(), 1e-9), len(part))


def accuracies(study: Study, method: str, attack: str, eps_255: float) -> dict[str, str]:
    """How strong a point's models are: clean and robust accuracy (%, both datasets pooled) of each evaluated model."""
    return {f"{'robust model' if m == method else m} {w}": stats.bootstrap_mean(100 * study.correct(m, attack, eps_255, w)).fmt(1)
            for m in evaluated(method) for w in ("clean", "robust")}


@dataclass
class TrendRun:
    """Every point's quantities: `frame` (one row per point and quantity, estimate and interval), `strength` (one
    row per point: its models' accuracies) and `samples[(axis, steps, quantity)]` for the changes' intervals."""

    frame: pd.DataFrame
    strength: pd.DataFrame
    samples: dict[tuple[str, int, str], Sampled]
    seed: int


def run(base: Study, probe: data.ImageSet, attack: str, eps_255: float, n_iter: int | None,
        points: tuple[ScalePoint, ...] = POINTS, progress: Callable = iter) -> TrendRun:
    """Measure every point (loading its models into `base`'s roles; the evaluations are cached) into a `TrendRun`."""
    rows, context, samples, measured = [], [], {}, {}
    for point in progress(points):
        key = (point.clip, point.robust)
        if key not in measured:  # a pair on two axes (the paper profile's one point) is measured once
            study = point_study(base, point)
            measured[key] = (measure(study, point.method, probe, attack, eps_255, n_iter, base.seed),
                             accuracies(study, point.method, attack, eps_255))
        values, acc = measured[key]
        context.append({"axis": point.axis, "steps": point.steps, "CLIP": point.clip, "robust model": point.robust, **acc})
        for q in QUANTITIES:
            samples[(point.axis, point.steps, q.key)] = values[q.key]
            est = values[q.key].estimate(base.seed)
            rows.append({"axis": point.axis, "steps": point.steps, "method": point.method, "clip": point.clip,
                         "robust": point.robust, "quantity": q.key, "claim": q.claim, "mean": est.mean, "low": est.low,
                         "high": est.high, "n": est.n})
    return TrendRun(pd.DataFrame(rows), pd.DataFrame(context).set_index(["axis", "steps"]), samples, base.seed)


def direction(start: Estimate, end: Estimate, delta: Estimate, q: Quantity, method: str) -> str:
    """'toward the paper', 'away from the paper', or 'flat' when the interval of the change (end - start) holds 0."""
    if delta.low <= 0 <= delta.high:
        return "flat"
    paper = q.paper.get(method)
    if paper is None:
        toward = (delta.mean > 0) == (q.paper_side > 0)
    else:
        toward = abs(end.mean - paper) < abs(start.mean - paper)
    return "toward the paper" if toward else "away from the paper"


def _estimate(row) -> Estimate:
    return Estimate(float(row["mean"]), float(row["low"]), float(row["high"]), int(row["n"]))


def _fmt(est: Estimate, q: Quantity) -> str:
    return est.fmt(3 if q.unit in ("cosine", "index") else 1)


def trends(result: TrendRun) -> pd.DataFrame:
    """One row per quantity: per axis its value at the smallest and largest scale, the change with its paired 95%
    interval, and the trend's direction."""
    frame, rows = result.frame, []
    for q in QUANTITIES:
        side = "> 0" if q.paper_side > 0 else "low"
        row = {"claim": q.claim, "quantity": q.what, "unit": q.unit,
               "paper": ", ".join(f"{m} {q.paper[m]:g}" if m in q.paper else f"{m} {side}"
                                  for m in dict.fromkeys(method for _, method in AXES.values())),
               "paper source": q.paper_text}
        for axis, (_, method) in AXES.items():
            part = frame[(frame["axis"] == axis) & (frame["quantity"] == q.key)].sort_values("steps")
            if len(part) < 2:
                row[f"{axis}: smallest -> largest"], row[f"{axis}: change"] = "-", "-"
                row[f"{axis} trend"] = "n/a (one point)" if len(part) else "n/a (no points)"
                continue
            first, last = part.iloc[0], part.iloc[-1]
            start, end = _estimate(first), _estimate(last)
            delta = change(result.samples[(axis, int(first["steps"]), q.key)],
                           result.samples[(axis, int(last["steps"]), q.key)], result.seed)
            row[f"{axis}: smallest -> largest"] = f"{_fmt(start, q)} -> {_fmt(end, q)}"
            row[f"{axis}: change"] = _fmt(delta, q)
            row[f"{axis} trend"] = (direction(start, end, delta, q, method)
                                    if axis.startswith("pre-training") or q.fine_tune_matters else "n/a (reads CLIP only)")
        rows.append(row)
    return pd.DataFrame(rows)


def claim_trends(table: pd.DataFrame) -> pd.DataFrame:
    """Per claim and axis: the common direction of its quantities, or 'mixed (...)'."""
    rows = []
    for claim, part in table.groupby("claim", sort=True):
        row = {"claim": claim, "quantities": len(part)}
        for axis in AXES:
            words = [w for w in part[f"{axis} trend"] if not w.startswith("n/a")]
            row[axis] = (words[0] if len(set(words)) == 1 else
                         "mixed (" + ", ".join(f"{words.count(w)} {w}" for w in dict.fromkeys(words)) + ")") if words else "n/a"
        rows.append(row)
    return pd.DataFrame(rows).set_index("claim")


def strength_values(result: TrendRun) -> dict[str, str]:
    """How much stronger each axis's models got, end point to end point: the robust model's robust and clean accuracy
    and CLIP's clean accuracy, each as "start -> end" with its interval."""
    out = {}
    for axis, part in result.strength.groupby(level="axis", sort=False):
        if len(part) < 2:  # the paper profile: one point per axis, nothing to compare
            continue
        part = part.sort_index(level="steps")
        for key, column in (("rob", "robust model robust"), ("clean", "robust model clean"), ("clip", "CLIP clean")):
            out[f"tr_{AXES[axis][0]}_{key}"] = f"{part[column].iloc[0]} -> {part[column].iloc[-1]}"
    return out


def glue_values(table: pd.DataFrame, by_claim: pd.DataFrame) -> dict[str, str]:
    """Values for the page's verdict text and the claims page: each claim's direction per axis, and counts."""
    out = {f"tr_{c}_{short}": by_claim.loc[c, a] for c in by_claim.index for a, (short, _) in AXES.items()}
    for axis, (short, _) in AXES.items():
        words = [w for w in table[f"{axis} trend"] if not w.startswith("n/a")]
        out[f"tr_{short}_counts"] = ", ".join(f"{words.count(w)} {w}" for w in
                                              ("toward the paper", "away from the paper", "flat") if w in words) or "none"
    out["tr_summary"] = "; ".join(f"{c}: " + ", ".join(f"{a} {by_claim.loc[c, a]}" for a in AXES) for c in by_claim.index)
    return out
