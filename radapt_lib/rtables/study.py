"""The study: one page's models, evaluation images and defended variants, and the one way to evaluate them.

`Study.create` loads the profile's base models (CLIP and the TeCoA, TGA and FARE fine-tunes) and seeded
test images per dataset, and registers the undefended baselines and, unless told not to, Table 9's
model-guided R-Adapt presets; `train_plus` adds the R-Adapt+ anchor. `evaluate` attacks any set of
variants into a tidy frame (one row per method, dataset, attack and eps; `grid` lays one eps out per
(method, dataset) for display), `correct` and `diff` give per-image correctness and paired bootstrap
differences over the same images, and `average` pools images across datasets. Everything heavy is
cached below it (`evaluation.evaluate` for attacks, `anchor_zoo.load_or_train` for R-Adapt+ anchors: released or cached).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from .. import anchor_zoo, config, data, defense, evaluation, models, plus, reference, results, stats


BASELINES = ("CLIP", "TeCoA", "TGA", "FARE")
METHODS = reference.METHODS  # Table 1's row order
RADAPT = ("R-Adapt_CLIP", "R-Adapt_TeCoA", "R-Adapt_TGA", "R-Adapt_FARE", "R-Adapt+")

# R-Adapt+ anchor optimisation per profile, from config.PROFILE_DEFAULTS. Paper: 2k ImageNet images, 10 epochs,
# eps 4/255 (the inner attack and optimiser are not stated).
PLUS_DEFAULT = {profile: plus.AnchorTrainConfig(**defaults.plus_anchor) for profile, defaults in config.PROFILE_DEFAULTS.items()}

DEFAULTS = {profile: {"datasets": tuple(d.datasets["radapt"]), "plus_train": d.plus_train}
            for profile, d in config.PROFILE_DEFAULTS.items()}


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
    plus_run: plus.AnchorRun | None = None
    _classifiers: dict = field(default_factory=dict)

    @classmethod
    def create(cls, profile: str = "mini", datasets: Sequence[str] | None = None, n_samples: int = 200,
               seed: int = 0, methods: Sequence[str] | None = None, presets: bool = True) -> "Study":
        """Load the profile's four models and the evaluation images; register Table 9's model-guided presets.

        methods: the base models to load (default all four); presets=False registers the undefended baselines
        only, e.g. for a page on the baselines with a subset of them (the presets' anchors need all four).
        """
        config.check_profile(profile)
        names = models.PROFILE_MODELS[profile]
        methods = tuple(names) if methods is None else tuple(methods)
        unknown = [m for m in methods if m not in names]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown} for profile {profile!r}: use some of {tuple(names)}")
        if presets and set(methods) != set(names):
            raise ValueError("the R-Adapt presets take their anchors from all four models: load all of them, "
                             "or pass presets=False")
        zoo = {method: models.load_model(names[method]) for method in methods}
        datasets = default_datasets(profile, datasets)
        images = {d: load_images(profile, d, n_samples, seed) for d in datasets}
        study = cls(profile, datasets, n_samples, seed, zoo, images)
        study._register(presets)
        return study

    def _register(self, presets: bool) -> None:
        for method in BASELINES:
            if method in self.zoo:
                self.variants[method] = Variant(method, base=method)
        for name, preset in defense.PRESETS.items():
            if presets and preset.anchor_from in self.zoo:
                self.add(name, anchor=self.white_anchor(preset.anchor_from), alpha=preset.alpha, beta=preset.beta,
                         d0_224=preset.d0_224)

    def with_training_seed(self, seed: int) -> "Study":
        """The same images and CLIP with the fine-tunes of another training seed (mini), presets re-extracted.

        R-Adapt+ is not registered: `train_plus(seed=seed)` adds the anchor of that seed.
        """
        return self.with_models({m: models.seeded_name(self.zoo[m].name, seed) for m in self.zoo})

    def with_models(self, names: dict[str, str]) -> "Study":
        """The same images with other registry models in some roles (e.g. {"CLIP": "mini-clip-120"}), and the
        model-guided presets re-extracted from the models loaded. R-Adapt+ is not registered: `train_plus` adds it."""
        zoo = {m: self.zoo[m] if names.get(m, self.zoo[m].name) == self.zoo[m].name else models.load_model(names[m])
               for m in self.zoo}
        study = Study(self.profile, self.datasets, self.n_samples, self.seed, zoo, self.images)
        study._register(presets=True)
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

    def train_plus(self, cfg: plus.AnchorTrainConfig | None = None, name: str = "R-Adapt+", register: bool = True,
                   progress: bool = True, **changes) -> plus.AnchorRun:
        """R-Adapt+ (Eq. 8): the anchor for the source split against the defended CLIP (mini: released, else trained).

        cfg None: the profile's PLUS_DEFAULT, with `changes` (e.g. n_images=500, epochs=3) applied.
        """
        cfg = replace(cfg or PLUS_DEFAULT[self.profile], **changes)
        if self.profile == "mini":
            origin = anchor_zoo.mini_origin(self.zoo["CLIP"].name, DEFAULTS["mini"]["plus_train"], self.seed)
            run = anchor_zoo.load_or_train(origin, cfg, progress, self.zoo["CLIP"])
        else:
            train = self.train_images(cfg.n_images)
            run = plus.train_anchor(models.classifier(self.zoo["CLIP"], train.classnames), train, cfg, progress)
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
                 n_iter: int | None = None, n_restarts: int | None = None, n_queries: int | None = None) -> pd.DataFrame:
        """One row per (method, dataset, attack, eps): clean and robust accuracy with CIs, top-class shares.

        Settings left None are the attack's defaults (standard AutoAttack for "autoattack")."""
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

    def grid(self, methods: Iterable[str], attack: str, eps_255: float, n_iter: int | None = None) -> tuple[pd.DataFrame, dict]:
        """`evaluate` at one eps, laid out for display: one row per (method, dataset) with accuracies rounded to 0.1,
        CI strings, top-class shares and the collapse rule's reasons (`results.row`), and the raw
        `EvalResult`s by (method, dataset)."""
        frame = self.evaluate(methods, attack, [eps_255], n_iter=n_iter)
        raw = {(r.method, r.dataset): self.results[(r.method, r.dataset, attack, float(eps_255))] for r in frame.itertuples()}
        table = pd.DataFrame([results.row(m, d, res, len(self.images[d].classnames)) for (m, d), res in raw.items()])
        return table, raw

    def evaluate_many(self, methods: Iterable[str], attacks: dict[str, int], eps_255: Iterable[float],
                      n_queries: int | None = None) -> pd.DataFrame:
        """`evaluate` for several attacks ({attack: iterations}), rows concatenated."""
        methods, eps_255 = list(methods), list(eps_255)
        return pd.concat([self.evaluate(methods, a, eps_255, n_iter=it or None, n_queries=n_queries) for a, it in attacks.items()],
                         ignore_index=True)

    def correct(self, method: str, attack: str, eps_255: float, which: str = "robust",
                datasets: Iterable[str] | None = None) -> np.ndarray:
        """Per-image 0/1 correctness, concatenated over datasets (equal n each: pooled mean = dataset average)."""
        out = []
        for d in datasets or self.datasets:
            out.append(self.results[(method, d, attack, float(eps_255))].correct(which))
        return np.concatenate(out).astype(float)

    def collapsed(self, method: str, attack: str, eps_255: float, datasets: Iterable[str] | None = None) -> bool:
        """Is the method flagged by the collapse rule on any of the datasets (its evaluation must exist)?"""
        return any(results.collapse_flag(self.results[(method, d, attack, float(eps_255))], len(self.images[d].classnames))
                   for d in datasets or self.datasets)

    def diff(self, a: str, b: str, attack: str, eps_255: float, which: str = "robust",
             datasets: Iterable[str] | None = None) -> stats.Estimate:
        """Paired bootstrap of (a - b) in pp over the same images."""
        return stats.bootstrap_diff(100 * self.correct(a, attack, eps_255, which, datasets),
                                    100 * self.correct(b, attack, eps_255, which, datasets))


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
