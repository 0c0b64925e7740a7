"""Cost: the inference overhead of the defense and the training budget of R-Adapt+ against a fine-tune.

Forward times of plain against defended models, interleaved in one run (`inference_overhead`, on the
pairs of `overhead_pairs`: the mini models and a random-weight ViT-B/32 at 224 px), and the
deterministic budget counts (distinct images, images seen, forward-backward passes) and wall-clock
seconds of the mini FARE fine-tune against the R-Adapt+ anchor run (as released, and both timed on this
machine: `timed_here`), with the page's verdict values.
"""
from __future__ import annotations

import functools
import time

import numpy as np
import pandas as pd
import torch

from .. import data, defense, models, plus, reference
from .study import Study


def time_forward(model, x: torch.Tensor, repeats: int = 5) -> list[float]:
    times = []
    with torch.no_grad():
        model(x[:2])  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return times


def inference_overhead(pairs: dict[str, tuple], x_by_name: dict[str, torch.Tensor], repeats: int = 7) -> pd.DataFrame:
    """Forward time of defended vs plain model, interleaved in one run: median seconds and their ratio."""
    rows = []
    for name, (plain, defended) in pairs.items():
        x = x_by_name[name]
        tp, td = [], []
        for _ in range(repeats):
            tp += time_forward(plain, x, 1)
            td += time_forward(defended, x, 1)
        rows.append({"setting": name, "batch": x.shape[0], "plain ms/img": 1e3 * np.median(tp) / x.shape[0],
                     "R-Adapt ms/img": 1e3 * np.median(td) / x.shape[0], "ratio": np.median(td) / np.median(tp)})
    return pd.DataFrame(rows)


def overhead_pairs(study: Study, vit_batch: int = 8) -> tuple[dict, dict]:
    """(plain, defended) model pairs and their inputs: the mini R-Adapt+ / R-Adapt_FARE, and ViT-B/32 at 224 px."""
    import open_clip

    from ..zeroshot import ZeroShotClassifier

    ds, p = study.datasets[0], study.profile
    x = study.images[ds].floats()
    pairs = {f"{p}: R-Adapt+ (alpha 0.8, beta 0.2)": (study.model("CLIP", ds), study.model("R-Adapt+", ds)),
             f"{p}: R-Adapt_FARE (beta 0)": (study.model("CLIP", ds), study.model("R-Adapt_FARE", ds))}
    inputs = {k: x for k in pairs}
    torch.manual_seed(study.seed)
    clip = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    head = torch.nn.functional.normalize(torch.randn(clip.visual.output_dim, 10), dim=0)
    plain = ZeroShotClassifier(clip.visual, head, models.OPENAI_MEAN, models.OPENAI_STD, [str(i) for i in range(10)]).eval()
    p = defense.PRESETS["R-Adapt+"]
    key = "ViT-B/32 (random weights), 224 px: R-Adapt (alpha 0.8, beta 0.2)"
    pairs[key] = (plain, defense.defend(plain, defense.white_anchor(plain), p.alpha, p.beta, p.d0_224))
    inputs[key] = torch.rand(vit_batch, 3, 224, 224, generator=torch.Generator().manual_seed(study.seed))
    return pairs, inputs


@functools.cache  # three tables read it; the mini count reads the animals' training split
def _fare_budget(profile: str) -> dict:
    """The FARE fine-tune's counts: the released mini run's, or (paper) only what the paper states (its images)."""
    from .. import training, zoo

    if profile != "mini":
        nan = float("nan")
        return {"distinct images": reference.R_ADAPT_PLUS_BUDGET["aft_images"], "images seen": nan, "fwd-bwd passes": nan,
                "steps": nan, "seconds": nan}
    cfg = training.MINI_FINETUNES["mini-fare"]
    record = zoo.entry("mini-fare")
    seen = cfg.steps * cfg.batch_size
    train_size = len(data.mini_dataset(data.FINETUNE_SOURCE, "train"))
    return {"distinct images": min(seen, train_size), "images seen": seen, "fwd-bwd passes": seen * (cfg.pgd_steps + 1),
            "steps": cfg.steps, "seconds": record["seconds"]}


