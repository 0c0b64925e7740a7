"""Progressive module replacement (the paper's Fig. 2b, 4, 8, 9, 12).

Why: if robustness lives in the shallow layers, swapping only the first few modules of the
standard tower for the robust model's should already buy most of the robust accuracy, and
swapping the deep ones should mostly cost clean accuracy (in distribution) or both (out of it).

Order of the cumulative swaps (each step keeps every earlier swap):
  "none" (the standard tower), "Emb" (conv1, [CLS] embedding, positional embedding, ln_pre),
  "B1-Attn" (ln_1, attn, ls_1 of block 1), "B1-MLP" (ln_2, mlp, ls_2 of block 1), "B2-Attn", ...,
  "BL-MLP", and finally "Head" (everything left: ln_post, proj and any pooling), after which
  the hybrid *is* the robust tower. The paper's figures stop before the head; we show it so that
  the curve ends exactly at the robust model.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .. import evaluation
from ..data import ImageSet
from ..zeroshot import ZeroShotClassifier

EMB_PREFIXES = ("conv1.", "class_embedding", "positional_embedding", "ln_pre.", "patch_dropout.")
ATTN_PARTS = ("ln_1.", "attn.", "ls_1.", "ln_1_kv.")
MLP_PARTS = ("ln_2.", "mlp.", "ls_2.")


def module_steps(tower: nn.Module) -> list[tuple[str, list[str]]]:
    """The replacement order: (step name, state-dict keys it swaps), ending with "Head"."""
    keys = list(tower.state_dict().keys())
    steps: list[tuple[str, list[str]]] = [("Emb", [k for k in keys if k.startswith(EMB_PREFIXES)])]
    for i in range(len(tower.transformer.resblocks)):
        base = f"transformer.resblocks.{i}."
        steps.append((f"B{i + 1}-Attn", [k for k in keys if k.startswith(tuple(base + p for p in ATTN_PARTS))]))
        steps.append((f"B{i + 1}-MLP", [k for k in keys if k.startswith(tuple(base + p for p in MLP_PARTS))]))
    taken = {k for _, ks in steps for k in ks}
    steps.append(("Head", [k for k in keys if k not in taken]))
    return steps


def step_names(tower: nn.Module) -> list[str]:
    return ["none"] + [name for name, _ in module_steps(tower)]


def coarse_steps(tower: nn.Module, fine_blocks: int = 1, every: int = 1) -> list[str]:
    """Steps to evaluate when every module is too many: module by module (Attn, MLP) in the first
    `fine_blocks` blocks, where the paper's effect lives, then a point after every `every`-th whole block
    ("Bi-MLP", the last block always included), and "Head". The swaps themselves stay cumulative and
    module by module; only the evaluated points thin out.
    """
    names = step_names(tower)
    depth = len(tower.transformer.resblocks)
    keep = {"none", "Emb", "Head"} | {f"B{i}-{part}" for i in range(1, fine_blocks + 1) for part in ("Attn", "MLP")}
    keep |= {f"B{i}-MLP" for i in range(fine_blocks + 1, depth + 1) if (i - fine_blocks) % every == 0 or i == depth}
    return [n for n in names if n in keep]


def progressive_towers(standard: nn.Module, robust: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Yield ("none", standard), then (step, hybrid) after each cumulative swap; the last equals `robust`.

    One hybrid (a copy of `standard`) is updated in place from step to step, so a ViT-L/14 is
    not copied 50 times: use each tower before advancing, or `copy.deepcopy` it to keep it.
    """
    robust_state = robust.state_dict()
    hybrid = copy.deepcopy(standard).eval()
    if set(hybrid.state_dict()) != set(robust_state):
        raise ValueError("standard and robust towers have different architectures (state-dict keys differ)")
    yield "none", hybrid
    for name, keys in module_steps(hybrid):
        with torch.no_grad():
            hybrid.load_state_dict({k: robust_state[k] for k in keys}, strict=False)
        yield name, hybrid


