"""The adaptive-attack audit (Carlini et al. 2019, "On Evaluating Adversarial Robustness"): do the tables'
robust numbers survive stronger attacks, and attacks adapted to R-Adapt?

For one model of a `Study` on one image set, `run` collects: the tables' own attack; a suite of stronger ones
(more iterations and restarts, every AutoAttack component, Square with 5000 queries); PGD with doubling
iterations (convergence); an eps sweep up to a budget where any classifier must reach 0 %; transfer attacks
from the undefended CLIP and from FARE; and two attacks adapted to the Gaussian input filter (a perturbation
restricted to its passband, and the attack on the defended model with the filter left out). `flags` computes
the masking signs, `verdict` whether the table number stands. Every perturbation goes through the model as
wrapped and is checked to stay in the eps-ball and in [0, 1].
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .. import attacks, cache, config, defense, evaluation, reference, stats
from ..data import ImageSet
from ..zeroshot import predict
from .study import Study
from .sweeps import ABLATION, _paper_t6

TABLE_ATTACK = ("apgd-ce", 20)  # what Tables 1 and 2 report at 4/255 (pages 20, 21)
SUITE: dict[str, dict] = {  # stronger than the tables': name -> (attack, settings, PGD seed)
    "PGD-50 (start 1)": {"attack": "pgd", "n_iter": 50, "seed": 0},
    "PGD-50 (start 2)": {"attack": "pgd", "n_iter": 50, "seed": 1},
    "CW-50": {"attack": "cw", "n_iter": 50, "seed": 0},
    "APGD-CE-100": {"attack": "apgd-ce", "n_iter": 100, "seed": 0},
    "APGD-DLR-100": {"attack": "apgd-dlr", "n_iter": 100, "seed": 0},
}
# Run only on the images that every attack before them left robust (AutoAttack's cascade): FAB's per-class
# gradients and Square's 5000 queries cost minutes per image on these CPUs, and elsewhere they cannot lower the
# worst case. Their "own number" is therefore the worst case up to them.
ON_SURVIVORS: dict[str, dict] = {
    "FAB-100 (survivors)": {"attack": "fab", "n_iter": 100, "seed": 0},
    "Square-5000 (survivors)": {"attack": "square", "n_queries": 5000, "seed": 0},
}
SQUARE = "Square-5000 (survivors)"
WHITE_BOX = tuple(k for k in (*SUITE, *ON_SURVIVORS) if k != SQUARE)
ITER_LADDER = (10, 20, 40, 80, 160)  # PGD iterations, doubled until robust accuracy stops falling
EPS_LADDER_255 = (4, 8, 16, 32, 64)  # PGD-20; at 64/255 every classifier must reach 0 %
TRANSFER_SOURCES = ("CLIP", "FARE")
# Every defended model of Tables 1-3 and 6, and FARE as the reference.
AUDITED = ("FARE", "R-Adapt_CLIP", "R-Adapt_TeCoA", "R-Adapt_TGA", "R-Adapt_FARE", "R-Adapt+", "GIF only", "FRA only")
ADAPTED_ITER = 50
AUDIT_CODE = ("rtables.audit",)


budget = config.smoke_budget  # at paper smoke size at most 2 iterations or queries


def iter_ladder() -> tuple[int, ...]:
    """PGD's doubling iterations: ITER_LADDER, or 1 and 2 at paper smoke size."""
    return (1, 2) if config.paper_smoke() else ITER_LADDER


