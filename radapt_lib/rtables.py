"""The R-Adapt pages' plumbing: one `Study` (models, images, anchors, defended variants), evaluation
grids as tidy frames, comparison tables beside the paper's numbers, verdicts and cost timings.

Pages call one to three functions of this module per cell; everything heavy is cached below it
(`evaluation.evaluate` for attacks, `defense.train_anchor` for R-Adapt+ anchors).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from . import config, data, defense, evaluation, models, reference, results, stats

BASELINES = ("CLIP", "TeCoA", "TGA", "FARE")
METHODS = reference.METHODS  # Table 1's row order
RADAPT = ("R-Adapt_CLIP", "R-Adapt_TeCoA", "R-Adapt_TGA", "R-Adapt_FARE", "R-Adapt+")

# R-Adapt+ anchor optimisation per profile. Paper: 2k ImageNet images, 10 epochs, eps 4/255 (the inner
# attack and optimiser are not stated). Mini: scaled to ~1 min on 2 CPU threads (see the pages).
PLUS_DEFAULT = {
    "mini": defense.AnchorTrainConfig(n_images=500, epochs=5, pgd_steps=2, batch_size=50, lr=1e-2),
    "paper": defense.AnchorTrainConfig(n_images=int(reference.R_ADAPT_PLUS_BUDGET["images"]),
                                       epochs=int(reference.R_ADAPT_PLUS_BUDGET["epochs"]), pgd_steps=10, batch_size=50,
                                       lr=1e-2),
}

DEFAULTS = {
    "mini": {"datasets": ("animals", "vehicles"), "plus_train": "animals"},
    "paper": {"datasets": reference.TABLE1_DATASETS, "plus_train": "ImageNet"},
}


def default_datasets(profile: str, datasets: Sequence[str] | None = None) -> tuple[str, ...]:
    return tuple(datasets) if datasets else tuple(DEFAULTS[config.check_profile(profile)]["datasets"])


load_images = data.load_images  # one loader for both profiles, in data.py


@dataclass
class Variant:
    """A model under test: a base model (by method name), optionally defended."""

    name: str
    base: str = "CLIP"
    anchor: torch.Tensor | None = None
    alpha: float = 1.0
    beta: float = 0.0
    d0_224: float | None = None

    @property
    def defended(self) -> bool:
        return self.anchor is not None or self.d0_224 is not None


@dataclass
class Study:
    """Models, evaluation images and defended variants of one page."""

    profile: str
    datasets: tuple[str, ...]
    n_samples: int
    seed: int
    zoo: dict[str, models.LoadedModel]
    images: dict[str, data.ImageSet]
    variants: dict[str, Variant] = field(default_factory=dict)
    results: dict[tuple, evaluation.EvalResult] = field(default_factory=dict)
    plus_run: defense.AnchorRun | None = None
    _classifiers: dict = field(default_factory=dict)

    @classmethod
    def create(cls, profile: str = "mini", datasets: Sequence[str] | None = None, n_samples: int = 200,
               seed: int = 0) -> "Study":
        """Load the profile's four models and the evaluation images; register Table 9's model-guided presets."""
        config.check_profile(profile)
        names = models.PROFILE_MODELS[profile]
        zoo = {method: models.load_model(name) for method, name in names.items()}
        datasets = default_datasets(profile, datasets)
        images = {d: load_images(profile, d, n_samples, seed) for d in datasets}
        study = cls(profile, datasets, n_samples, seed, zoo, images)
        for method in BASELINES:
            study.variants[method] = Variant(method, base=method)
        for name, preset in defense.PRESETS.items():
            if preset.anchor_from != "trained":
                study.add(name, anchor=study.white_anchor(preset.anchor_from), alpha=preset.alpha, beta=preset.beta,
                          d0_224=preset.d0_224)
        return study

    # -- models --------------------------------------------------------------------------------
    def classifier(self, method: str, dataset: str):
        """The undefended zero-shot classifier of a base model for a dataset's classes."""
        key = (method, dataset)
        if key not in self._classifiers:
            self._classifiers[key] = models.classifier(self.zoo[method], self.images[dataset].classnames)
        return self._classifiers[key]

    def white_anchor(self, method: str) -> torch.Tensor:
        """Eq. 6 (method CLIP) / Eq. 7 (FARE, TeCoA, TGA): the tower's block-1 response to a white image."""
        loaded = self.zoo[method]
        return defense.white_anchor(loaded.clip.visual, loaded.mean, loaded.std)

    def add(self, name: str, base: str = "CLIP", anchor: torch.Tensor | None = None, alpha: float = 1.0,
            beta: float = 0.0, d0_224: float | None = None) -> Variant:
        self.variants[name] = Variant(name, base, anchor, alpha, beta, d0_224)
        return self.variants[name]

    def model(self, name: str, dataset: str):
        v = self.variants[name]
        clf = self.classifier(v.base, dataset)
        return defense.defend(clf, v.anchor, v.alpha, v.beta, v.d0_224) if v.defended else clf

    def train_images(self, n: int) -> data.ImageSet:
        train = DEFAULTS[self.profile]["plus_train"]
        if self.profile == "mini":
            return data.mini_dataset(train, "train", n=n, seed=self.seed)
        return load_images(self.profile, train, n, self.seed, split="train")

    def train_plus(self, cfg: defense.AnchorTrainConfig | None = None, name: str = "R-Adapt+", register: bool = True,
                   progress: bool = True, **changes) -> defense.AnchorRun:
        """R-Adapt+ (Eq. 8): train (or load) the anchor on the source split against the defended CLIP.

        cfg None: the profile's PLUS_DEFAULT, with `changes` (e.g. n_images=500, epochs=3) applied.
        """
        cfg = replace(cfg or PLUS_DEFAULT[self.profile], **changes)
        train = self.train_images(cfg.n_images)
        run = defense.train_anchor(models.classifier(self.zoo["CLIP"], train.classnames), train, cfg, progress)
        if register:
            self.add(name, "CLIP", run.anchor, cfg.alpha, cfg.beta, cfg.d0_224)
        if name == "R-Adapt+":
            self.plus_run = run
        return run

    def subset(self, n: int) -> "Study":
        """The first n images per dataset (itself a seeded subset: images are a seeded shuffle), same models and variants."""
        images = {d: data.ImageSet(s.images[:n], s.labels[:n], s.classnames, s.source) for d, s in self.images.items()}
        return Study(self.profile, self.datasets, min(n, self.n_samples), self.seed, self.zoo, images,
                     self.variants, {}, self.plus_run, self._classifiers)

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, methods: Iterable[str], attack: str, eps_255: Iterable[float], datasets: Iterable[str] | None = None,
                 n_iter: int = 10, n_restarts: int = 1, n_queries: int = 1000) -> pd.DataFrame:
        """One row per (method, dataset, attack, eps): clean and robust accuracy with CIs, top-class shares."""
        rows = []
        for dataset in datasets or self.datasets:
            for method in methods:
                model = self.model(method, dataset)
                for e in eps_255:
                    res = evaluation.evaluate(model, self.images[dataset], attack, e / 255, label=f"{method}/{dataset}",
                                              n_iter=n_iter, n_restarts=n_restarts, n_queries=n_queries, seed=self.seed)
                    self.results[(method, dataset, attack, float(e))] = res
                    rows.append(_row(method, dataset, attack, e, res, len(self.images[dataset].classnames)))
        return pd.DataFrame(rows)

    def evaluate_many(self, methods: Iterable[str], attacks: dict[str, int], eps_255: Iterable[float],
                      n_queries: int = 1000) -> pd.DataFrame:
        """`evaluate` for several attacks ({attack: iterations}), rows concatenated."""
        methods, eps_255 = list(methods), list(eps_255)
        return pd.concat([self.evaluate(methods, a, eps_255, n_iter=it, n_queries=n_queries) for a, it in attacks.items()],
                         ignore_index=True)

    def correct(self, method: str, attack: str, eps_255: float, which: str = "robust",
                datasets: Iterable[str] | None = None) -> np.ndarray:
        """Per-image 0/1 correctness, concatenated over datasets (equal n each: pooled mean = dataset average)."""
        out = []
        for d in datasets or self.datasets:
            r = self.results[(method, d, attack, float(eps_255))]
            ok = r.clean_pred == r.labels
            out.append(ok if which == "clean" else ok & (r.adv_pred == r.labels))
        return np.concatenate(out).astype(float)

    def diff(self, a: str, b: str, attack: str, eps_255: float, which: str = "robust",
             datasets: Iterable[str] | None = None) -> stats.Estimate:
        """Paired bootstrap of (a - b) in pp over the same images."""
        return stats.bootstrap_mean(100 * (self.correct(a, attack, eps_255, which, datasets)
                                           - self.correct(b, attack, eps_255, which, datasets)))


