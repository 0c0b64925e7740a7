"""Table 4's page: image -> text retrieval of CLIP, FARE and R-Adapt+, clean and attacked, beside the paper.

`RetrievalStudy.create` loads the profile's CLIP and FARE (mini: the mosaic-reading CLIP and its own FARE fine-tune,
`zoo`), the R-Adapt+ anchor of that CLIP (released, as every page's), the retrieval set and its captions' embeddings
(CLIP's text tower: FARE and R-Adapt+ change only the vision side). `run` evaluates every method at every eps
(`retrieval.evaluate_retrieval`, cached); `table` lays the Recall@k out as Table 4 with the paper's rows, and
`claims` judges the paper's two claims on paired differences (`verdicts.judge`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .. import defense, models, reference, retrieval, stats, training
from ..zeroshot import ZeroShotClassifier
from .study import DEFAULTS, Study
from .verdicts import judge

METHODS = ("CLIP", "FARE", "R-Adapt+")
MINI_MODELS = {"CLIP": "mini-clip-mosaic", "FARE": "mini-fare-mosaic"}
SHOWN_K = (1, 10)  # Table 4's columns
# The paper's two claims (Sec. 5, "Results on Image-Text Retrieval"): R-Adapt+ - FARE, R@1, in percentage points.
CLAIMS = {"clean": ("clean", "R-Adapt+ keeps clean R@1 closer to CLIP's than FARE does (R-Adapt+ - FARE, clean R@1)"),
          "robust2": (2, "R-Adapt+'s robust R@1 at 2/255 is above FARE's (R-Adapt+ - FARE, robust R@1 at 2/255)")}


@dataclass
class RetrievalStudy:
    profile: str
    seed: int
    study: Study  # the models, roles and R-Adapt+ anchor
    rset: retrieval.RetrievalSet
    text: torch.Tensor
    attack: str = "pgd"
    n_iter: int = 10
    results: dict = field(default_factory=dict)  # (method, eps in 1/255) -> RetrievalResult

    @classmethod
    def create(cls, profile: str, n_samples: int, seed: int, n_iter: int) -> "RetrievalStudy":
        train = DEFAULTS[profile]["plus_train"]  # the anchor's training split (the only classification data read)
        study = Study.create(profile, (train,), 1, seed, methods=("CLIP", "FARE"), presets=False)
        if profile == "mini":
            study = study.with_models(MINI_MODELS)
        study.train_plus()
        rset = retrieval.load_set(profile, n_samples, seed)
        return cls(profile, seed, study, rset, retrieval.caption_embeddings(study.zoo["CLIP"], rset.captions), n_iter=n_iter)

    def model(self, method: str) -> ZeroShotClassifier:
        v = self.study.variants[method]
        clf = retrieval.retrieval_classifier(self.study.zoo["CLIP"], self.text, self.rset, self.study.zoo[v.base].clip.visual)
        return defense.defend(clf, v.anchor, v.alpha, v.beta, v.d0_224) if v.defended else clf

    def run(self, methods: Sequence[str], eps_list: Sequence[float]) -> None:
        for method in methods:
            model = self.model(method)
            for eps in eps_list:
                self.results[(method, eps)] = retrieval.evaluate_retrieval(
                    model, self.rset, self.text, eps / 255, attack=self.attack, n_iter=self.n_iter, seed=self.seed,
                    label=method)

    def result(self, method: str, setting) -> tuple[retrieval.RetrievalResult, str]:
        """The result and which ranks to read for a setting: "clean" or an eps in 1/255."""
        if setting == "clean":
            return next(r for (m, _), r in self.results.items() if m == method), "clean"
        return self.results[(method, setting)], "robust"

    def recall(self, method: str, setting, k: int) -> stats.Estimate:
        res, which = self.result(method, setting)
        return res.recall(k, which)

    def settings(self) -> list:
        return ["clean", *sorted({e for _, e in self.results})]


# Where R-Adapt+'s clean retrieval goes: its two parts alone, and its filter at milder cutoffs (D0 at 224 px; the
# mosaics' objects are half the image, so the cutoff scaled to the image is twice as harsh per object as at 224 px).
CLEAN_PARTS = (("GIF only", None, (40,)), ("anchor only (no GIF)", "anchor", (None,)),
               ("R-Adapt+ (GIF + anchor)", "anchor", (40, 80, 160)))


def clean_parts(rs: RetrievalStudy) -> pd.DataFrame:
    """Clean Recall@1/10 of R-Adapt+'s parts and of its filter at milder cutoffs, beside CLIP and FARE (no attack)."""
    v = rs.study.variants["R-Adapt+"]
    base = rs.model("CLIP")
    rows = {"CLIP": base, "FARE": rs.model("FARE")}
    for label, anchor, d0s in CLEAN_PARTS:
        for d0 in d0s:
            name = label if len(d0s) == 1 else f"{label}, D0 = {d0}"
            rows[name] = defense.defend(base, v.anchor if anchor else None, v.alpha if anchor else 1.0,
                                        v.beta if anchor else 0.0, d0)
    out = {}
    for name, model in rows.items():
        res = retrieval.evaluate_retrieval(model, rs.rset, rs.text, 0.0, label=name)
        out[name] = {f"clean R@{k}": res.recall(k, "clean").fmt(1) for k in SHOWN_K}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("model (clean, no attack)")