@dataclass
class Audit:
    """Per-image robust booleans (True: right clean and under the attack) of every attack run on one model."""

    method: str
    n: int
    clean: np.ndarray
    table: np.ndarray
    suite: dict[str, np.ndarray] = field(default_factory=dict)
    ladder: dict[int, np.ndarray] = field(default_factory=dict)
    sweep: dict[float, np.ndarray] = field(default_factory=dict)
    transfer: dict[str, np.ndarray] = field(default_factory=dict)
    adapted: dict[str, np.ndarray] = field(default_factory=dict)
    zero_grad: float = 0.0

    def all_attacks(self) -> dict[str, np.ndarray]:
        """Every attack at the audit's eps, by name (the eps sweep's larger budgets excluded)."""
        return {"table": self.table, **self.suite, **{f"PGD-{k} (ladder)": v for k, v in self.ladder.items()},
                **{f"transfer from {k}": v for k, v in self.transfer.items()}, **self.adapted}

    def worst(self) -> np.ndarray:
        """Per-image worst case: robust only if robust under every attack run at the audit's eps."""
        return np.logical_and.reduce(list(self.all_attacks().values()))


# --- the runs --------------------------------------------------------------------------------------------

def _robust_on(model: nn.Module, images: ImageSet, x_adv: torch.Tensor, clean: np.ndarray) -> np.ndarray:
    return clean & (predict(model, x_adv).numpy() == images.labels.numpy())


def _transferred_robust(source: nn.Module, model: nn.Module, images: ImageSet, eps_255: float, clean: np.ndarray,
                        what: str) -> np.ndarray:
    """`model`'s per-image robustness to PGD-50 made on `source` (another model, or `model` without its filter).

    Cached as the booleans (the adversarial images stay in the local cache only), so a released audit is read
    without re-running the source's attack."""
    spec = {"what": what, "source": evaluation.fingerprint(source), "model": evaluation.fingerprint(model),
            "images": evaluation.fingerprint(images.images), "eps": eps_255, "steps": budget(ADAPTED_ITER),
            **cache.code_spec(*evaluation.EVALUATION_CODE, *AUDIT_CODE)}

    def compute() -> np.ndarray:
        made = evaluation.evaluate(source, images, "pgd", eps_255 / 255, n_iter=budget(ADAPTED_ITER), keep_adv=True,
                                   label="audit source")
        return _robust_on(model, images, made.x_adv, clean)

    return cache.cached("audit", spec, compute)


def lowpass(z: torch.Tensor, d0: float) -> torch.Tensor:
    """The Gaussian input filter's transfer applied to a perturbation (what the filter lets through)."""
    return defense.GaussianInputFilter(d0).to(z.device)(z)


def passband_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, d0: float,
                 seed: int = 0) -> torch.Tensor:
    """PGD whose perturbation lives in the filter's passband: delta = clip(lowpass(z), -eps, eps), ascent on z."""
    gen = torch.Generator().manual_seed(seed)
    z = (2 * torch.rand(x.shape, generator=gen) - 1).to(x.device) * eps

    def adv(z_: torch.Tensor) -> torch.Tensor:
        return (x + lowpass(z_, d0).clamp(-eps, eps)).clamp(0, 1)

    for _ in range(steps):
        z.requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(model(adv(z)), y, reduction="sum"), z)
        z = (z + eps / 4 * grad.sign()).detach()
    x_adv = adv(z).detach()
    attacks.check_perturbation(x, x_adv, eps)
    return x_adv


def _passband_robust(model: nn.Module, images: ImageSet, eps_255: float, d0: float, clean: np.ndarray) -> np.ndarray:
    spec = {"what": "passband", "model": evaluation.fingerprint(model), "images": evaluation.fingerprint(images.images), "eps": eps_255,
            "steps": budget(ADAPTED_ITER), "d0": d0, **cache.code_spec(*evaluation.EVALUATION_CODE, *AUDIT_CODE)}

    def compute() -> np.ndarray:
        x, y = images.images.float().div(255), images.labels
        hit = torch.from_numpy(clean)
        x_adv = x.clone()
        if hit.any():
            x_adv[hit] = passband_pgd(model.eval(), x[hit], y[hit], eps_255 / 255, budget(ADAPTED_ITER), d0)
        return _robust_on(model, images, x_adv, clean)

    return cache.cached("audit", spec, compute)


