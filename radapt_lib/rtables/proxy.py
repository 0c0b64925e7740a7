"""The HPT-GPD page (40): the transfer matrix as tables, a figure and the proxy claims; HPT and HPT-GPD beside FARE,
TeCoA and R-Adapt+ on the same images and attack, their training cost, and the summary's claims judged by sign (the
summary reports no numbers to compare with). The matrix itself is `transfer`'s (cached and released; its key holds
that module's code, so what reads the records lives here).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import data, hpt, models, results, stats, transfer, zoo
from ..zeroshot import predict
from ..stats import Estimate
from .study import Study, Variant
from .verdicts import sign_verdict

NEIGHBOURS = {"HPT": "mini-hpt", "HPT-GPD": "mini-hpt-gpd"}
METHODS = ("CLIP", "TeCoA", "FARE", "R-Adapt+", "HPT", "HPT-GPD")


def create(n_samples: int, seed: int) -> Study:
    """Table 1's study (animals = source classes, vehicles = unseen), R-Adapt+ from its released anchor, and the
    two HPT fine-tunes of the released zoo as undefended rows."""
    study = Study.create("mini", ("animals", "vehicles"), n_samples, seed)
    study.train_plus(progress=False)
    for method, name in NEIGHBOURS.items():
        study.zoo[method] = models.load_model(name)
        study.variants[method] = Variant(method, base=method)
    return study


def clean_correct(study: Study, n_clean: int | None = None) -> dict[tuple[str, str], np.ndarray]:
    """Per-image clean correctness of every method on `n_clean` seeded test images per split (None: all of them). No
    attack, only a forward pass: the clean claims get ten times the images that the attacked ones get."""
    out = {}
    for dataset in study.datasets:
        images = data.mini_dataset(dataset, "test", n=n_clean, seed=study.seed)
        for method in METHODS:
            out[(method, dataset)] = (predict(study.model(method, dataset), images.images) == images.labels).numpy()
    return out


def comparison(study: Study, attack: str, eps_255: float, n_iter: int, clean: dict) -> pd.DataFrame:
    """Clean accuracy on whole test splits and white-box robust accuracy on the study's images (%, CIs), per method
    and split, each model attacked end to end."""
    study.evaluate(METHODS, attack, [eps_255], n_iter=n_iter)
    split = {"animals": "source classes", "vehicles": "unseen classes"}
    rows = []
    for method in METHODS:
        row = {"method": method}
        for dataset, where in split.items():
            c = stats.accuracy(clean[(method, dataset)])
            r = study.results[(method, dataset, attack, float(eps_255))]
            row[f"clean, {where}"] = c.fmt(1)
            row[f"robust, {where}"] = r.robust().fmt(1)
            flag = results.collapse_flag(r, len(study.images[dataset].classnames))
            row[f"collapse flag, {where}"] = flag
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def cost_table(study: Study) -> pd.DataFrame:
    """What each robust model cost to train, from the release records (each trained on its own run of these machines)."""
    rows = []
    for method, name in (("TeCoA", "mini-tecoa"), ("FARE", "mini-fare"), *((m, n) for m, n in NEIGHBOURS.items())):
        rec = zoo.entry(name)
        cfg = rec["spec"].get("finetune") or rec["spec"]["hpt"]
        rows.append({"method": method, "what is trained": "vision tower (all weights)", "steps": rec["steps"],
                     "images seen": rec["images_seen"], "inner PGD steps": cfg["pgd_steps"],
                     "teacher": (f"proxy {cfg['proxy']} (vanilla)" if "proxy" in cfg else
                                 "frozen mini-clip" if cfg["method"] == "fare" else "labels"),
                     "minutes (release)": rec["minutes"]})
    run = study.plus_run
    rows.append({"method": "R-Adapt+", "what is trained": "one anchor tensor (block 1's output)",
                 "steps": run.config.epochs * -(-run.config.n_images // run.config.batch_size),
                 "images seen": run.images_seen, "inner PGD steps": run.config.pgd_steps, "teacher": "labels",
                 "minutes (release)": round(run.seconds / 60, 2)})
    return pd.DataFrame(rows).set_index("method")


# The summary's two training claims: (key, claim, a, b, which accuracy, split) for the paired difference a - b.
HPT_CLAIMS = (
    ("hpt_gain", "HPT transfers proxy robustness: HPT - CLIP, robust, source classes", "HPT", "CLIP", "robust", "animals"),
    ("hpt_gain_unseen", "... and to unseen classes: HPT - CLIP, robust, unseen classes", "HPT", "CLIP", "robust",
     "vehicles"),
    ("gpd_clean", "GPD recovers zero-shot generalization: HPT-GPD - HPT, clean, unseen classes", "HPT-GPD", "HPT",
     "clean", "vehicles"),
    ("gpd_robust", "... without giving the robustness back: HPT-GPD - HPT, robust, source classes", "HPT-GPD", "HPT",
     "robust", "animals"),
)


def hpt_claims(study: Study, attack: str, eps_255: float, clean: dict) -> pd.DataFrame:
    """The summary's training claims as paired differences (pp) over the same images, judged by sign (clean: on the
    whole test split; robust: on the study's attacked images)."""
    rows = []
    for key, claim, a, b, which, split in HPT_CLAIMS:
        est = (stats.bootstrap_diff(100 * clean[(a, split)].astype(float), 100 * clean[(b, split)].astype(float))
               if which == "clean" else study.diff(a, b, attack, eps_255, which, [split]))
        flagged = [m for m in (a, b) if which == "robust" and study.collapsed(m, attack, eps_255, [split])]
        verdict = (f"excluded ({' and '.join(flagged)} flagged by the collapse rule: a collapsed model's robust "
                   f"accuracy is no evidence)" if flagged else _verdict(key, est))
        rows.append({"key": key, "claim": claim, "difference (pp)": est.fmt(1), "verdict": verdict})
    return pd.DataFrame(rows).set_index("key")


