"""HPT-GPD's phenomenon, proxy adversarial robustness: how well one vanilla CLIP classifies adversarial images made
on another. A transfer matrix over sources (the CLIP attacked, white-box) and targets (the CLIP then shown the
images), with two architectures and two training seeds of each, so that "another architecture" is told apart from
"other weights of the same architecture".

Every image is attacked on the source (an accuracy on transferred images needs the images the source already
gets wrong attacked too; PGD attacks them, pyautoattack's APGD passes them unchanged, as AutoAttack does). A target
counts an image right when it classifies it right both clean and attacked, as every robust accuracy in the book.
One cached record per (source, attack) holds every target's predictions, keyed by all the models' fingerprints.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from . import attacks, cache, config, evaluation, models, stats, training
from .data import ImageSet
from .stats import Estimate

# Two architectures x two training seeds, all pre-trained the same way (training.OTHER_CLIPS).
TRANSFER_CLIPS = ("mini-clip", "mini-clip-s1", "mini-clip-p8", "mini-clip-p8-s1")
TRANSFER_CODE = ("transfer", *evaluation.EVALUATION_CODE)
RELATIONS = ("white-box", "same architecture, other seed", "other architecture")


def architecture(name: str) -> str:
    if name != "mini-clip" and name not in training.OTHER_CLIPS:  # clip_config falls back to mini-clip's: not here
        raise ValueError(f"{name!r} is not a pre-trained mini CLIP; the transfer matrix compares {TRANSFER_CLIPS}")
    cfg = training.clip_config(name)
    return f"ViT patch {cfg.patch_size}, {cfg.width} x {cfg.layers}"


def relation(source: str, target: str) -> str:
    """White-box (the same model), the same architecture with other weights, or another architecture."""
    if source == target:
        return RELATIONS[0]
    return RELATIONS[1] if architecture(source) == architecture(target) else RELATIONS[2]


@dataclass
class TransferRecord:
    """One source attacked at one setting: per target, clean and attacked predictions of the same images."""

    source: str
    attack: str
    eps: float
    settings: dict
    labels: np.ndarray
    clean_pred: dict[str, np.ndarray]
    adv_pred: dict[str, np.ndarray]
    seconds: float

    def correct(self, target: str) -> np.ndarray:
        return (self.clean_pred[target] == self.labels) & (self.adv_pred[target] == self.labels)

    def accuracy(self, target: str) -> Estimate:
        return stats.accuracy(self.correct(target))

    def clean(self, target: str) -> Estimate:
        return stats.accuracy(self.clean_pred[target] == self.labels)


def classifiers(names: Sequence[str], classnames: Sequence[str]) -> dict[str, nn.Module]:
    """Each CLIP's own zero-shot classifier (its own text head) for the classes."""
    return {name: models.classifier(models.load_model(name), classnames) for name in names}


def transfer(targets: dict[str, nn.Module], source: str, images: ImageSet, attack: str, eps: float,
             n_iter: int | None = None, batch_size: int = 250, seed: int = 0) -> TransferRecord:
    """Attack `targets[source]` white-box on every image and read every target on the result (cached)."""
    eps = config.check_eps(eps)
    settings = {"attack": attack, "eps": round(eps, 8), **attacks.resolve_settings(attack, n_iter, None, None,
                                                                                   len(images.classnames)),
                "batch_size": batch_size, "seed": seed}
    spec = {"source": source, "models": {name: evaluation.fingerprint(m) for name, m in sorted(targets.items())},
            "images": evaluation.fingerprint(images.images), "labels": evaluation.fingerprint(images.labels),
            **settings, **cache.code_spec(*TRANSFER_CODE)}
    return cache.cached("transfer", spec, lambda: _run(targets, source, images, attack, eps, settings, batch_size, seed))


def _run(targets, source, images, attack, eps, settings, batch_size, seed) -> TransferRecord:
    start = time.perf_counter()
    model = targets[source].eval()
    clean = {t: [] for t in targets}
    adv = {t: [] for t in targets}
    for b, lo in enumerate(tqdm(range(0, len(images), batch_size), desc=f"{source}: {attack}", unit="batch", leave=False)):
        x = images.images[lo:lo + batch_size].float().div(255)
        y = images.labels[lo:lo + batch_size]
        x_adv = attacks.attack(model, x, y, attack, eps, n_iter=settings["n_iter"], seed=seed + b).x_adv
        attacks.check_perturbation(x, x_adv, eps)
        with torch.no_grad():
            for name, target in targets.items():
                clean[name].append(target(x).argmax(1))
                adv[name].append(target(x_adv).argmax(1))
    cat = lambda preds: {t: torch.cat(p).numpy() for t, p in preds.items()}  # noqa: E731
    return TransferRecord(source, attack, eps, settings, images.labels.numpy().copy(), cat(clean), cat(adv),
                          time.perf_counter() - start)


def matrix(targets: dict[str, nn.Module], images: ImageSet, attack_iters: dict[str, int], eps: float,
           seed: int = 0) -> dict[tuple[str, str], TransferRecord]:
    """Every source under every attack ({attack: iterations}): records by (attack, source)."""
    return {(attack, source): transfer(targets, source, images, attack, eps, n_iter=it, seed=seed)
            for attack, it in attack_iters.items() for source in targets}