def _row(method, dataset, attack, eps_255, res: evaluation.EvalResult, n_classes: int) -> dict:
    clean, rob = res.clean(), res.robust()
    chance = 100.0 / n_classes
    return {"method": method, "dataset": dataset, "attack": attack, "eps": float(eps_255), "n": res.n,
            "clean": clean.mean, "clean_lo": clean.low, "clean_hi": clean.high,
            "robust": rob.mean, "robust_lo": rob.low, "robust_hi": rob.high,
            "top_clean": res.clean_top_share(), "top_adv": res.adv_top_share(), "chance": chance,
            "collapse": bool(results.collapse_flag(res, n_classes)),
            "seconds": res.seconds, "warnings": list(res.warnings)}


def average(study: Study, frame: pd.DataFrame) -> pd.DataFrame:
    """Dataset-averaged clean/robust accuracy per (method, attack, eps), bootstrap CI over pooled images."""
    rows = []
    for (method, attack, eps), g in frame.groupby(["method", "attack", "eps"], sort=False):
        ds = list(g["dataset"])
        c = stats.bootstrap_mean(100 * study.correct(method, attack, eps, "clean", ds))
        r = stats.bootstrap_mean(100 * study.correct(method, attack, eps, "robust", ds))
        rows.append({"method": method, "attack": attack, "eps": eps, "n": int(g["n"].sum()),
                     "clean": c.mean, "clean_lo": c.low, "clean_hi": c.high,
                     "robust": r.mean, "robust_lo": r.low, "robust_hi": r.high,
                     "top_clean": g["top_clean"].max(), "top_adv": g["top_adv"].max(), "collapse": bool(g["collapse"].any())})
    return pd.DataFrame(rows)


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