def _plus_budget(run: plus.AnchorRun) -> dict:
    c = run.config
    return {"distinct images": c.n_images, "images seen": run.images_seen, "fwd-bwd passes": run.images_seen * (c.pgd_steps + 1),
            "steps": c.epochs * -(-c.n_images // c.batch_size), "seconds": run.seconds}


def timed_here(study: Study, run: plus.AnchorRun, steps: int = 3) -> dict[str, float]:
    """Seconds per optimisation step of the FARE fine-tune and of the R-Adapt+ anchor, both timed now on this machine.

    The released runs' seconds come from whichever machines trained them (speeds here differ by up to 2x), so
    their ratio mixes machines; these short runs put both on one.
    """
    from .. import anchor_zoo, zoo

    if study.profile != "mini":  # the paper's FARE is a published checkpoint: there is no fine-tune to time here
        images = study.train_images(steps * run.config.batch_size)
        clf = models.classifier(study.zoo["CLIP"], images.classnames)
        return {"FARE": float("nan"), "R-Adapt+": plus.seconds_per_batch(clf, images, run.config, steps)}
    _, log = zoo.train("mini-fare", stop_after=steps)
    images = anchor_zoo.origin_images(run.origin or anchor_zoo.mini_origin(), steps * run.config.batch_size)
    clf = models.classifier(study.zoo["CLIP"], images.classnames)
    return {"FARE": log.seconds / steps, "R-Adapt+": plus.seconds_per_batch(clf, images, run.config, steps)}


def budget_counts(study: Study, run: plus.AnchorRun) -> pd.DataFrame:
    """Deterministic budget counts: distinct images, images seen, forward-backward passes; paper beside."""
    p = study.profile
    fare, plus = _fare_budget(p), _plus_budget(run)
    b = reference.R_ADAPT_PLUS_BUDGET
    rows = {f"FARE fine-tune ({p})": fare, f"R-Adapt+ anchor ({p})": plus,
            f"FARE / R-Adapt+ ({p})": {k: round(fare[k] / plus[k], 2) for k in ("distinct images", "images seen", "fwd-bwd passes")},
            "paper: AFT / R-Adapt+ images": {"distinct images": b["ratio"]}}
    return pd.DataFrame(rows).T.drop(columns="seconds", errors="ignore")


def _estimated_seconds(per_step: dict[str, float], fare: dict, plus: dict) -> dict[str, float]:
    """Both whole runs' wall-clock on this machine: `timed_here`'s seconds per step times each run's steps."""
    return {"FARE": per_step["FARE"] * fare["steps"], "R-Adapt+": per_step["R-Adapt+"] * plus["steps"]}


def training_budget(study: Study, run: plus.AnchorRun, per_step: dict[str, float]) -> pd.DataFrame:
    """Wall-clock of the FARE fine-tune and the R-Adapt+ run: as released (their own machines) and estimated from
    `per_step` (`timed_here`: both on this machine), with the ratio FARE / R-Adapt+ of each."""
    p = study.profile
    fare, plus = _fare_budget(p), _plus_budget(run)
    est = _estimated_seconds(per_step, fare, plus)
    return pd.DataFrame({"steps": [fare["steps"], plus["steps"], None],
                         "released run, s": [round(fare["seconds"], 1), round(plus["seconds"], 1),
                                             round(fare["seconds"] / plus["seconds"], 2)],
                         "s per step here": [round(per_step["FARE"], 2), round(per_step["R-Adapt+"], 2), None],
                         "estimated here, s": [round(est["FARE"], 1), round(est["R-Adapt+"], 1),
                                               round(est["FARE"] / est["R-Adapt+"], 2)]},
                        index=[f"FARE fine-tune ({p})", f"R-Adapt+ anchor ({p})", "ratio FARE / R-Adapt+"])


def cost_verdict(overhead: pd.DataFrame, study: Study, run: plus.AnchorRun, per_step: dict[str, float]) -> dict:
    ratios = dict(zip(overhead["setting"], overhead["ratio"]))
    r_plus, r_m, r_vit = (next(v for k, v in ratios.items() if k.startswith(p))
                          for p in (f"{study.profile}: R-Adapt+", f"{study.profile}: R-Adapt_FARE", "ViT"))
    fare, plus = _fare_budget(study.profile), _plus_budget(run)
    est = _estimated_seconds(per_step, fare, plus)
    worst = max(r_plus, r_vit)
    return {"cost_ratio_plus": f"{r_plus:.2f}", "cost_ratio_m": f"{r_m:.2f}", "cost_ratio_vit": f"{r_vit:.2f}",
            "cost_target": "met" if worst <= 1.05 else f"not met (worst {worst:.3f}x)",
            "cost_images_plus": str(plus["distinct images"]), "cost_images_fare": str(fare["distinct images"]),
            "cost_image_ratio": f"{fare['distinct images'] / plus['distinct images']:.1f}",
            "cost_passes_ratio": f"{fare['fwd-bwd passes'] / plus['fwd-bwd passes']:.1f}",
            "cost_seconds_plus": f"{est['R-Adapt+']:.0f}", "cost_seconds_fare": f"{est['FARE']:.0f}",
            "cost_time_ratio": f"{est['FARE'] / est['R-Adapt+']:.1f}"}