def parts_values(parts: pd.DataFrame) -> dict[str, str]:
    """The clean-parts table read for the prose: which rows keep at least half of the CLIP's clean R@10 (point values)."""
    col = f"clean R@{SHOWN_K[-1]}"
    point = lambda name: float(parts.loc[name, col].split()[0])  # noqa: E731
    clip = point("CLIP")
    rows = [i for i in parts.index if i not in ("CLIP", "FARE")]
    keep = [i for i in rows if point(i) >= clip / 2]
    reading = ("none of them keeps half of the CLIP's clean R@10, the mildest cutoff included: a harsher-than-paper "
               "filter does not explain the loss, and each part alone costs most of it"
               if not keep else f"{', '.join(keep)} keep(s) at least half of the CLIP's clean R@10")
    return {"t4_parts_gif": parts.loc["GIF only", col], "t4_parts_anchor": parts.loc["anchor only (no GIF)", col],
            "t4_parts_reading": reading}


def retention(rs: RetrievalStudy, k: int = 10) -> str:
    """How much of the CLIP's clean Recall@k each robust model keeps, and whether Table 4's comparison is at the floor."""
    clip = rs.recall("CLIP", "clean", k).mean
    kept = {m: rs.recall(m, "clean", k).mean / clip if clip else float("nan") for m in ("FARE", "R-Adapt+")}
    shares = ", ".join(f"{m} {100 * r:.0f} %" for m, r in kept.items())
    if all(r < 0.5 for r in kept.values()):
        return (f"both robust models keep less than half of the CLIP's clean R@{k} ({shares} of it), so Table 4's "
                f"comparison sits near the floor here")
    return f"the robust models keep {shares} of the CLIP's clean R@{k}"


def base_reader(rs: RetrievalStudy) -> dict[str, str]:
    """mini: the clean Recall@1/10 of mini-clip itself (never trained on mosaics), beside its mosaic fine-tune's: why
    the page needs a CLIP that reads mosaics. Empty in the paper profile (its CLIP reads Flickr30k as released)."""
    if rs.profile != "mini":
        return {}
    loaded = models.load_model(training.parent_of(MINI_MODELS["CLIP"]))
    text = retrieval.caption_embeddings(loaded, rs.rset.captions)
    res = retrieval.evaluate_retrieval(retrieval.retrieval_classifier(loaded, text, rs.rset), rs.rset, text, 0.0,
                                       label=loaded.name)
    return {"t4_base_name": loaded.name, **{f"t4_base_r{k}": res.recall(k, "clean").fmt(1) for k in SHOWN_K}}


def _paper(method: str, setting, k: int) -> float:
    return reference.TABLE4.get(method, {}).get((setting, f"R@{k}"), np.nan)