def _verdict(key: str, est: Estimate) -> str:
    if key == "gpd_robust":  # the claim is "not lower": an interval holding 0 is consistent with it
        return "contradicts (lower)" if est.high < 0 else "supports (not clearly lower)"
    return sign_verdict(est)


def glue_values(study: Study, claims: pd.DataFrame, attack: str, eps_255: float) -> dict[str, str]:
    out = {}
    for key, row in claims.iterrows():
        out[key], out[f"{key}_verdict"] = row["difference (pp)"], row["verdict"]
    for method, key in (("HPT", "hpt_robust"), ("FARE", "fare_robust"), ("TeCoA", "tecoa_robust"),
                        ("R-Adapt+", "plus_robust")):
        out[key] = f"{study.results[(method, 'animals', attack, float(eps_255))].robust().mean:.1f}"
    return out


def protocol(study: Study, attack: str, eps_255: float, n_iter: int, attack_iters: dict[str, int], n_transfer: int,
             clean: dict) -> str:
    cfg = hpt.HPT_FINETUNES["mini-hpt-gpd"]
    return "\n".join([
        f"Transfer matrix: {n_transfer} animal test images (seed {study.seed}), every image attacked on the source "
        f"(white-box, its own zero-shot head), l-inf {eps_255}/255; attacks {attack_iters} (iterations); cells: "
        "the target right both clean and on the source's image; CIs: bootstrap over images (1000 resamples).",
        f"Comparison: robust accuracy on {study.n_samples} test images per split (animals = source classes, vehicles = "
        f"unseen; Table 1's images), {attack} {n_iter} iterations at {eps_255}/255, end to end through each model "
        f"(R-Adapt+: GIF + anchor, released); clean accuracy on "
        + ", ".join(f"{len(clean[('CLIP', d)])} {d}" for d in study.datasets) + " test images (no attack).",
        f"HPT: mini-clip's vision tower, {cfg.steps} steps of {cfg.batch_size} animal training images, PGD-{cfg.pgd_steps} "
        f"on the target, KL to the proxy {cfg.proxy} at T = {cfg.temperature}; GPD: {cfg.gpd_warmup} warm-up steps "
        f"(lr rising, KL to the original x {cfg.gpd_anchor}), then a cosine phase (KL to the pivot x {cfg.gpd_pull}).",
        "Models: the released zoo (zoo/manifest.json); one training seed per fine-tune.",
    ])


# --- the transfer matrix ---------------------------------------------------------------------------

def matrix_frame(records: dict[tuple[str, str], transfer.TransferRecord]) -> pd.DataFrame:
    """Tidy cells: attack, source, target, relation, the target's accuracy with its CI."""
    rows = []
    for (attack, source), rec in records.items():
        for target in rec.clean_pred:
            acc = rec.accuracy(target)
            rows.append({"attack": attack, "source": source, "target": target, "relation": transfer.relation(source, target),
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


def proxy_claims(records, attack: str) -> pd.DataFrame:
    """Per target: (1) proxy robustness: accuracy on another architecture's images minus on its own (white-box);
    (2) heterogeneity: on another architecture's images minus on its own architecture's other seed's."""
    targets = list(dict.fromkeys(t for (_, s), r in records.items() for t in r.clean_pred))
    rows = []
    for target in targets:
        same = [s for s in targets if transfer.relation(s, target) == transfer.RELATIONS[1]]
        for other in (s for s in targets if transfer.relation(s, target) == transfer.RELATIONS[2]):
            for claim, worse in (("proxy robustness", target), *(("heterogeneity", s) for s in same)):
                est = paired_gain(records, attack, target, other, worse)
                rows.append({"claim": claim, "attack": attack, "target": target, "images from": other,
                             "minus images from": worse, "difference (pp)": est.fmt(1), "low": est.low,
                             "verdict": sign_verdict(est)})
    return pd.DataFrame(rows)


def proxy_summary(table: pd.DataFrame, claim: str) -> str:
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

    from .. import plots

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


def transfer_glue_values(records, table: pd.DataFrame, attack: str) -> dict[str, str]:
    """The page's computed words: the two claims' summaries and the mean cell of each relation (pp)."""
    frame = matrix_frame(records)
    part = frame[frame["attack"] == attack]
    means = part.groupby("relation")["accuracy"].mean()
    keys = dict(zip(transfer.RELATIONS, ("tr_whitebox", "tr_sameseed", "tr_otherarch")))
    return {"tr_proxy_verdict": proxy_summary(table, "proxy robustness"),
            "tr_hetero_verdict": proxy_summary(table, "heterogeneity"),
            **{keys[r]: f"{means[r]:.1f}" for r in transfer.RELATIONS if r in means}}