def hybrid_classifier(base: ZeroShotClassifier, tower: nn.Module) -> ZeroShotClassifier:
    """`base` (its text head, normalisation and input filter) with another vision tower, frozen."""
    model = ZeroShotClassifier(tower, base.head, base.mean.flatten().tolist(), base.std.flatten().tolist(),
                               base.classnames).to(base.head.device).eval()
    model.input_filter = base.input_filter
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def hybrid_at(base: ZeroShotClassifier, robust_visual: nn.Module, step: str) -> ZeroShotClassifier:
    """The hybrid after the cumulative replacement `step` (e.g. "B1-Attn"), as a classifier of its own."""
    for name, tower in progressive_towers(base.visual, robust_visual):
        if name == step:
            return hybrid_classifier(base, copy.deepcopy(tower))
    raise ValueError(f"unknown replacement step {step!r}: use one of {step_names(base.visual)}")


@dataclass
class ReplacementCurve:
    """Clean and robust accuracy (%) with bootstrap intervals after each step, one model/dataset."""

    robust_model: str
    dataset: str
    attack: str
    eps: float
    rows: list[dict] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def replacement_curve(base: ZeroShotClassifier, robust_visual: nn.Module, images: ImageSet, *, robust_model: str,
                      dataset: str, attack: str = "apgd-ce", eps: float = 4 / 255, n_iter: int = 10,
                      steps: Sequence[str] | None = None, seed: int = 0) -> ReplacementCurve:
    """Evaluate the hybrid classifier after each replacement step (cached per step by content).

    `base` is the standard model's classifier (its text head is used for every hybrid: fine-tunes
    change the vision tower only); `steps` restricts the evaluated steps (all by default).
    """
    curve = ReplacementCurve(robust_model, dataset, attack, eps)
    order = step_names(base.visual)
    wanted = set(order if steps is None else steps)
    towers = progressive_towers(base.visual, robust_visual)
    for index, (name, tower) in enumerate(tqdm(towers, total=len(order), desc=f"{robust_model} on {dataset}",
                                              unit="step", leave=False)):
        if name not in wanted:
            continue
        model = hybrid_classifier(base, tower)
        res = evaluation.evaluate(model, images, attack, eps, label=f"{robust_model}:{name}", n_iter=n_iter, seed=seed)
        clean, robust = res.clean(), res.robust()
        curve.rows.append({"model": robust_model, "dataset": dataset, "index": index, "step": name,
                           "clean": clean.mean, "clean_low": clean.low, "clean_high": clean.high,
                           "robust": robust.mean, "robust_low": robust.low, "robust_high": robust.high, "n": res.n})
    return curve


def saturation_step(frame: pd.DataFrame, share: float = 0.9, column: str = "robust") -> str:
    """The first step at which `column` reaches `share` of its total gain (max over steps - step "none")."""
    start = float(frame[column].iloc[0])
    gain = float(frame[column].max()) - start
    if gain <= 0:
        return str(frame["step"].iloc[0])
    reached = frame[frame[column] >= start + share * gain]
    return str(reached["step"].iloc[0])


def early_reading(part: pd.DataFrame, early_by: str = "B1-MLP", column: str = "robust") -> str:
    """Is robustness established by step `early_by`? Read from the bootstrap intervals, never the points.

    "early": at `early_by` the interval lies above the unreplaced model's ("none") and does not lie
    below the best step's; "late": it lies below the best step's interval; "unresolved" otherwise
    (including when no step rises above "none" beyond the intervals).
    """
    part = part.reset_index(drop=True)
    steps = list(part["step"])
    none, at = part.iloc[0], part.loc[steps.index(early_by)]
    best = part.loc[part[column].idxmax()]
    if best[f"{column}_low"] <= none[f"{column}_high"]:
        return "unresolved"
    if at[f"{column}_high"] < best[f"{column}_low"]:
        return "late"
    return "early" if at[f"{column}_low"] > none[f"{column}_high"] else "unresolved"


