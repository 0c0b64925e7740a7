"""The MAA page (41): corruptions, the feature drift they cause, MAA's adapters and their ablation, the slides'
mechanism table (distribution distances between corrected and clean features), and R-Adapt's filter under the same
corruptions. Everything is a forward pass of released models (no attack), computed on the page.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import anchor_zoo, corruptions, data, defense, featstats, maa, maa_release, models, reference, stats
from ..stats import Estimate
from ..zeroshot import ZeroShotClassifier
from .study import PLUS_DEFAULT
from .verdicts import sign_verdict

LAMBDA10 = "MAA (full), lambda_adv 10"  # our scaling check: the adversarial term weighted to matter (maa.MAA_VARIANTS)
# Our rows -> the released variant (None: mini-clip's tower as it is) and the slides' row they stand for.
MAA_ROWS = {"Base": (None, "Base (zero-shot)"), "MSE-only": ("mse-only", "Naive adaptation (MSE-only)"),
            "MAA (MLP-only)": ("maa-mlp-only", "MAA (MLP-only)"), "MAA w/o L_adv": ("maa-no-adv", "MAA w/o L_adv"),
            "MAA w/o W-Attn": ("maa-no-wattn", "MAA w/o W-Attn"), "MAA w/o Pooling": ("maa-no-pool", "MAA w/o Pooling"),
            "MAA (full)": ("maa", "MAA (full)"), LAMBDA10: ("maa-lambda10", None)}
MECHANISM_ROWS = {"Base": "Base (corrupted)", "MSE-only": "Naive adaptation (MSE-only)", "MAA (full)": "MAA",
                  LAMBDA10: None}
DISTANCE_NAMES = {"mmd2_rbf": "MMD2", "kid": "KID", "energy": "Energy", "linear_cka": "CKA"}


@dataclass
class CorruptionStudy:
    """CIFAR-10 test images, their corrupted copies, and mini-clip's classifier with each tower in front."""

    images: data.ImageSet
    severity: int
    clip: models.LoadedModel
    towers: dict[str, nn.Module]
    corrupted: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)
    _classifiers: dict[str, ZeroShotClassifier] = field(default_factory=dict)

    def x(self, corruption: str | None = None, severity: int | None = None) -> torch.Tensor:
        """Images in [0, 1]: clean (corruption None) or corrupted, each set made once (seeded)."""
        clean = self.images.images.float().div(255)
        if corruption is None:
            return clean
        key = (corruption, severity or self.severity)
        if key not in self.corrupted:
            self.corrupted[key] = corruptions.corrupt(clean, corruption, key[1], seed=0)
        return self.corrupted[key]

    def classifier(self, row: str) -> ZeroShotClassifier:
        """mini-clip's zero-shot classifier (its own text head) with a row's tower in front."""
        if row not in self._classifiers:
            self._classifiers[row] = models.classifier(self.clip, self.images.classnames, visual=self.towers[row])
        return self._classifiers[row]

    def conditions(self) -> list[tuple[str, str | None]]:
        return [("clean", None)] + [(c, c) for c in corruptions.CORRUPTIONS]


def create(n_samples: int, seed: int, severity: int) -> CorruptionStudy:
    if severity not in corruptions.SEVERITIES:
        raise ValueError(f"severity={severity}: use one of {corruptions.SEVERITIES}")
    clip = models.load_model("mini-clip")
    images = data.mini_dataset("cifar10", "test", n=n_samples, seed=seed)
    towers: dict[str, nn.Module] = {"Base": clip.clip.visual}
    for row, (variant, _) in MAA_ROWS.items():
        if variant is not None:
            towers[row] = maa_release.load_adapted(variant, models.load_model("mini-clip").clip.visual)
    return CorruptionStudy(images, severity, clip, towers)


@torch.no_grad()
def predictions(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]).numpy()