def judge(diff: stats.Estimate, paper: float) -> str:
    """Our paired difference (with CI) against the paper's: agreement in size, direction only, or neither."""
    if diff.low <= 0 <= diff.high:
        return "cannot decide (our CI holds 0" + (" and the paper's value)" if diff.low <= paper <= diff.high else ")")
    if diff.low <= paper <= diff.high:
        return "agrees (the paper's value lies in our CI)"
    if (diff.mean > 0) == (paper > 0) and paper != 0:
        return f"same direction, {'smaller' if abs(diff.mean) < abs(paper) else 'larger'} effect"
    return "contradicts (opposite direction)" if paper != 0 else "contradicts (the paper reports no difference)"


def glue_all(values: dict) -> None:
    """myst_nb.glue every value (numbers rounded to 0.1, strings as given), without displaying them."""
    from myst_nb import glue

    for key, value in values.items():
        glue(key, round(float(value), 1) if isinstance(value, (float, np.floating)) else value, display=False)


def protocol(study: Study, attack: str, eps_255: Sequence[float], n_iter: int, n_restarts: int = 1,
             n_queries: int | None = None, extra: str = "") -> str:
    """The exact protocol line printed under a table."""
    res = 32 if study.profile == "mini" else 224
    q = f", {n_queries} queries" if n_queries else ""
    names = ", ".join(f"{m}={models.PROFILE_MODELS[study.profile][m]}" for m in BASELINES)
    return (f"Protocol: {attack}, {n_iter} iterations, {n_restarts} restart(s){q}; l-inf eps = "
            f"{', '.join(f'{e:g}' for e in eps_255)}/255 on [0, 1] pixels; n = {study.n_samples} seeded test images per dataset "
            f"(seed {study.seed}) of {', '.join(study.datasets)}; {res} px; robust = correct clean and attacked; "
            f"95% percentile bootstrap CIs over images (1000 resamples; averages pool images of all datasets); "
            f"models {names}; GIF D0 = 40 at 224 px -> {defense.d0_at(res, 40):.2f} at {res} px "
            f"(TGA: 30 -> {defense.d0_at(res, 30):.2f}); {results.COLLAPSE_RULE}. {extra}").strip()


