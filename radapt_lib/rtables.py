"""The R-Adapt pages' plumbing: one `Study` (models, images, anchors, defended variants), evaluation
grids as tidy frames, comparison tables beside the paper's numbers, verdicts and cost timings.

Pages call one to three functions of this module per cell; everything heavy is cached below it
(`evaluation.evaluate` for attacks, `defense.train_anchor` for R-Adapt+ anchors).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from . import config, data, defense, evaluation, models, reference, stats

BASELINES = ("CLIP", "TeCoA", "TGA", "FARE")
RADAPT = ("R-Adapt_CLIP", "R-Adapt_TeCoA", "R-Adapt_TGA", "R-Adapt_FARE", "R-Adapt+")
COLLAPSE_TOP_SHARE = 50.0  # % of predictions on one class
COLLAPSE_OVER_CHANCE = 10.0  # pp above chance

DEFAULTS = {
    "mini": {"datasets": ("animals", "vehicles"), "plus_train": "animals"},
    "paper": {"datasets": reference.TABLE1_DATASETS, "plus_train": "ImageNet"},
}


def default_datasets(profile: str, datasets: Sequence[str] | None = None) -> tuple[str, ...]:
    return tuple(datasets) if datasets else tuple(DEFAULTS[config.check_profile(profile)]["datasets"])


def load_images(profile: str, dataset: str, n: int | None, seed: int = 0, split: str = "test") -> data.ImageSet:
    """A seeded subset of `dataset` as uint8 images at the encoder's resolution (paper: 224 px)."""
    if config.check_profile(profile) == "mini":
        return data.mini_dataset(dataset, split, n=n, seed=seed)
    import torchvision.transforms as T

    tf = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.PILToTensor()])
    ds = data.paper_dataset(dataset, transform=tf)
    idx = data.seeded_subset(len(ds), n, seed)
    pairs = [ds[int(i)] for i in idx]
    return data.ImageSet(torch.stack([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs]),
                         tuple(data.paper_classnames(ds)), f"torchvision:{dataset}")


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

    def train_plus(self, cfg: defense.AnchorTrainConfig, name: str = "R-Adapt+", register: bool = True,
                   progress: bool = True) -> defense.AnchorRun:
        """R-Adapt+ (Eq. 8): train (or load) the anchor on the source split against the defended CLIP."""
        train = self.train_images(cfg.n_images)
        run = defense.train_anchor(models.classifier(self.zoo["CLIP"], train.classnames), train, cfg, progress)
        if register:
            self.add(name, "CLIP", run.anchor, cfg.alpha, cfg.beta, cfg.d0_224)
        if name == "R-Adapt+":
            self.plus_run = run
        return run

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
            "collapse": bool(res.clean_top_share() > COLLAPSE_TOP_SHARE or clean.mean < chance + COLLAPSE_OVER_CHANCE),
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


def judge(diff: stats.Estimate, paper_sign: int = 1) -> str:
    """'supports' if the paired CI excludes 0 in the paper's direction, 'contradicts' if in the other, else 'cannot decide'."""
    if diff.low > 0:
        return "supports" if paper_sign > 0 else "contradicts"
    if diff.high < 0:
        return "supports" if paper_sign < 0 else "contradicts"
    return "cannot decide"


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
            f"(TGA: 30 -> {defense.d0_at(res, 30):.2f}); collapse = > {COLLAPSE_TOP_SHARE:.0f}% of clean predictions on "
            f"one class or clean accuracy < chance + {COLLAPSE_OVER_CHANCE:.0f} pp. {extra}").strip()


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