def zero_gradient_share(model: nn.Module, images: ImageSet, clean: np.ndarray) -> float:
    """Share (%) of clean-correct images whose input gradient of the cross-entropy is exactly zero."""
    idx = torch.from_numpy(np.flatnonzero(clean))
    if not len(idx):
        return 0.0
    x = images.images[idx].float().div(255).requires_grad_(True)
    grad, = torch.autograd.grad(F.cross_entropy(model(x), images.labels[idx], reduction="sum"), x)
    return float(100 * (grad.flatten(1).abs().amax(1) == 0).float().mean())


def describe() -> list[str]:
    """Every attack of the audit, in words, with the settings it runs with (`budget` applied)."""
    runs = {"table": {"attack": TABLE_ATTACK[0], "n_iter": TABLE_ATTACK[1]}, **SUITE, **ON_SURVIVORS}
    out = [f"{name}: " + attacks.describe(s["attack"], **{k: budget(s[k]) for k in ("n_iter", "n_queries") if k in s})
           for name, s in runs.items()]
    steps = budget(ADAPTED_ITER)
    return out + ["PGD ladder " + "/".join(map(str, iter_ladder())) + " iterations, doubled until no further image breaks",
                  "eps sweep " + "/".join(map(str, EPS_LADDER_255)) + f"/255 with PGD-{budget(20)}",
                  f"transfer: PGD-{steps} made on " + " and on ".join(TRANSFER_SOURCES),
                  f"filtered models: passband PGD-{steps}, PGD-{steps} without the filter"]


def protocol(study: Study, eps_255: float, names: list[str]) -> str:
    """The audit page's protocol line."""
    res = study.classifier("CLIP", study.datasets[0]).image_size
    return (f"Protocol: adaptive-attack audit of {', '.join(names)}; l-inf eps = {eps_255:g}/255 on [0, 1] pixels; "
            f"n = {study.n_samples} seeded test images (seed {study.seed}) of {', '.join(study.datasets)}; {res} px; "
            "robust = correct clean and under the attack; worst case = under every attack at this eps; 95% percentile "
            "bootstrap CIs over images (1000 resamples; table minus worst case paired). Attacks: " + "; ".join(describe()))


def check_models(study: Study, names) -> list[str]:
    """The audited models: `names`, or AUDITED when None; a name the study does not define is an error."""
    names = list(AUDITED if names is None else names)
    unknown = [n for n in names if n not in study.variants]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown} to audit: use some of {sorted(study.variants)}")
    return names


def run(study: Study, method: str, dataset: str, eps_255: float = 4) -> Audit:
    """Every audit attack on one model of `study` (its images of `dataset`); each result is cached."""
    images, model = study.images[dataset], study.model(method, dataset)
    table = evaluation.evaluate(model, images, TABLE_ATTACK[0], eps_255 / 255, n_iter=budget(TABLE_ATTACK[1]),
                                label=f"audit {method}", seed=study.seed)
    audit = Audit(method, table.n, table.correct("clean"), table.correct("robust"))
    _run_suite(audit, model, images, eps_255)
    _run_convergence(audit, model, images, eps_255)
    for source in TRANSFER_SOURCES:
        if source != method:
            audit.transfer[source] = _transferred_robust(study.model(source, dataset), model, images, eps_255,
                                                         audit.clean, f"transfer from {source}")
    if not isinstance(model.input_filter, nn.Identity):
        _run_adapted(audit, model, images, eps_255)
    audit.zero_grad = zero_gradient_share(model, images, audit.clean)
    return audit


def _run_suite(audit: Audit, model: nn.Module, images: ImageSet, eps_255: float) -> None:
    for name, s in SUITE.items():
        audit.suite[name] = _suite_attack(model, images, s, eps_255, audit.method)
    alive = np.logical_and.reduce([audit.table, *audit.suite.values()])
    for name, s in ON_SURVIVORS.items():
        audit.suite[name] = _on_survivors(model, images, alive, s, eps_255, audit.method)
        alive = alive & audit.suite[name]