@torch.no_grad()
def embeddings(clf: ZeroShotClassifier, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    return torch.cat([clf.embed(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


# --- the drift curve -----------------------------------------------------------------------------

def drift(study: CorruptionStudy) -> pd.DataFrame:
    """Per corruption and severity: mini-clip's feature MSE (corrupted vs clean image, per image, mean) and zero-shot
    accuracy, each with a bootstrap CI; the per-image arrays are kept for the correlation's bootstrap."""
    clf = study.classifier("Base")
    clean = embeddings(clf, study.x())
    rows = []
    for c in corruptions.CORRUPTIONS:
        for s in corruptions.SEVERITIES:
            emb = embeddings(clf, study.x(c, s))
            mse = (emb - clean).pow(2).sum(-1).numpy()
            right = (emb @ clf.head).argmax(1).numpy() == study.images.labels.numpy()  # the classifier's own logits
            m, a = stats.bootstrap_mean(mse), stats.accuracy(right)
            rows.append({"corruption": c, "severity": s, "what": corruptions.describe(c, s), "feature MSE": m.mean,
                         "mse_lo": m.low, "mse_hi": m.high, "accuracy": a.mean, "acc_lo": a.low, "acc_hi": a.high,
                         "_mse": mse, "_right": right})
    return pd.DataFrame(rows)


def drift_correlation(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """Spearman correlation between the 25 cells' feature MSE and accuracy, bootstrapped over images (the same
    resampled images in every cell)."""
    from scipy.stats import spearmanr

    mse, right = np.stack(frame["_mse"]), np.stack(frame["_right"]).astype(float)
    stat = lambda idx: float(spearmanr(mse[:, idx].mean(1), right[:, idx].mean(1))[0])  # noqa: E731
    return stats.bootstrap(stat, mse.shape[1], n_boot=n_boot, seed=seed)


def plot_drift(frame: pd.DataFrame):
    from .. import plots

    fig, axes = plots.figure(ncols=1, width=6.0, height=4.0)
    ax = axes[0][0]
    for c, g in frame.groupby("corruption", sort=False):
        ax.errorbar(g["feature MSE"], g["accuracy"], xerr=[g["feature MSE"] - g["mse_lo"], g["mse_hi"] - g["feature MSE"]],
                    yerr=[g["accuracy"] - g["acc_lo"], g["acc_hi"] - g["accuracy"]], marker="o", capsize=2, label=c)
    ax.set(xlabel="feature MSE: squared L2 between unit embeddings, corrupted vs clean",
           ylabel="zero-shot accuracy (%)", title="mini-clip: drift vs accuracy, severities 1-5")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- MAA: accuracy, the slides' ablation, the mechanism ---------------------------------------------

def accuracy(study: CorruptionStudy, rows: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Accuracy (%) of each row on clean images and on each corruption at the study's severity; per-image results
    by (row, condition) for the paired differences."""
    labels = study.images.labels.numpy()
    correct, table = {}, []
    for row in rows or MAA_ROWS:
        clf = study.classifier(row)
        out = {"model": row}
        for cond, c in study.conditions():
            correct[(row, cond)] = predictions(clf, study.x(c)) == labels
            out[cond] = round(100 * correct[(row, cond)].mean(), 1)
        out["corrupted mean"] = round(float(np.mean([out[c] for c in corruptions.CORRUPTIONS])), 1)
        table.append(out)
    return pd.DataFrame(table).set_index("model"), correct


def pooled(correct: dict, row: str) -> np.ndarray:
    """Per-image 0/1 over all five corruptions (equal n each: the pooled mean is the corruption average)."""
    return np.concatenate([correct[(row, c)] for c in corruptions.CORRUPTIONS]).astype(float)


def ablation(table: pd.DataFrame, correct: dict) -> pd.DataFrame:
    """Each row minus Base (pp, paired CIs) on corrupted (mean of five) and clean images, beside the slides' R-Bench
    Dis / Ref differences from their base."""
    slides = reference.MAA_ABLATION
    base_dis, base_ref = slides["Base (zero-shot)"]["Dis"], slides["Base (zero-shot)"]["Ref"]
    out = []
    for row, (_, slide) in MAA_ROWS.items():
        if row == "Base":
            continue
        cor = stats.bootstrap_diff(100 * pooled(correct, row), 100 * pooled(correct, "Base"))
        cln = stats.bootstrap_diff(100 * correct[(row, "clean")].astype(float), 100 * correct[("Base", "clean")].astype(float))
        out.append({"model": row, "corrupted - Base (pp)": cor.fmt(1), "clean - Base (pp)": cln.fmt(1),
                    "slides: Dis - Base": f"{slides[slide]['Dis'] - base_dis:+.2f}" if slide else "not in the slides",
                    "slides: Ref - Base": f"{slides[slide]['Ref'] - base_ref:+.2f}" if slide else "not in the slides"})
    return pd.DataFrame(out).set_index("model")


def mechanism(study: CorruptionStudy, n_points: int = 60, n_boot: int = 200) -> tuple[pd.DataFrame, dict]:
    """The slides' mechanism table: corrected features (each row's tower on corrupted images) against mini-clip's
    features of the same clean images: paired feature MSE, MMD^2 (RBF), KID, energy distance and linear CKA, with
    bootstrap CIs over images. Each corruption (at the study's severity) takes its own block of `n_points` images,
    so the 5 x n_points pairs are distinct images: a clean image repeated five times would put exact duplicates
    into the clean set, which the unbiased MMD^2 / KID estimators assume away."""
    n_all = n_points * len(corruptions.CORRUPTIONS)
    if n_all > len(study.images):
        raise ValueError(f"n_points={n_points}: the mechanism table needs 5 x n_points <= n_samples = {len(study.images)}")
    clean = embeddings(study.classifier("Base"), study.x()[:n_all])
    blocks = [(c, slice(i * n_points, (i + 1) * n_points)) for i, c in enumerate(corruptions.CORRUPTIONS)]
    estimates, table = {}, []
    for row, slide in MECHANISM_ROWS.items():
        clf = study.classifier(row)
        feats = torch.cat([embeddings(clf, study.x(c)[block]) for c, block in blocks])
        est = featstats.bootstrap_distances(feats.numpy(), clean.numpy(), paired=True, n_boot=n_boot)
        per_point = (feats - clean).pow(2).sum(-1).numpy()
        est["feature MSE"] = stats.bootstrap_mean(per_point, n_boot=n_boot)
        estimates[row] = {**est, "_mse": per_point}
        cells = {DISTANCE_NAMES.get(k, k): v.fmt(4 if k != "feature MSE" else 3) for k, v in est.items()}
        slides = reference.MAA_MECHANISM[slide] if slide else {}
        table.append({"model": row, **cells, **{f"slides {k}": slides.get(k, "-") for k in reference.MAA_MECHANISM["MAA"]}})
    return pd.DataFrame(table).set_index("model"), estimates


def latency(study: CorruptionStudy, repeats: int = 3, n: int = 200) -> pd.DataFrame:
    """Forward time of each tower's classifier on n of the study's images, best of `repeats`, as a ratio to Base."""
    x = study.x()[:n]
    best = {}
    for row in ("Base", "MSE-only", "MAA (full)"):
        clf = study.classifier(row)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            predictions(clf, x)
            times.append(time.perf_counter() - t)
        best[row] = min(times)
    return pd.DataFrame({"seconds": {r: round(t, 3) for r, t in best.items()},
                         "ratio to Base": {r: round(t / best["Base"], 2) for r, t in best.items()}})


# --- R-Adapt under the same corruptions ----------------------------------------------------------

def radapt_rows(study: CorruptionStudy) -> dict[str, ZeroShotClassifier]:
    """mini-clip undefended, with the filter alone (D0 = 40 at 224 px), R-Adapt_CLIP and R-Adapt+ (released anchor)."""
    clf = study.classifier("Base")
    preset = defense.PRESETS["R-Adapt_CLIP"]
    plus = anchor_zoo.load_or_train(anchor_zoo.mini_origin(), PLUS_DEFAULT["mini"], progress=False, model=study.clip)
    return {"CLIP (no defense)": clf, "GIF only": defense.defend(clf, None, d0_224=preset.d0_224),
            "R-Adapt_CLIP": defense.defend_preset(clf, preset, defense.white_anchor(clf)),
            "R-Adapt+": defense.defend(clf, plus.anchor, PLUS_DEFAULT["mini"].alpha, PLUS_DEFAULT["mini"].beta,
                                       PLUS_DEFAULT["mini"].d0_224)}


def radapt_accuracy(study: CorruptionStudy) -> tuple[pd.DataFrame, dict]:
    rows = radapt_rows(study)
    labels = study.images.labels.numpy()
    correct, table = {}, []
    for name, clf in rows.items():
        out = {"model": name}
        for cond, c in study.conditions():
            correct[(name, cond)] = predictions(clf, study.x(c)) == labels
            out[cond] = round(100 * correct[(name, cond)].mean(), 1)
        table.append(out)
    return pd.DataFrame(table).set_index("model"), correct


def filter_effect(correct: dict) -> pd.DataFrame:
    """Does the filter help or hurt on each corruption? GIF only - no defense (pp, paired), and R-Adapt+'s."""
    out = []
    for cond in ("clean", *corruptions.CORRUPTIONS):
        row = {"condition": cond}
        for name in ("GIF only", "R-Adapt+"):
            est = stats.bootstrap_diff(100 * correct[(name, cond)].astype(float),
                                       100 * correct[("CLIP (no defense)", cond)].astype(float))
            row[f"{name} - no defense (pp)"] = est.fmt(1)
            row[f"{name}: effect"] = "helps" if est.low > 0 else "hurts" if est.high < 0 else "no clear effect"
        out.append(row)
    return pd.DataFrame(out).set_index("condition")


# --- the slides' claims, judged ------------------------------------------------------------------

def _clearly(a: Estimate, b: Estimate, lower: bool) -> bool:
    """a clearly below (lower=True) or above b: their intervals do not overlap."""
    return a.high < b.low if lower else a.low > b.high


def distribution_count(est: dict, a: str, b: str) -> tuple[int, int]:
    """(distances where a is clearly closer to clean than b, where clearly farther), of MMD2, KID, energy and CKA."""
    better = worse = 0
    for key in ("mmd2_rbf", "kid", "energy", "linear_cka"):
        lower = key != "linear_cka"  # CKA is a similarity: higher is closer
        better += _clearly(est[a][key], est[b][key], lower)
        worse += _clearly(est[b][key], est[a][key], lower)
    return better, worse


def _alignment(est: dict, row: str) -> tuple[int, int, str]:
    """How many of the four distances put `row` clearly closer to clean than MSE-only, clearly farther, and the word."""
    better, worse = distribution_count(est, row, "MSE-only")
    verdict = ("supports" if better == 4 else f"partly supports ({better} of 4 distances closer)" if better and not worse
               else f"contradicts ({worse} of 4 distances farther)" if worse else "cannot decide (intervals overlap)")
    return better, worse, verdict


def claims(drift_r: Estimate, correct: dict, est: dict) -> tuple[pd.DataFrame, dict[str, str]]:
    """The slides' claims with computed verdicts and the page's glue values."""
    d_mse = stats.bootstrap_diff(est["MSE-only"]["_mse"], est["Base"]["_mse"])
    d_acc = stats.bootstrap_diff(100 * pooled(correct, "MSE-only"), 100 * pooled(correct, "Base"))
    mse_acc_verdict = ("supports (accuracy falls)" if d_acc.high < 0 else "contradicts (accuracy rises)" if d_acc.low > 0
                       else "cannot decide (sign undecided)")
    gap_better, gap_worse = distribution_count(est, "MSE-only", "Base")
    gap_verdict = ("supports" if gap_worse == 4 else f"partly supports ({gap_worse} of 4 distances farther)" if gap_worse
                   else "contradicts (no distance clearly farther)" if gap_better else "cannot decide (intervals overlap)")
    adv_better, adv_worse, adv_verdict = _alignment(est, "MAA (full)")
    adv10_better, adv10_worse, adv10_verdict = _alignment(est, LAMBDA10)
    gain = stats.bootstrap_diff(100 * pooled(correct, "MAA (full)"), 100 * pooled(correct, "Base"))
    clean = stats.bootstrap_diff(100 * correct[("MAA (full)", "clean")].astype(float),
                                 100 * correct[("Base", "clean")].astype(float))
    no_adv = stats.bootstrap_diff(100 * pooled(correct, "MAA (full)"), 100 * pooled(correct, "MAA w/o L_adv"))
    no_adv10 = stats.bootstrap_diff(100 * pooled(correct, LAMBDA10), 100 * pooled(correct, "MAA w/o L_adv"))
    slides, base = reference.MAA_ABLATION, reference.MAA_ABLATION["Base (zero-shot)"]
    rows = [
        ("drift", "stronger corruptions: larger feature drift, lower accuracy (Spearman, MSE vs accuracy)",
         drift_r.fmt(2), "negative", sign_verdict(drift_r, -1)),
        ("mse", "MSE-only lowers feature MSE (Base -> MSE-only) ...", d_mse.fmt(3), "lower", sign_verdict(d_mse, -1)),
        ("mse_acc", "... but hurts accuracy on corrupted images (MSE-only - Base, pp)", d_acc.fmt(1),
         f"{slides['Naive adaptation (MSE-only)']['Dis'] - base['Dis']:+.2f}", mse_acc_verdict),
        ("gap", "MSE-only worsens distribution-level alignment (vs Base; MMD2, KID, energy, CKA)",
         f"{gap_worse} of 4 farther, {gap_better} closer", "4 of 4 farther", gap_verdict),
        ("adv", "the adversarial loss restores it (MAA vs MSE-only)", f"{adv_better} of 4 closer, {adv_worse} farther",
         "4 of 4 closer", adv_verdict),
        ("gain", "MAA improves corrupted-image accuracy (MAA - Base, pp)", gain.fmt(1),
         f"{slides['MAA (full)']['Dis'] - base['Dis']:+.2f}", sign_verdict(gain, 1)),
        ("clean", "... and keeps clean accuracy (MAA - Base, pp)", clean.fmt(1),
         f"{slides['MAA (full)']['Ref'] - base['Ref']:+.2f}", "supports (not clearly lower)" if clean.high >= 0 else
         "contradicts (lower)"),
        ("noadv", "removing L_adv costs corrupted accuracy (MAA - MAA w/o L_adv, pp)", no_adv.fmt(1),
         f"{slides['MAA (full)']['Dis'] - slides['MAA w/o L_adv']['Dis']:+.2f}", sign_verdict(no_adv, 1)),
        ("adv10", "scaling check, lambda_adv 10: the adversarial loss restores alignment (vs MSE-only)",
         f"{adv10_better} of 4 closer, {adv10_worse} farther", "4 of 4 closer", adv10_verdict),
        ("noadv10", "scaling check, lambda_adv 10: L_adv gains corrupted accuracy (vs MAA w/o L_adv, pp)",
         no_adv10.fmt(1), f"{slides['MAA (full)']['Dis'] - slides['MAA w/o L_adv']['Dis']:+.2f}", sign_verdict(no_adv10, 1)),
    ]
    table = pd.DataFrame(rows, columns=["key", "claim", "ours", "slides", "verdict"]).set_index("key")
    glue = {f"maa_{k}": r["ours"] for k, r in table.iterrows()}
    glue.update({f"maa_{k}_verdict": r["verdict"] for k, r in table.iterrows()})
    return table, glue


def filter_summary(effect: pd.DataFrame) -> dict[str, str]:
    """How many corruptions the filter alone (and R-Adapt+) helps and hurts on, in words."""
    out = {}
    for name, key in (("GIF only", "gif"), ("R-Adapt+", "plus")):
        col = effect.loc[list(corruptions.CORRUPTIONS), f"{name}: effect"]
        hurts, helps = [c for c in col.index if col[c] == "hurts"], [c for c in col.index if col[c] == "helps"]
        out[f"ra_{key}_hurts"] = ", ".join(hurts) or "none"
        out[f"ra_{key}_helps"] = ", ".join(helps) or "none"
        out[f"ra_{key}_clean"] = effect.loc["clean", f"{name} - no defense (pp)"]
    return out
