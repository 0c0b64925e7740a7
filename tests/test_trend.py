"""The trend page's reading: a direction from two end points' intervals, and one word per claim."""
import numpy as np
import pandas as pd
import pytest

from radapt_lib.rtables import trend
from radapt_lib.stats import Estimate

PAPER_AT_10 = trend.Quantity("x", "C9", "x", "pp", {"FARE": 10.0}, 1, "test")
UP_ONLY = trend.Quantity("y", "C9", "y", "index", {}, 1, "test")
DOWN_ONLY = trend.Quantity("z", "C9", "z", "%", {}, -1, "test")


def est(mean, half=1.0):
    return Estimate(mean, mean - half, mean + half, 100)


@pytest.mark.parametrize("q, start, end, word", [
    (PAPER_AT_10, est(0), est(1), "flat"),  # the change's interval holds 0
    (PAPER_AT_10, est(0), est(5), "toward the paper"),
    (PAPER_AT_10, est(0), est(-5), "away from the paper"),
    (PAPER_AT_10, est(0), est(25), "away from the paper"),  # past the paper's value and further from it
    (PAPER_AT_10, est(20), est(12), "toward the paper"),
    (UP_ONLY, est(-2, 0.05), est(1, 0.05), "toward the paper"),
    (DOWN_ONLY, est(60), est(80), "away from the paper"),
    (DOWN_ONLY, est(60), est(30), "toward the paper"),
])
def test_direction_reads_the_change_interval_then_distance(q, start, end, word):
    delta = Estimate(end.mean - start.mean, end.mean - start.mean - 1.5, end.mean - start.mean + 1.5, 100)
    assert trend.direction(start, end, delta, q, "FARE") == word
    if q is PAPER_AT_10 and word != "flat":  # a method without a paper value reads the claim's side (here: up)
        assert trend.direction(start, end, delta, q, "TGA") == ("toward the paper" if end.mean > start.mean
                                                                else "away from the paper")


def test_a_change_is_paired_over_the_same_units():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=200)  # what the two points share per image: it cancels in a paired change
    start = trend._mean_diff(shared, np.zeros(200))
    end = trend._mean_diff(shared + 0.3, np.zeros(200))
    delta = trend.change(start, end)
    assert delta.mean == pytest.approx(0.3) and delta.high - delta.low < 1e-9  # paired: no spread at all
    apart = start.estimate()
    assert apart.high - apart.low > 0.2  # each point alone is wide
    with pytest.raises(ValueError, match="same units"):
        trend.change(start, trend._mean_diff(np.zeros(5), np.zeros(5)))


def test_claim_trends_agree_or_say_mixed():
    pre, full, tec, tga = (f"{a} trend" for a in trend.AXES)
    table = pd.DataFrame([
        {"claim": "C1", pre: "flat", full: "away from the paper", tec: "toward the paper", tga: "toward the paper"},
        {"claim": "C5", pre: "flat", full: "away from the paper", tec: "away from the paper", tga: "flat"},
        {"claim": "C5", pre: "flat", full: "away from the paper", tec: "toward the paper", tga: "flat"},
        {"claim": "C5", pre: "toward the paper", full: "flat", tec: "n/a (reads CLIP only)", tga: "n/a (reads CLIP only)"},
    ])
    by = trend.claim_trends(table)
    tecoa = "fine-tuning (TeCoA)"
    assert by.loc["C1", tecoa] == "toward the paper"
    assert by.loc["C5", tecoa] == "mixed (1 away from the paper, 1 toward the paper)"
    assert by.loc["C5", "pre-training (FARE)"] == "mixed (2 flat, 1 toward the paper)"
    values = trend.glue_values(table, by)
    assert values["tr_C5_tecoa"].startswith("mixed") and values["tr_pre_counts"] == "1 toward the paper, 3 flat"
    assert values["tr_tga_counts"] == "1 toward the paper, 2 flat"
    assert by.loc["C5", "pre-training, finished runs (FARE)"] == "mixed (2 away from the paper, 1 flat)"
    assert values["tr_prefull_counts"] == "3 away from the paper, 1 flat"


def test_the_paper_values_come_from_reference():
    from radapt_lib import reference

    q = trend.BY_KEY["plus_rob"]
    t1 = reference.TABLE1_AUTOATTACK
    assert q.paper == {m: round(t1["R-Adapt+"]["Avg"] - t1[m]["Avg"], 1) for m in ("FARE", "TeCoA", "TGA")}
    assert trend.BY_KEY["rep"].paper["FARE"] == pytest.approx(100 * 80.7 / t1["FARE"]["Caltech256"], abs=0.05)
    assert {p.axis for p in trend.POINTS} == set(trend.AXES)
    assert len(trend.points_for("paper")) == len(trend.AXES)  # the paper profile: one point per axis


def test_strength_values_read_each_axis_from_its_smallest_to_its_largest_point():
    axes = list(trend.AXES)
    rows = [(axes[0], 480, "c", "3"), (axes[0], 120, "a", "1"), (axes[0], 240, "b", "2"), (axes[2], 200, "x", "9")]
    strength = pd.DataFrame([{"axis": a, "steps": s, "robust model robust": r, "robust model clean": c, "CLIP clean": c}
                             for a, s, r, c in rows]).set_index(["axis", "steps"])
    values = trend.strength_values(trend.TrendRun(pd.DataFrame(), strength, {}, 0))
    assert values == {"tr_pre_rob": "a -> c", "tr_pre_clean": "1 -> 3", "tr_pre_clip": "1 -> 3"}  # one point: no trend
