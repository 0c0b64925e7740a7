"""The text around the tables: glued values, the protocol line, collapse and R-Adapt+ summaries.

`glue_all` hands computed values to the page's prose (myst_nb glue, numbers rounded to 0.1);
`protocol` writes the exact evaluation protocol printed under a table; `collapsed` names the models
flagged by the collapse rule; `plus_summary` states how the R-Adapt+ anchor was trained.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .. import attacks, defense, models, plus, results
from .study import BASELINES, Study


def glue_all(values: dict) -> None:
    """myst_nb.glue every value (numbers rounded to 0.1, strings as given), without displaying them."""
    from myst_nb import glue

    for key, value in values.items():
        glue(key, round(float(value), 1) if isinstance(value, (float, np.floating)) else value, display=False)


def protocol(study: Study, attack: str, eps_255: Sequence[float], n_iter: int | None, n_restarts: int | None = None,
             n_queries: int | None = None, extra: str = "") -> str:
    """The exact protocol line printed under a table (`attack` may also name several attacks with their iterations)."""
    res = 32 if study.profile == "mini" else 224
    n_classes = min(len(s.classnames) for s in study.images.values())
    what = (attacks.describe(attack, n_iter, n_restarts, n_queries, n_classes) if attack in attacks.ATTACKS
            else f"{attack}, {n_restarts or 1} restart(s)" + (f", {n_queries} queries" if n_queries else ""))
    names = ", ".join(f"{m}={models.PROFILE_MODELS[study.profile][m]}" for m in BASELINES)
    return (f"Protocol: {what}; l-inf eps = "
            f"{', '.join(f'{e:g}' for e in eps_255)}/255 on [0, 1] pixels; n = {study.n_samples} seeded test images per dataset "
            f"(seed {study.seed}) of {', '.join(study.datasets)}; {res} px; robust = correct clean and attacked; "
            f"95% percentile bootstrap CIs over images (1000 resamples; averages pool images of all datasets); "
            f"models {names}; GIF D0 = 40 at 224 px -> {defense.d0_at(res, 40):.2f} at {res} px "
            f"(TGA: 30 -> {defense.d0_at(res, 30):.2f}); {results.COLLAPSE_RULE}. {extra}").strip()


def collapsed(frame: pd.DataFrame) -> str:
    """A sentence naming the flagged (method, dataset) pairs with their clean accuracy and top-class share."""
    g = frame[frame["collapse"]].drop_duplicates(["method", "dataset"])
    if g.empty:
        return "no model is flagged as collapsed"
    items = [f"{r.method} on {r.dataset} (clean {r.clean:.1f}%, top class {r.top_clean:.1f}%)" for r in g.itertuples()]
    return "flagged as collapsed: " + "; ".join(items)


def plus_summary(run: plus.AnchorRun, train_dataset: str) -> str:
    c = run.config
    losses = ", ".join(f"{v:.3f}" for v in run.losses)
    examples = (f"PGD-{c.pgd_steps} examples regenerated every step against the defended model" if c.examples == "minmax"
                else f"a fixed set of PGD-{c.pgd_steps} examples made once against the undefended encoder (App. E)")
    return (f"R-Adapt+ anchor {tuple(run.anchor.shape)}: {c.n_images} {train_dataset} train images x {c.epochs} epochs, "
            f"{examples} at eps {c.eps * 255:.0f}/255 (GIF D0 {c.d0_224:g}@224, alpha {c.alpha}, beta {c.beta}), "
            f"Adam lr {c.lr}, batch {c.batch_size}; adversarial CE per epoch: {losses}")