def table(rs: RetrievalStudy) -> pd.DataFrame:
    """Table 4's layout: per method our Recall@1/10 (95% CI) and the paper's, clean and at each eps."""
    rows = {}
    for method in dict.fromkeys(m for m, _ in rs.results):
        ours, paper = {}, {}
        for setting in rs.settings():
            label = "clean" if setting == "clean" else f"{setting:g}/255"
            for k in SHOWN_K:
                ours[(label, f"R@{k}")] = rs.recall(method, setting, k).fmt(1)
                paper[(label, f"R@{k}")] = _paper(method, setting, k)
        rows[(method, "ours")], rows[(method, "paper")] = ours, paper
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.names = ["method", "source"]
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out


def long_frame(rs: RetrievalStudy) -> pd.DataFrame:
    """Every (method, setting, k) with its recall and interval: the figure's data."""
    rows = []
    for method in dict.fromkeys(m for m, _ in rs.results):
        for setting in rs.settings():
            for k in retrieval.RECALL_K:
                est = rs.recall(method, setting, k)
                rows.append({"method": method, "setting": "clean" if setting == "clean" else f"{setting:g}/255",
                             "k": k, "recall": est.mean, "low": est.low, "high": est.high})
    return pd.DataFrame(rows)


def diff(rs: RetrievalStudy, a: str, b: str, setting, k: int = 1) -> stats.Estimate:
    """Paired difference a - b of Recall@k (pp) over the same test images."""
    ra, which = rs.result(a, setting)
    rb, _ = rs.result(b, setting)
    return stats.bootstrap_diff(100.0 * ra.hits(k, which), 100.0 * rb.hits(k, which))


def claims(rs: RetrievalStudy) -> pd.DataFrame:
    """The paper's two retrieval claims: our paired difference with its CI, the paper's, and the verdict."""
    rows = []
    for key, (setting, claim) in CLAIMS.items():
        if setting != "clean" and ("FARE", setting) not in rs.results:
            continue
        d = diff(rs, "R-Adapt+", "FARE", setting)
        paper = round(_paper("R-Adapt+", setting, 1) - _paper("FARE", setting, 1), 1)
        rows.append({"key": key, "claim": claim, "ours (pp)": d.fmt(1), "paper (pp)": paper, "verdict": judge(d, paper)})
    return pd.DataFrame(rows).set_index("key")


def glue_values(rs: RetrievalStudy, claim_table: pd.DataFrame) -> dict:
    """The page's prose values: recalls, the claims' differences and verdicts, the attack's effect on CLIP."""
    values = {f"t4_{key}_diff": row["ours (pp)"] for key, row in claim_table.iterrows()}
    values["t4_retention"] = retention(rs)
    values.update({f"t4_{key}_verdict": row["verdict"] for key, row in claim_table.iterrows()})
    values.update({f"t4_{key}_paper": f"{row['paper (pp)']:+.1f}" for key, row in claim_table.iterrows()})
    for method in dict.fromkeys(m for m, _ in rs.results):
        tag = method.replace("+", "plus").replace("-", "").lower()
        for setting in rs.settings():
            label = "clean" if setting == "clean" else f"eps{setting:g}"
            values[f"t4_{tag}_{label}_r1"] = rs.recall(method, setting, 1).fmt(1)
            values[f"t4_{tag}_{label}_r10"] = rs.recall(method, setting, 10).fmt(1)
    return values


def protocol(rs: RetrievalStudy) -> str:
    names = ", ".join(f"{m}={rs.study.zoo[m].name}" for m in rs.study.zoo)
    return (f"Protocol: image -> text retrieval over {len(rs.rset.captions)} captions of n = {len(rs.rset)} test images "
            f"({rs.rset.source}); attack: PGD-{rs.n_iter} (cross-entropy over the images' mean caption embeddings, step "
            f"eps/4, random start, final iterate; every image attacked, end to end through the GIF and the anchor); "
            f"Recall@k = share of images whose own caption ranks in the top k; 95% percentile bootstrap CIs over images "
            f"(1000 resamples; claims: paired); models {names}; R-Adapt+: Table 9's alpha/beta/D0 with the anchor trained "
            f"on {DEFAULTS[rs.profile]['plus_train']} (Eq. 8).")