def matrix_frame(records: dict[tuple[str, str], TransferRecord]) -> pd.DataFrame:
    """Tidy cells: attack, source, target, relation, the target's accuracy with its CI."""
    rows = []
    for (attack, source), rec in records.items():
        for target in rec.clean_pred:
            acc = rec.accuracy(target)
            rows.append({"attack": attack, "source": source, "target": target, "relation": relation(source, target),
                         "accuracy": round(acc.mean, 1), "95% CI": f"[{acc.low:.1f}, {acc.high:.1f}]",
                         "target clean": round(rec.clean(target).mean, 1)})
    return pd.DataFrame(rows)


def matrix_table(frame: pd.DataFrame, attack: str) -> pd.DataFrame:
    """Sources x targets for one attack, each cell "accuracy [CI]"; the last row: each target's clean accuracy."""
    part = frame[frame["attack"] == attack]
    cells = part.assign(cell=part["accuracy"].map("{:.1f}".format) + " " + part["95% CI"])
    wide = cells.pivot(index="source", columns="target", values="cell")
    order = list(dict.fromkeys(part["source"]))
    wide = wide.reindex(index=order, columns=order)
    clean = part.drop_duplicates("target").set_index("target")["target clean"].reindex(order)
    wide.loc["(clean)"] = clean.map("{:.1f}".format)
    wide.index.name, wide.columns.name = f"source ({attack})", "target"
    return wide


def paired_gain(records, attack: str, target: str, better: str, worse: str) -> Estimate:
    """Target's accuracy on `better`'s adversarial images minus on `worse`'s, pp, paired over the same images."""
    a, b = records[(attack, better)].correct(target), records[(attack, worse)].correct(target)
    return stats.bootstrap_diff(100 * a.astype(float), 100 * b.astype(float))


def sign_verdict(est: Estimate, expected: int = 1) -> str:
    """A neighbour's claim that an effect has the sign `expected` (+1 / -1), read from the CI: the neighbours report
    no numbers to compare with (HPT-GPD) or none on our scale (MAA), so their verdicts answer the sign only."""
    if est.low > 0 or est.high < 0:
        return "supports (same sign)" if (est.low > 0) == (expected > 0) else "contradicts (opposite sign)"
    return "cannot decide (sign undecided)"


def claims(records, attack: str) -> pd.DataFrame:
    """Per target: (1) proxy robustness: accuracy on another architecture's images minus on its own (white-box);
    (2) heterogeneity: on another architecture's images minus on its own architecture's other seed's."""
    targets = list(dict.fromkeys(t for (_, s), r in records.items() for t in r.clean_pred))
    rows = []
    for target in targets:
        same = [s for s in targets if relation(s, target) == RELATIONS[1]]
        for other in (s for s in targets if relation(s, target) == RELATIONS[2]):
            for claim, worse in (("proxy robustness", target), *(("heterogeneity", s) for s in same)):
                est = paired_gain(records, attack, target, other, worse)
                rows.append({"claim": claim, "attack": attack, "target": target, "images from": other,
                             "minus images from": worse, "difference (pp)": est.fmt(1), "low": est.low,
                             "verdict": sign_verdict(est)})
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame, claim: str) -> str:
    """One word for a claim over all its pairs: every pair supports, some do, or none."""
    part = table[table["claim"] == claim]
    hits = part["verdict"].str.startswith("supports").sum()
    against = part["verdict"].str.startswith("contradicts").sum()
    if hits == len(part):
        return f"supports (same sign in all {len(part)} pairs)"
    if against == len(part):
        return f"contradicts (opposite sign in all {len(part)} pairs)"
    return f"partly supports ({hits} of {len(part)} pairs of the same sign, {against} opposite)"


def plot_matrix(frame: pd.DataFrame):
    """One heatmap per attack: the target's accuracy (%) on the source's adversarial images; the diagonal is white-box."""
    import seaborn as sns

    from . import plots

    attacks_ = list(dict.fromkeys(frame["attack"]))
    fig, axes = plots.figure(ncols=len(attacks_), width=4.4, height=3.8)
    for ax, attack in zip(axes[0], attacks_):
        part = frame[frame["attack"] == attack]
        order = list(dict.fromkeys(part["source"]))
        wide = part.pivot(index="source", columns="target", values="accuracy").reindex(index=order, columns=order)
        sns.heatmap(wide, annot=True, fmt=".0f", vmin=0, vmax=100, cmap="viridis", cbar=ax is axes[0][-1], ax=ax,
                    cbar_kws={"label": "target accuracy (%)"})
        ax.set(title=f"{attack}: source -> target", xlabel="target (shown the images)", ylabel="source (attacked)")
    fig.tight_layout()
    return fig


def glue_values(records, table: pd.DataFrame, attack: str) -> dict[str, str]:
    """The page's computed words: the two claims' summaries and the mean cell of each relation (pp)."""
    frame = matrix_frame(records)
    part = frame[frame["attack"] == attack]
    means = part.groupby("relation")["accuracy"].mean()
    keys = dict(zip(RELATIONS, ("tr_whitebox", "tr_sameseed", "tr_otherarch")))
    return {"tr_proxy_verdict": summarise(table, "proxy robustness"),
            "tr_hetero_verdict": summarise(table, "heterogeneity"),
            **{keys[r]: f"{means[r]:.1f}" for r in RELATIONS if r in means}}