# --- cost -------------------------------------------------------------------------------------

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


# --- claims and verdicts ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """'a beats b by paper_diff pp' on clean or robust accuracy (paired over the same images)."""

    key: str
    a: str
    b: str
    which: str  # "clean" | "robust"
    paper_diff: float
    attack: str | None = None  # None: the table's attack / eps
    eps: float | None = None


def _paper_diff(a: str, b: str, which: str) -> float:
    table = reference.TABLE1_CLEAN if which == "clean" else reference.TABLE1_AUTOATTACK
    return round(table[a]["Avg"] - table[b]["Avg"], 1)


# Table 1's claims, with the paper's 16-dataset average differences taken from `reference`.
TABLE1_CLAIMS = tuple(
    Claim(key, a, b, which, _paper_diff(a, b, which))
    for key, a, b, which in (
        ("free_rob", "R-Adapt_CLIP", "CLIP", "robust"), ("free_clean", "R-Adapt_CLIP", "CLIP", "clean"),
        ("tecoa_clean", "R-Adapt_TeCoA", "TeCoA", "clean"), ("tecoa_rob", "R-Adapt_TeCoA", "TeCoA", "robust"),
        ("tga_clean", "R-Adapt_TGA", "TGA", "clean"), ("tga_rob", "R-Adapt_TGA", "TGA", "robust"),
        ("fare_clean", "R-Adapt_FARE", "FARE", "clean"), ("fare_rob", "R-Adapt_FARE", "FARE", "robust"),
        ("plus_clean", "R-Adapt+", "FARE", "clean"), ("plus_rob", "R-Adapt+", "FARE", "robust"),
    )
)


def delta_claims(a: str, b: str, attacks: dict[str, str], eps_list: Sequence[float], paper: dict) -> tuple[Claim, ...]:
    """Claims 'a - b robust' per (attack, eps), the paper's difference from Table 2/3 (`attacks`: ours -> paper name)."""
    return tuple(Claim(f"{ours}_{int(e)}".replace("-", ""), a, b, "robust",
                       round(paper[a][(name, int(e))] - paper[b][(name, int(e))], 1), ours, float(e))
                 for ours, name in attacks.items() for e in eps_list)


def overall(table: pd.DataFrame) -> str:
    """One computed sentence summarising a claims table."""
    v = table["verdict"]
    size = int(v.str.startswith("agrees").sum())
    direction = int(v.str.startswith("same direction").sum())
    undecided = int(v.str.startswith("cannot").sum())
    contra = int(v.str.startswith("contradicts").sum())
    return (f"of {len(v)} paper differences checked here, {size} agree in size, {direction} only in direction, "
            f"{contra} are contradicted and {undecided} cannot be decided at this sample size")


def claims_table(study: Study, claims: Sequence[Claim], attack: str, eps_255: float,
                 datasets: Iterable[str] | None = None) -> pd.DataFrame:
    """Per claim: our paired difference a - b (pp, 95% CI), the paper's, and the verdict."""
    rows = []
    for c in claims:
        att, e = c.attack or attack, c.eps if c.eps is not None else eps_255
        d = study.diff(c.a, c.b, att, e, c.which, datasets)
        rows.append({"key": c.key, "claim": f"{c.a} - {c.b}, {c.which}" + (f", {att} {e:g}/255" if c.attack else ""), "ours (pp)": ci(d.mean, d.low, d.high),
                     "ours": d.mean, "paper (pp)": c.paper_diff,
                     "verdict": judge(d, c.paper_diff)})
    return pd.DataFrame(rows).set_index("key")


def glue_claims(table: pd.DataFrame, prefix: str) -> None:
    """Glue `<prefix><key>_ours` (pp with CI), `_paper`, `_verdict` per claim, and `<prefix>overall`."""
    values = {f"{prefix}overall": overall(table)}
    for key, row in table.iterrows():
        values[f"{prefix}{key}_ours"] = row["ours (pp)"]
        values[f"{prefix}{key}_paper"] = f"{row['paper (pp)']:+.1f}"
        values[f"{prefix}{key}_verdict"] = row["verdict"]
    glue_all(values)


def show_claims(table: pd.DataFrame) -> pd.DataFrame:
    return table[["claim", "ours (pp)", "paper (pp)", "verdict"]]


