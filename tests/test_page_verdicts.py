"""Known-answer tests of the main-results and Section-3 pages' verdict rules (radapt_lib.analysis.verdicts)."""
import pytest

from radapt_lib.analysis import verdicts
from radapt_lib.stats import Estimate


def est(mean, low, high):
    return Estimate(mean, low, high, 100)


def test_main_results_needs_every_fine_tune_clearly_above_and_a_clean_price():
    robust = {"CLIP": est(1, 0, 3), "FARE": est(16, 9, 23), "TeCoA": est(5, 1, 10)}
    hits, word = verdicts.main_results(robust, {"FARE": 10.0, "TeCoA": 12.0})
    assert hits == ["FARE"] and word == "only partly supports"  # TeCoA's CI overlaps CLIP's
    robust["TeCoA"] = est(19, 12, 28)
    assert verdicts.main_results(robust, {"FARE": 10.0, "TeCoA": 12.0}) == (["FARE", "TeCoA"], "supports")
    assert verdicts.main_results(robust, {"FARE": 10.0, "TeCoA": -1.0})[1] == "only partly supports"  # no clean price


@pytest.mark.parametrize("gaps, shifts, word", [(["FARE", "TGA"], ["FARE", "TGA"], "supports"),
                                                ([], [], "contradicts"), (["FARE"], [], "partly supports"),
                                                ([], ["FARE"], "contradicts")])  # a shift without the gap: not "partly"
def test_cka_rule(gaps, shifts, word):
    assert verdicts.cka(gaps, shifts, ["FARE", "TGA"]) == word


@pytest.mark.parametrize("interval, word", [((0.5, 0.1, 0.9), "supports"), ((-0.5, -0.9, -0.1), "contradicts"),
                                            ((0.1, -0.2, 0.4), "cannot decide")])
def test_sign_rule(interval, word):
    assert verdicts.sign(est(*interval)) == word


def test_bright_attention_rule():
    white_hi, white_lo = est(1.3, 1.1, 1.5), est(1.0, 0.9, 1.1)
    assert verdicts.bright_attention(est(0.07, 0.06, 0.08), white_hi) == "supports"
    assert verdicts.bright_attention(est(0.07, 0.06, 0.08), white_lo) == "partly supports"
    assert verdicts.bright_attention(est(-0.01, -0.04, 0.02), white_hi) == "cannot decide"
    assert verdicts.bright_attention(est(-0.05, -0.08, -0.02), white_hi) == "contradicts"
    # more bright attention than CLIP, but below uniform on white images (page 13's FARE): not "partly"
    assert verdicts.bright_attention(est(0.06, 0.04, 0.08), est(0.67, 0.62, 0.71)) == "contradicts"


def test_insensitivity_rule_reads_every_measure():
    sims = {"CLIP": [est(0.13, 0.12, 0.14), est(0.5, 0.45, 0.55)],
            "FARE": [est(0.6, 0.58, 0.62), est(0.7, 0.65, 0.75)],
            "TeCoA": [est(0.6, 0.58, 0.62), est(0.5, 0.44, 0.56)]}  # TeCoA's white measure overlaps CLIP's
    assert verdicts.insensitivity(sims) == (["FARE"], "partly supports")
    sims["TeCoA"][1] = est(0.9, 0.85, 0.95)
    assert verdicts.insensitivity(sims) == (["FARE", "TeCoA"], "supports")
    sims["FARE"] = sims["TeCoA"] = [est(0.13, 0.12, 0.14)] * 2
    assert verdicts.insensitivity(sims) == ([], "contradicts")


def test_shapley_rule_reads_both_intervals():
    above, below, holds0 = est(0.1, 0.05, 0.15), est(-0.1, -0.15, -0.05), est(0.0, -0.05, 0.05)
    assert verdicts.shapley(above, dominance=est(3.0, 1.0, 5.0)) == "supports"
    assert verdicts.shapley(above, dominance=est(-1.0, -2.0, -0.5)) == "contradicts"
    assert verdicts.shapley(below, dominance=est(3.0, 1.0, 5.0)) == "contradicts"
    assert verdicts.shapley(holds0, dominance=est(3.0, 1.0, 5.0)) == "cannot decide"
    assert verdicts.shapley(above, dominance=est(1.0, -1.0, 3.0)) == "cannot decide"  # a positive point is not enough


@pytest.mark.parametrize("lpi, control, word", [
    ((0.5, 0.1, 0.9), (0.3, 0.1, 0.5), "supports"),
    ((0.5, 0.1, 0.9), (0.1, -0.1, 0.3), "partly supports"),  # a low-pass shift, but any fine-tuning may make it
    ((0.5, 0.1, 0.9), (-0.3, -0.5, -0.1), "contradicts"),  # the clean fine-tune shifts further
    ((-0.5, -0.9, -0.1), (0.3, 0.1, 0.5), "contradicts"),  # without the DC bin the low band loses
    ((0.1, -0.2, 0.4), (0.3, 0.1, 0.5), "cannot decide"),
    ((0.5, 0.1, 0.9), None, "supports"),  # no control in the profile: the first question only
])
def test_spectral_rule_needs_a_shift_beyond_dc_and_beyond_the_control(lpi, control, word):
    assert verdicts.spectral(est(*lpi), est(*control) if control else None) == word
