"""The verdict rules of the main-results page and the Section-3 pages, one tested function each.

Each rule reads intervals (`stats.Estimate`), never a lone point estimate, and returns the word the
page glues into its verdict: "supports", "partly supports", "contradicts" or "cannot decide".
"""
from __future__ import annotations

from typing import Mapping, Sequence

from ..stats import Estimate


def _all_some_none(hits: Sequence[str], of: Sequence[str], some: str = "partly supports") -> str:
    if len(hits) == len(of):
        return "supports"
    return some if hits else "contradicts"


def above(a: Estimate, b: Estimate) -> bool:
    """a is clearly above b: the intervals do not overlap."""
    return a.low > b.high


def main_results(robust: Mapping[str, Estimate], clean_cost_src: Mapping[str, float], baseline: str = "CLIP") -> tuple[list[str], str]:
    """Page 02: every fine-tune clearly more robust than CLIP on the source split, at a clean price.

    Returns the fine-tunes clearly above CLIP and the verdict ("supports" / "only partly supports").
    """
    tuned = [m for m in robust if m != baseline]
    hits = [m for m in tuned if above(robust[m], robust[baseline])]
    ok = len(hits) == len(tuned) and min(clean_cost_src[m] for m in tuned) > 0
    return hits, "supports" if ok else "only partly supports"


def cka(gaps: Sequence[str], shifts: Sequence[str], robust: Sequence[str]) -> str:
    """Page 10: a first-block gap and a shifted diagonal in every robust model.

    The gap is the claim's core: with no robust model showing it, a shifted diagonal alone does not
    make the claim "partly" hold.
    """
    if len(gaps) == len(shifts) == len(robust):
        return "supports"
    return "contradicts" if not gaps else "partly supports"


def sign(est: Estimate) -> str:
    """Page 12: the low-pass index is above 0 (supports), below (contradicts), or its CI holds 0."""
    return "supports" if est.low > 0 else ("contradicts" if est.high < 0 else "cannot decide")


def spectral(lpi_without_dc: Estimate, vs_control: Estimate | None) -> str:
    """Page 12: a low-pass shift beyond the DC bin that a clean fine-tune does not also produce.

    `lpi_without_dc`: the low-pass index with the DC bin left out; `vs_control`: the robust model's
    low-minus-high contrast (without DC) minus the clean fine-tune's, paired over kernels; None when the
    profile has no control. "partly supports": a low-pass shift that the control's interval does not
    tell apart from any fine-tuning's.
    """
    if lpi_without_dc.high < 0 or (vs_control is not None and vs_control.high < 0):
        return "contradicts"
    if lpi_without_dc.low <= 0:
        return "cannot decide"
    return "supports" if vs_control is None or vs_control.low > 0 else "partly supports"


def bright_attention(diff: Estimate, white: Estimate) -> str:
    """Page 13: more [CLS] attention on bright patches than CLIP (diff), and above uniform (1) on white images.

    "partly supports": the first part holds and the white-image interval holds 1; an interval below 1
    (attention drawn away from the white regions) contradicts the "redirected to bright regions" reading.
    """
    if diff.high < 0 or white.high < 1:
        return "contradicts"
    if diff.low <= 0:
        return "cannot decide"
    return "supports" if white.low > 1 else "partly supports"


def insensitivity(self_sims: Mapping[str, Sequence[Estimate]], baseline: str = "CLIP") -> tuple[list[str], str]:
    """Page 14: each robust model's first block more input-insensitive than CLIP's on every measure.

    `self_sims[m]` holds one interval per measure (random pairs, white image); a model counts when its
    lowest lower bound is above CLIP's highest upper bound.
    """
    clip_high = max(e.high for e in self_sims[baseline])
    robust = [m for m in self_sims if m != baseline]
    hits = [m for m in robust if min(e.low for e in self_sims[m]) > clip_high]
    return hits, _all_some_none(hits, robust)


def shapley(diff: Estimate, dominance: Estimate) -> str:
    """Page 15: the top head attends more to bright patches than the bottom one, and positive values dominate.

    `diff`: top minus bottom head's bright-attention share; `dominance`: the sum of positive Shapley values
    minus the magnitude of the negative ones (both with intervals over images).
    """
    if diff.high < 0 or dominance.high < 0:
        return "contradicts"
    return "supports" if diff.low > 0 and dominance.low > 0 else "cannot decide"