def collapsed(frame: pd.DataFrame) -> str:
    """A sentence naming the flagged (method, dataset) pairs with their clean accuracy and top-class share."""
    g = frame[frame["collapse"]].drop_duplicates(["method", "dataset"])
    if g.empty:
        return "no model is flagged as collapsed"
    items = [f"{r.method} on {r.dataset} (clean {r.clean:.1f}%, top class {r.top_clean:.1f}%)" for r in g.itertuples()]
    return "flagged as collapsed: " + "; ".join(items)


# --- figures -----------------------------------------------------------------------------------------

def plot_tradeoff(avg: pd.DataFrame, paper_clean: dict, paper_robust: dict, attack_label: str):
    """Clean vs robust accuracy (dataset averages, 95% CI bars) per method; the paper's averages as hollow markers."""
    from . import plots

    fig, axes = plots.figure(ncols=2, width=5.2, height=4.2)
    ax = axes[0][0]
    import seaborn as sns

    palette = dict(zip(avg["method"], sns.color_palette("colorblind", len(avg))))
    for r in avg.itertuples():
        ax.errorbar(r.clean, r.robust, xerr=[[r.clean - r.clean_lo], [r.clean_hi - r.clean]],
                    yerr=[[r.robust - r.robust_lo], [r.robust_hi - r.robust]], fmt="o", color=palette[r.method],
                    label=r.method, capsize=2)
    ax.set(xlabel="clean accuracy (%)", ylabel=f"robust accuracy (%), {attack_label}", title="this replication (mini)")
    ax.legend(fontsize=7, loc="best")
    ax = axes[0][1]
    for m in avg["method"]:
        if m in paper_clean:
            ax.scatter(paper_clean[m], paper_robust[m], facecolors="none", edgecolors=[palette[m]], s=50, label=m)
    ax.set(xlabel="clean accuracy (%)", ylabel="robust accuracy (%), AutoAttack 4/255", title="paper (16-dataset avg)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_sweep(frame: pd.DataFrame, x: str, xlabel: str, title: str, ax=None, logx: bool = False):
    """Clean and robust accuracy (with 95% CI bands) against a swept setting."""
    from . import plots

    if ax is None:
        fig, axes = plots.figure(width=5.0, height=3.6)
        ax = axes[0][0]
    plots.style()
    f = frame.sort_values(x)
    for metric, marker in (("clean", "o"), ("robust", "s")):
        ax.plot(f[x], f[metric], marker=marker, label=metric)
        ax.fill_between(f[x], f[f"{metric}_lo"], f[f"{metric}_hi"], alpha=0.2)
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel="accuracy (%)", title=title, ylim=(0, 100))
    ax.legend()
    return ax


def plus_summary(run: defense.AnchorRun, train_dataset: str) -> str:
    c = run.config
    losses = ", ".join(f"{v:.3f}" for v in run.losses)
    return (f"R-Adapt+ anchor {tuple(run.anchor.shape)}: {c.n_images} {train_dataset} train images x {c.epochs} epochs, "
            f"PGD-{c.pgd_steps} inner attack at eps {c.eps * 255:.0f}/255 against the defended model (GIF D0 {c.d0_224:g}@224, "
            f"alpha {c.alpha}, beta {c.beta}), Adam lr {c.lr}, batch {c.batch_size}; adversarial CE per epoch: {losses}")