def _run_convergence(audit: Audit, model: nn.Module, images: ImageSet, eps_255: float) -> None:
    for n_iter in iter_ladder():
        audit.ladder[n_iter] = evaluation.evaluate(model, images, "pgd", eps_255 / 255, n_iter=n_iter,
                                                   label=f"audit {audit.method}").correct("robust")
        if len(audit.ladder) > 1 and _stopped_falling(audit.ladder):
            break
    for e in EPS_LADDER_255:
        audit.sweep[e] = evaluation.evaluate(model, images, "pgd", e / 255, n_iter=budget(20),
                                             label=f"audit {audit.method}").correct("robust")


def _run_adapted(audit: Audit, model: nn.Module, images: ImageSet, eps_255: float) -> None:
    """The attacks that know the Gaussian filter: in its passband, and made without it."""
    steps = budget(ADAPTED_ITER)
    audit.adapted[f"passband PGD-{steps}"] = _passband_robust(model, images, eps_255, float(model.input_filter.d0),
                                                              audit.clean)
    unfiltered = copy.deepcopy(model)
    unfiltered.input_filter = nn.Identity()
    audit.adapted[f"PGD-{steps} without the filter"] = _transferred_robust(unfiltered, model, images, eps_255,
                                                                          audit.clean, "without the filter")


def _suite_attack(model: nn.Module, images: ImageSet, s: dict, eps_255: float, method: str) -> np.ndarray:
    settings = {k: budget(v) for k, v in s.items() if k not in ("attack", "seed")}
    return evaluation.evaluate(model, images, s["attack"], eps_255 / 255, seed=s["seed"], label=f"audit {method}",
                               **settings).correct("robust")


def _on_survivors(model: nn.Module, images: ImageSet, alive: np.ndarray, s: dict, eps_255: float, method: str) -> np.ndarray:
    """The attack on the images still robust (`alive`); the others count as broken already."""
    out = np.zeros(len(alive), dtype=bool)
    idx = np.flatnonzero(alive)
    if len(idx):
        sub = ImageSet(images.images[idx], images.labels[idx], images.classnames, images.source)
        out[idx] = _suite_attack(model, sub, s, eps_255, method)
    return out


def _stopped_falling(ladder: dict[int, np.ndarray]) -> bool:
    """The last doubling broke no image that the previous one left robust."""
    steps = sorted(ladder)
    return not (ladder[steps[-2]] & ~ladder[steps[-1]]).any()


# --- reading the runs ------------------------------------------------------------------------------------

def flags(audit: Audit) -> dict[str, str]:
    """The masking signs that are present, each with its count (an empty dict: none)."""
    white = np.logical_and.reduce([audit.table, *(audit.suite[k] for k in WHITE_BOX), *audit.ladder.values()])
    out = {}
    black = int((white & ~audit.suite[SQUARE]).sum())
    if black:
        out["black-box beats white-box"] = f"Square breaks {black} image(s) every gradient attack left robust"
    moved = int((white & ~np.logical_and.reduce(list(audit.transfer.values()))).sum()) if audit.transfer else 0
    if moved:
        out["transfer beats white-box"] = f"transfer attacks break {moved} image(s) the white-box attacks left robust"
    if not _stopped_falling(audit.ladder):
        out["not converged"] = f"PGD still breaks images at {max(audit.ladder)} iterations"
    top = max(audit.sweep)
    if audit.sweep[top].any():
        out["sweep does not reach 0"] = f"{100 * audit.sweep[top].mean():.1f} % robust at {top}/255"
    if audit.zero_grad > 0:
        out["zero gradients"] = f"{audit.zero_grad:.1f} % of clean-correct images have an all-zero input gradient"
    return out