def tradeoff_reading(part: pd.DataFrame, early_by: str = "B1-MLP") -> str:
    """Fig. 4 (i), in distribution: does swapping in the early modules (up to `early_by`) raise robust accuracy
    while clean accuracy falls? Intervals apart from the unreplaced model's: "trade-off" (both), "no trade-off"
    (robust clearly falls or clean clearly rises), else "unresolved"."""
    part = part.reset_index(drop=True)
    none, at = part.iloc[0], part.loc[list(part["step"]).index(early_by)]
    up = lambda c: at[f"{c}_low"] > none[f"{c}_high"]  # noqa: E731
    down = lambda c: at[f"{c}_high"] < none[f"{c}_low"]  # noqa: E731
    if up("robust") and down("clean"):
        return "trade-off"
    if down("robust") or up("clean"):
        return "no trade-off"
    return "unresolved"


def readings(curves: pd.DataFrame, source: str, early_by: str = "B1-MLP", share: float = 0.9) -> dict:
    """The paper's two readings of replacement curves (rows of `ReplacementCurve.frame()` for several models).

    early:   on the source (ID) dataset, `early_reading` says robustness is established by `early_by`.
    overfit: on every other (OOD) dataset, both clean and robust accuracy are lower for the fully replaced
             tower than after `early_by`, intervals apart (a clear rise of either contradicts it).
    Each verdict is "supports" (all models / model-dataset pairs), "contradicts" (none) or "partly supports",
    counting only pairs whose intervals resolve the question; "cannot decide" when none resolves it.
    The saturation step (`share` of the total gain, point estimates) is reported, not judged.
    """
    out: dict = {"saturation": {}, "b1_attn_share": {}, "early": [], "ood": {}, "both_drop": [], "unresolved": [],
                 "tradeoff": {}}
    for (model, dataset), part in curves.groupby(["model", "dataset"], sort=False):
        part = part.reset_index(drop=True)
        steps = list(part["step"])
        if dataset == source:
            out["saturation"][model] = saturation_step(part, share)
            final = float(part["robust"].iloc[-1])
            if "B1-Attn" in steps:
                out["b1_attn_share"][model] = 100 * float(part.loc[steps.index("B1-Attn"), "robust"]) / max(final, 1e-9)
            if early_by in steps:
                out["tradeoff"][model] = tradeoff_reading(part, early_by)
            reading = early_reading(part, early_by) if early_by in steps else "unresolved"
            if reading == "unresolved":
                out["unresolved"].append(f"{model}/{dataset}")
            elif reading == "early":
                out["early"].append(model)
        elif early_by in steps:
            a, b = part.loc[steps.index(early_by)], part.iloc[-1]
            out["ood"][(model, dataset)] = (float(a["clean"]), float(b["clean"]), float(a["robust"]), float(b["robust"]))
            drop = [b[f"{c}_high"] < a[f"{c}_low"] for c in ("clean", "robust")]
            rise = [b[f"{c}_low"] > a[f"{c}_high"] for c in ("clean", "robust")]
            if all(drop):
                out["both_drop"].append(f"{model}/{dataset}")
            elif not any(rise):  # a clear rise of either contradicts; anything else is inside the intervals
                out["unresolved"].append(f"{model}/{dataset}")

    def word(hits: list, keys: list) -> str:
        decided = [k for k in keys if k not in out["unresolved"]]
        if not decided:
            return "cannot decide"
        hit = [k for k in decided if k in hits]
        return "supports" if len(hit) == len(decided) else ("contradicts" if not hit else "partly supports")

    decided = {m: r for m, r in out["tradeoff"].items() if r != "unresolved"}
    hits = [m for m, r in decided.items() if r == "trade-off"]
    out["tradeoff_verdict"] = ("cannot decide" if not decided else "supports" if len(hits) == len(decided)
                               else "contradicts" if not hits else "partly supports")
    id_keys = [f"{m}/{source}" for m in out["saturation"]]
    out["early_verdict"] = word([f"{m}/{source}" for m in out["early"]], id_keys)
    out["ood_verdict"] = word(out["both_drop"], [f"{m}/{d}" for m, d in out["ood"]])
    return out