def stack(*frames: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(list(frames), ignore_index=False)


def plot_eps(avg: pd.DataFrame, names: dict[str, str]):
    """Robust accuracy (dataset average, 95% CI) against eps, one panel per attack, one line per method."""
    from . import plots

    attacks_ = list(dict.fromkeys(avg["attack"]))
    fig, axes = plots.figure(ncols=len(attacks_), width=4.0, height=3.4)
    for ax, attack in zip(axes[0], attacks_):
        g = avg[avg["attack"] == attack]
        for method, h in g.groupby("method", sort=False):
            h = h.sort_values("eps")
            ax.errorbar(h["eps"], h["robust"], yerr=[h["robust"] - h["robust_lo"], h["robust_hi"] - h["robust"]],
                        marker="o", capsize=2, label=method)
        ax.set(xlabel="eps (x 1/255, l-inf)", ylabel="robust accuracy (%)", title=names.get(attack, attack), ylim=(0, 100))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- ablations (Table 6, Fig. 7, Tables 7-8) ------------------------------------------------------

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


def sweep_table(avg: pd.DataFrame, param: str) -> pd.DataFrame:
    return pd.DataFrame({"setting": [f"{param} = {v:g}" for v in avg[param]],
                         "clean": [ci(r.clean, r.clean_lo, r.clean_hi) for r in avg.itertuples()],
                         "robust": [ci(r.robust, r.robust_lo, r.robust_hi) for r in avg.itertuples()],
                         "top-class % clean/adv": [f"{r.top_clean:.1f} / {r.top_adv:.1f}" for r in avg.itertuples()],
                         "flag": ["COLLAPSE" if c else "" for c in avg["collapse"]]}).set_index("setting")


def plot_fig7(frame_a: pd.DataFrame, frame_d: pd.DataFrame, resolution: int):
    from . import plots

    fig, axes = plots.figure(ncols=2, width=5.0, height=3.6)
    plot_sweep(frame_a, "alpha", "alpha (beta = max(1 - alpha, 0))", "R-Adapt+: anchor weight", ax=axes[0][0])
    plot_sweep(frame_d, "d0", f"GIF cutoff D0 at 224 px (x {resolution}/224 at {resolution} px)", "R-Adapt+: GIF cutoff",
               ax=axes[0][1])
    fig.tight_layout()
    return fig


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


def ablation_verdict(study: Study, frame6: pd.DataFrame, frame_a: pd.DataFrame, frame_d: pd.DataFrame,
                     attack: str, eps_255: float) -> dict:
    avg = average(study, frame6).set_index("method")
    rob = lambda m: ci(*avg.loc[m, ["robust", "robust_lo", "robust_hi"]])  # noqa: E731
    paper = {k: _paper_t6(*v)["paper robust (4-ds mean)"] for k, v in ABLATION.items()}
    d_fra = study.diff("FRA only", "CLIP", attack, eps_255)
    d_gif = study.diff("GIF only", "CLIP", attack, eps_255)
    best = "FRA only" if avg.loc["FRA only", "robust"] >= avg.loc["GIF only", "robust"] else "GIF only"
    d_syn = study.diff("R-Adapt+", best, attack, eps_255)
    p_syn = round(paper["R-Adapt+"] - max(paper["FRA only"], paper["GIF only"]), 1)
    free = avg.loc["R-Adapt_CLIP"]
    white = avg.loc["FRA only (white anchor)"]
    d10 = frame_d[frame_d["d0"] == 10]
    return {
        "ab_rob_CLIP": rob("CLIP"), "ab_rob_fra": rob("FRA only"), "ab_rob_gif": rob("GIF only"), "ab_rob_both": rob("R-Adapt+"),
        "ab_fra_gain": f"{ci(d_fra.mean, d_fra.low, d_fra.high)} pp (paper, 4-dataset mean {paper['FRA only']:+.1f})",
        "ab_fra_verdict": judge(d_fra, paper["FRA only"]),
        "ab_gif_gain": f"{ci(d_gif.mean, d_gif.low, d_gif.high)} pp (paper {paper['GIF only']:+.1f})",
        "ab_gif_verdict": judge(d_gif, paper["GIF only"]),
        "ab_syn_gain": f"{ci(d_syn.mean, d_syn.low, d_syn.high)} pp over {best} (paper {p_syn:+.1f})",
        "ab_syn_verdict": judge(d_syn, p_syn),
        "ab_free": (f"with the white-image anchor (alpha 1.2, beta -0.8) FRA alone gives clean {white.clean:.1f}% "
                    f"(top class {white.top_clean:.1f}%) and robust {white.robust:.1f}%; with the filter added "
                    f"(R-Adapt_CLIP) clean {free.clean:.1f}% and robust {free.robust:.1f}%"),
        "ab_alpha_best": f"{frame_a.loc[frame_a['robust'].idxmax(), 'alpha']:g} (robust {frame_a['robust'].max():.1f}%)",
        "ab_d0_best": f"{frame_d.loc[frame_d['robust'].idxmax(), 'd0']:g} (robust {frame_d['robust'].max():.1f}%)",
        "ab_d0_10_clean": (ci(*d10[["clean", "clean_lo", "clean_hi"]].iloc[0]) + f"% against {avg.loc['CLIP', 'clean']:.1f}% "
                           "for the unfiltered CLIP") if len(d10) else "not measured (D0 = 10 not in the sweep)",
        "ab_collapse": _flagged_methods(frame6, frame_a, frame_d, none="no variant is flagged"),
    }


def _flagged_methods(*frames: pd.DataFrame, none: str) -> str:
    """The methods flagged as collapsed in any of the frames, in order of appearance."""
    flagged = list(dict.fromkeys(pd.concat(frames).query("collapse")["method"]))
    return ("flagged as collapsed: " + ", ".join(flagged)) if flagged else none


def _trend(frame: pd.DataFrame, param: str) -> str:
    return "; ".join(f"{v:g}: {ci(r.robust, r.robust_lo, r.robust_hi)}%" for v, r in zip(frame[param], frame.itertuples()))


def _paper_mean(table: dict, key: int) -> float:
    return float(np.mean(list(table[key].values())))


def _paper_default(param: str) -> int:
    """The paper's R-Adapt+ default for a training setting (2000 images, 10 iterations)."""
    return int(reference.R_ADAPT_PLUS_BUDGET["images" if param == "n_images" else "epochs"])


# The paper's gain over about the relative range of our sweeps, from the smallest setting it reports to
# its default: Table 7 500 -> 2000 images, Table 8 3 -> 10 iterations, means of its four datasets.
PAPER_SCALE_GAIN = {param: round(_paper_mean(table, _paper_default(param)) - _paper_mean(table, min(table)), 1)
                    for param, table in (("n_images", reference.TABLE7), ("epochs", reference.TABLE8))}


def training_scale_verdict(study: Study, frame_n: pd.DataFrame, frame_e: pd.DataFrame, attack: str,
                           eps_255: float) -> dict:
    """Trends along the R-Adapt+ training sweeps and the paired gain from the smallest to the largest setting."""
    out = {}
    for key, frame, param, paper_range in (("n", frame_n, "n_images", "500 -> 2000 images"),
                                           ("e", frame_e, "epochs", "3 -> 10 iterations")):
        f = frame.sort_values(param)
        lo, hi = f["method"].iloc[0], f["method"].iloc[-1]
        d = study.diff(hi, lo, attack, eps_255)
        paper = PAPER_SCALE_GAIN[param]
        out[f"ts_{key}_trend"] = _trend(f, param)
        out[f"ts_{key}_gain"] = (f"{ci(d.mean, d.low, d.high)} pp from {param} = {f[param].iloc[0]:g} to {f[param].iloc[-1]:g} "
                                 f"(paper, {paper_range}, 4-dataset mean: {paper:+.1f})")
        out[f"ts_{key}_verdict"] = judge(d, paper)
    out["ts_collapse"] = _flagged_methods(frame_n, frame_e, none="no anchor is flagged")
    return out


def plot_training_scale(frame_n: pd.DataFrame, frame_e: pd.DataFrame):
    from . import plots

    fig, axes = plots.figure(ncols=2, width=5.0, height=3.6)
    plot_sweep(frame_n, "n_images", "R-Adapt+ training images", "Table 7: training images", ax=axes[0][0])
    plot_sweep(frame_e, "epochs", "R-Adapt+ epochs", "Table 8: epochs", ax=axes[0][1])
    fig.tight_layout()
    return fig


def masking_check(study: Study, method: str, eps_list: Sequence[float],
                  white_box: str = "apgd-dlr", black_box: str = "square") -> str:
    """Is the gradient-free attack stronger than the white-box one on the same images (a sign of masking)?"""
    parts = []
    for e in eps_list:
        gap = stats.bootstrap_mean(100 * (study.correct(method, black_box, e) - study.correct(method, white_box, e)))
        sign = ("Square leaves fewer robust images than APGD-DLR: possible gradient masking" if gap.high < 0
                else "no sign of gradient masking")
        parts.append(f"{e:g}/255: {black_box} minus {white_box} robust {ci(gap.mean, gap.low, gap.high)} pp, {sign}")
    return f"{method}: " + "; ".join(parts)


# --- cost --------------------------------------------------------------------------------------------

def overhead_pairs(study: Study, vit_batch: int = 8) -> tuple[dict, dict]:
    """(plain, defended) model pairs and their inputs: the mini R-Adapt+ / R-Adapt_FARE, and ViT-B/32 at 224 px."""
    import open_clip

    from .zeroshot import ZeroShotClassifier

    ds = study.datasets[0]
    x = study.images[ds].floats()
    pairs = {"mini: R-Adapt+ (alpha 0.8, beta 0.2)": (study.model("CLIP", ds), study.model("R-Adapt+", ds)),
             "mini: R-Adapt_FARE (beta 0)": (study.model("CLIP", ds), study.model("R-Adapt_FARE", ds))}
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


def _fare_budget() -> dict:
    from . import training

    cfg = training.MINI_FINETUNES["mini-fare"]
    log = training.mini_finetune_weights("mini-fare")[1]
    seen = cfg.steps * cfg.batch_size
    train_size = len(data.mini_dataset(data.FINETUNE_SOURCE, "train"))
    return {"distinct images": min(seen, train_size), "images seen": seen, "fwd-bwd passes": seen * (cfg.pgd_steps + 1),
            "seconds": log.seconds}


def _plus_budget(run: defense.AnchorRun) -> dict:
    c = run.config
    return {"distinct images": c.n_images, "images seen": run.images_seen, "fwd-bwd passes": run.images_seen * (c.pgd_steps + 1),
            "seconds": run.seconds}


def budget_counts(study: Study, run: defense.AnchorRun) -> pd.DataFrame:
    """Deterministic budget counts: distinct images, images seen, forward-backward passes; paper beside."""
    if study.profile != "mini":
        raise NotImplementedError("the FARE training log exists for the mini zoo only; the paper's budget is in reference")
    fare, plus = _fare_budget(), _plus_budget(run)
    b = reference.R_ADAPT_PLUS_BUDGET
    rows = {"FARE fine-tune (mini)": fare, "R-Adapt+ anchor (mini)": plus,
            "FARE / R-Adapt+ (mini)": {k: round(fare[k] / plus[k], 2) for k in ("distinct images", "images seen", "fwd-bwd passes")},
            "paper: AFT / R-Adapt+ images": {"distinct images": b["ratio"]}}
    return pd.DataFrame(rows).T.drop(columns="seconds", errors="ignore")


def training_budget(study: Study, run: defense.AnchorRun) -> pd.DataFrame:
    """Wall-clock seconds of the FARE fine-tune and the R-Adapt+ run, from their cached logs."""
    fare, plus = _fare_budget(), _plus_budget(run)
    return pd.DataFrame({"wall-clock s": [round(fare["seconds"], 1), round(plus["seconds"], 1),
                                          round(fare["seconds"] / plus["seconds"], 2)]},
                        index=["FARE fine-tune (mini)", "R-Adapt+ anchor (mini)", "ratio FARE / R-Adapt+"])


def cost_verdict(overhead: pd.DataFrame, study: Study, run: defense.AnchorRun) -> dict:
    ratios = dict(zip(overhead["setting"], overhead["ratio"]))
    r_plus, r_m, r_vit = (next(v for k, v in ratios.items() if k.startswith(p)) for p in ("mini: R-Adapt+", "mini: R-Adapt_FARE", "ViT"))
    fare, plus = _fare_budget(), _plus_budget(run)
    worst = max(r_plus, r_vit)
    return {"cost_ratio_plus": f"{r_plus:.2f}", "cost_ratio_m": f"{r_m:.2f}", "cost_ratio_vit": f"{r_vit:.2f}",
            "cost_target": "met" if worst <= 1.05 else f"not met (worst {worst:.3f}x)",
            "cost_images_plus": str(plus["distinct images"]), "cost_images_fare": str(fare["distinct images"]),
            "cost_image_ratio": f"{fare['distinct images'] / plus['distinct images']:.1f}",
            "cost_passes_ratio": f"{fare['fwd-bwd passes'] / plus['fwd-bwd passes']:.1f}",
            "cost_seconds_plus": f"{plus['seconds']:.0f}", "cost_seconds_fare": f"{fare['seconds']:.0f}",
            "cost_time_ratio": f"{fare['seconds'] / plus['seconds']:.1f}"}