def verdict(audit: Audit) -> str:
    """Does the table's number stand: its robust accuracy minus the per-image worst case, read from the paired CI."""
    gap = stats.bootstrap_diff(100 * audit.table.astype(float), 100 * audit.worst().astype(float))
    signs = flags(audit)
    word = "stands" if gap.low <= 0 else f"overstated by {gap.fmt()} pp"
    return word + (f"; masking signs: {', '.join(signs)}" if signs else "; no masking sign")


def attack_table(audits: list[Audit]) -> pd.DataFrame:
    """Robust accuracy (%) with CI under each attack, per model, and the per-image worst case."""
    rows = []
    for a in audits:
        for name, robust in {**a.all_attacks(), "worst case": a.worst()}.items():
            est = stats.accuracy(robust)
            rows.append({"model": a.method, "attack": name, "robust": round(est.mean, 1), "95% CI": f"[{est.low:.1f}, {est.high:.1f}]"})
    return pd.DataFrame(rows)


def curves(audits: list[Audit]) -> pd.DataFrame:
    """Robust accuracy vs PGD iterations, vs PGD-50 restarts (per-image worst over the first k starts) and vs eps
    (PGD-20), one row per point."""
    rows = [{"model": a.method, "curve": "iterations", "x": k, "robust": round(100 * v.mean(), 1)} for a in audits
            for k, v in a.ladder.items()]
    for a in audits:
        starts = [v for k, v in a.suite.items() if k.startswith("PGD-50 (start")]
        rows += [{"model": a.method, "curve": "restarts", "x": k,
                  "robust": round(100 * np.logical_and.reduce(starts[:k]).mean(), 1)} for k in range(1, len(starts) + 1)]
    rows += [{"model": a.method, "curve": "eps (1/255)", "x": e, "robust": round(100 * v.mean(), 1)} for a in audits
             for e, v in a.sweep.items()]
    return pd.DataFrame(rows)


def paper_robust(method: str) -> float | None:
    """The paper's robust accuracy for a model (Table 1's 16-dataset average, or Table 6's 4-dataset mean for the
    ablations), AutoAttack at 4/255; None for a model the paper does not report."""
    if method in reference.TABLE1_AUTOATTACK:
        return reference.TABLE1_AUTOATTACK[method]["Avg"]
    if method in ABLATION:
        return _paper_t6(*ABLATION[method])["paper robust (4-ds mean)"]
    return None


def summary(audits: list[Audit]) -> pd.DataFrame:
    """One row per model: table number, worst case, the paper's number, the masking flags and the verdict."""
    rows = []
    for a in audits:
        table, worst = stats.accuracy(a.table), stats.accuracy(a.worst())
        rows.append({"model": a.method, "clean": round(100 * a.clean.mean(), 1),
                     f"table ({TABLE_ATTACK[0].upper()}-{budget(TABLE_ATTACK[1])})": table.fmt(), "worst case": worst.fmt(),
                     "paper (AutoAttack, Table 1 avg / Table 6 mean)": paper_robust(a.method),
                     "flags": "; ".join(flags(a).values()) or "none", "verdict": verdict(a)})
    return pd.DataFrame(rows)



def glue_values(audits: list[Audit]) -> dict[str, str]:
    """The verdict paragraph's numbers: how many table numbers stand, which models carry masking signs."""
    verdicts = {a.method: verdict(a) for a in audits}
    stand = [m for m, v in verdicts.items() if v.startswith("stands")]
    flagged = [f"{a.method} ({', '.join(flags(a))})" for a in audits if flags(a)]
    return {"au_n": str(len(audits)), "au_stand": f"{len(stand)} ({', '.join(stand) or 'none'})",
            "au_over": ", ".join(m for m in verdicts if m not in stand) or "none",
            "au_flagged": "; ".join(flagged) or "none of them", **{f"au_{k}": verdicts.get(m, "not audited")
                                                                   for k, m in (("plus", "R-Adapt+"), ("fare", "FARE"))}}
