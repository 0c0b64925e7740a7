"""Known answers for the verdict logic: judge, Study.diff, average, claims_table and the collapse flag.

The study below holds hand-made per-image predictions (no model, no attack): `evaluation.evaluate`
is replaced by a lookup of those results, so `Study.evaluate` builds its frame exactly as on a page.
Every expected number is counted by hand in the comments.
"""
import numpy as np
import pandas as pd
import pytest
import torch

from radapt_lib import evaluation, rtables, stats
from radapt_lib.data import ImageSet
from radapt_lib.evaluation import EvalResult
from radapt_lib.rtables import Claim, Study, Variant

Estimate = stats.Estimate
N = 100
LABELS = np.arange(N) % 4  # image i has class i % 4 (4 classes, chance 25%)
EPS = 4


def _wrong(labels):
    return (labels + 1) % 4


def _result(clean_ok, adv_ok, clean_pred=None):
    """An EvalResult whose clean / attacked predictions are right exactly where the masks say."""
    clean = np.where(clean_ok, LABELS, _wrong(LABELS)) if clean_pred is None else clean_pred
    adv = np.where(adv_ok, LABELS, _wrong(LABELS))
    return EvalResult("hand-made", "pgd", EPS / 255, LABELS.copy(), clean, adv, None)


i = np.arange(N)
ALL = np.ones(N, bool)
# C collapses: it predicts class 0 for the first 60 images and is right on the rest. Clean correct: the
# 15 images i < 60 with i % 4 == 0, plus the 40 images i >= 60 -> 55%; class 0 gets 60 + 10 = 70% of
# its predictions (> 50%: collapsed, though 55% is well above chance + 10 = 35%). Attacked = clean.
C_PRED = np.where(i < 60, 0, LABELS)
C_OK = C_PRED == LABELS
RESULTS = {
    # A: clean 100%; robust on d1 the first 75 images (75%), on d2 the first 35 (35%)
    ("A", "d1"): _result(ALL, i < 75),
    ("A", "d2"): _result(ALL, i < 35),
    # B: clean 100%; robust on the first 25 images of both datasets (25%)
    ("B", "d1"): _result(ALL, i < 25),
    ("B", "d2"): _result(ALL, i < 25),
    ("C", "d1"): _result(C_OK, C_OK, clean_pred=C_PRED),
    ("C", "d2"): _result(C_OK, C_OK, clean_pred=C_PRED),
}


@pytest.fixture
def study(monkeypatch):
    images = ImageSet(torch.zeros(N, 3, 2, 2, dtype=torch.uint8), torch.from_numpy(LABELS), ("a", "b", "c", "d"), "hand")
    s = Study("mini", ("d1", "d2"), N, 0, zoo={}, images={"d1": images, "d2": images})
    for m in ("A", "B", "C"):
        s.variants[m] = Variant(m, base=m)
        for d in s.datasets:
            s._classifiers[(m, d)] = object()  # never called: evaluate is a lookup below

    def lookup(model, images, attack, eps, *, label, **settings):
        assert eps == EPS / 255
        method, dataset = label.split("/")
        return RESULTS[(method, dataset)]

    monkeypatch.setattr(evaluation, "evaluate", lookup)
    return s


@pytest.fixture
def frame(study):
    return study.evaluate(["A", "B", "C"], "pgd", [EPS])


# --- judge -------------------------------------------------------------------------------------

@pytest.mark.parametrize("diff,paper,verdict", [
    # our CI holds 0: the sign is undecided, but the size question still answers
    (Estimate(1.0, -2.0, 4.0, N), 10.0, "sign undecided (our CI holds 0), smaller than the paper's"),
    (Estimate(-2.5, -12.5, 6.5, N), 15.9, "sign undecided (our CI holds 0), smaller than the paper's"),  # Table 1 TeCoA clean
    (Estimate(1.0, -2.0, 4.0, N), -5.0, "sign undecided (our CI holds 0), smaller than the paper's"),
    (Estimate(1.0, -2.0, 4.0, N), 3.0, "sign undecided (our CI holds 0), consistent with the paper's size"),
    (Estimate(5.0, 2.0, 8.0, N), 6.5, "same sign, consistent with the paper's size"),
    (Estimate(5.0, 2.0, 8.0, N), 2.0, "same sign, consistent with the paper's size"),  # the bounds count as inside
    (Estimate(3.0, 1.0, 5.0, N), 10.0, "same sign, smaller than the paper's"),
    (Estimate(12.0, 11.0, 13.0, N), 5.0, "same sign, larger than the paper's"),
    (Estimate(-12.0, -13.0, -11.0, N), -5.0, "same sign, larger than the paper's"),
    (Estimate(-13.5, -18.5, -8.5, N), -0.2, "same sign, larger than the paper's"),  # a -0.2 claim is not "the same"
    (Estimate(-3.0, -5.0, -1.0, N), -10.0, "same sign, smaller than the paper's"),
    (Estimate(5.0, 2.0, 8.0, N), -3.0, "opposite sign: contradicts the paper"),
    (Estimate(-5.0, -8.0, -2.0, N), 3.0, "opposite sign: contradicts the paper"),
    (Estimate(1.0, -2.0, 4.0, N), 0.0, "the paper reports no difference, no difference, as the paper"),
    (Estimate(5.0, 2.0, 8.0, N), 0.0, "the paper reports no difference, a difference the paper does not report"),
    (Estimate(-5.0, -8.0, -2.0, N), 0.0, "the paper reports no difference, a difference the paper does not report"),
])
def test_judge(diff, paper, verdict):
    assert rtables.judge(diff, paper) == verdict


@pytest.mark.parametrize("diff, expected, verdict", [
    (Estimate(2.0, 0.5, 3.5, N), 1, "supports (same sign)"),
    (Estimate(-2.0, -3.5, -0.5, N), -1, "supports (same sign)"),
    (Estimate(-2.0, -3.5, -0.5, N), 1, "contradicts (opposite sign)"),
    (Estimate(2.0, 0.5, 3.5, N), -1, "contradicts (opposite sign)"),
    (Estimate(0.5, -1.0, 2.0, N), 1, "cannot decide (sign undecided)"),
    (Estimate(0.5, 0.0, 2.0, N), 1, "cannot decide (sign undecided)"),  # a bound at 0 holds 0
])
def test_sign_verdict_answers_the_sign_question_only(diff, expected, verdict):
    from radapt_lib.rtables.verdicts import sign_verdict

    assert sign_verdict(diff, expected) == verdict


# --- Study.correct and Study.diff -------------------------------------------------------------------

def test_correct_is_per_image_and_robust_needs_clean(study, frame):
    assert study.correct("A", "pgd", EPS, "robust", ["d1"]).sum() == 75
    assert study.correct("C", "pgd", EPS, "clean", ["d1"]).sum() == 55
    # concatenated over both datasets, in the study's order
    both = study.correct("A", "pgd", EPS, "robust")
    assert both.shape == (2 * N,) and both[:N].sum() == 75 and both[N:].sum() == 35


def test_diff_is_the_paired_difference_in_pp(study, frame):
    # A - B robust on d1: A alone is right on images 25..74 -> +100 on 50 of 100 images = 50.0 pp
    d = study.diff("A", "B", "pgd", EPS, "robust", ["d1"])
    assert d.mean == pytest.approx(50.0) and d.n == N
    assert d.low < 50.0 < d.high and 0 < d.low and d.high < 100
    # the interval is the percentile bootstrap of the per-image differences (seed 0, 1000 resamples)
    per_image = 100.0 * ((i < 75).astype(float) - (i < 25).astype(float))
    assert (d.low, d.high) == (stats.bootstrap_mean(per_image).low, stats.bootstrap_mean(per_image).high)
    # reversed order flips the sign
    assert study.diff("B", "A", "pgd", EPS, "robust", ["d1"]).mean == pytest.approx(-50.0)
    # pooled over d1 and d2: (50 + 10) images of 200 -> 30.0 pp
    assert study.diff("A", "B", "pgd", EPS).mean == pytest.approx(30.0)
    # C - B on d1: C alone right on 28, 32, ..., 56 (8) and 60..99 (40); B alone on 25 - 7 = 18 -> (48 - 18) / 100
    assert study.diff("C", "B", "pgd", EPS, "robust", ["d1"]).mean == pytest.approx(30.0)


def test_diff_is_paired_not_two_sample():
    # Right on the same 50 images: every per-image difference is 0, so the interval is exactly [0, 0].
    same = Study("mini", ("d",), N, 0, {}, {})
    same.results[("X", "d", "pgd", 4.0)] = _result(ALL, i < 50)
    same.results[("Y", "d", "pgd", 4.0)] = _result(ALL, i < 50)
    # Right on disjoint halves: still a mean of 0, but every image differs by +-100.
    same.results[("Z", "d", "pgd", 4.0)] = _result(ALL, i >= 50)
    d = same.diff("X", "Y", "pgd", 4)
    assert (d.mean, d.low, d.high) == (0.0, 0.0, 0.0)
    spread = same.diff("X", "Z", "pgd", 4)
    assert spread.mean == 0.0 and spread.low < -10 and spread.high > 10


# --- average ----------------------------------------------------------------------------------------

def test_average_pools_images_of_both_datasets(study, frame):
    avg = rtables.average(study, frame).set_index("method")
    assert list(avg.index) == ["A", "B", "C"]
    # A robust: (75 + 35) / 200 = 55.0%; B: (25 + 25) / 200 = 25.0%; clean A 100%, C 55%
    assert avg.loc["A", "robust"] == pytest.approx(55.0)
    assert avg.loc["B", "robust"] == pytest.approx(25.0)
    assert avg.loc["A", "clean"] == pytest.approx(100.0) and avg.loc["C", "clean"] == pytest.approx(55.0)
    assert avg.loc["A", "robust_lo"] < 55.0 < avg.loc["A", "robust_hi"]
    assert avg.loc["A", "n"] == 2 * N
    # the interval pools the 200 images (narrower than one dataset's 100 would give)
    one = stats.bootstrap_mean(100.0 * (i < 55))
    assert avg.loc["A", "robust_hi"] - avg.loc["A", "robust_lo"] < one.high - one.low
    assert avg.loc["C", "top_clean"] == pytest.approx(70.0)
    assert list(avg["collapse"]) == [False, False, True]


# --- the frame's collapse flag ------------------------------------------------------------------------

def test_collapsed_model_is_flagged_in_the_frame(frame):
    assert list(frame["method"]) == ["A", "B", "C", "A", "B", "C"]
    c = frame[frame["method"] == "C"].iloc[0]
    assert c["collapse"] and c["top_clean"] == pytest.approx(70.0) and c["clean"] == pytest.approx(55.0)
    assert c["chance"] == pytest.approx(25.0)
    assert not frame[frame["method"] != "C"]["collapse"].any()
    assert rtables.collapsed(frame) == ("flagged as collapsed: C on d1 (clean 55.0%, top class 70.0%); "
                                        "C on d2 (clean 55.0%, top class 70.0%)")


# --- claims_table -------------------------------------------------------------------------------------

CLAIMS = (
    Claim("rob", "A", "B", "robust", 50.0),      # ours 50.0 [~40, ~60]: same sign, consistent size
    Claim("rob_small", "A", "B", "robust", 10.0),  # paper outside the CI, same sign, ours larger
    Claim("clean", "A", "B", "clean", 5.0),      # both 100% clean: 0.0 [0.0, 0.0], sign undecided, smaller
    Claim("coll", "C", "B", "robust", -10.0),    # C is collapsed: a robustness claim on it is excluded
    Claim("coll_clean", "C", "B", "clean", -10.0),  # clean claims on C stay judged: -45 pp, larger than -10
)


def test_claims_table_one_row_per_claim_with_judge_verdicts(study, frame):
    table = rtables.claims_table(study, CLAIMS, "pgd", EPS, datasets=["d1"])
    assert list(table.index) == ["rob", "rob_small", "clean", "coll", "coll_clean"]
    assert list(table["ours"]) == pytest.approx([50.0, 50.0, 0.0, 30.0, -45.0])
    assert list(table["paper (pp)"]) == [50.0, 10.0, 5.0, -10.0, -10.0]
    assert list(table["verdict"]) == ["same sign, consistent with the paper's size", "same sign, larger than the paper's",
                                      "sign undecided (our CI holds 0), smaller than the paper's",
                                      "excluded: C collapsed (the collapse rule), so its robust accuracy is no evidence of "
                                      "robustness", "same sign, larger than the paper's"]
    for c in CLAIMS[:3] + CLAIMS[4:]:  # the verdict is judge's on the same paired difference
        assert table.loc[c.key, "verdict"] == rtables.judge(study.diff(c.a, c.b, "pgd", EPS, c.which, ["d1"]), c.paper_diff)
    assert table.loc["clean", "ours (pp)"] == "0.0 [0.0, 0.0]"
    assert table.loc["rob", "claim"] == "A - B, robust"
    assert list(rtables.show_claims(table).columns) == ["claim", "ours (pp)", "paper (pp)", "verdict"]
    assert rtables.overall(table) == ("of 5 paper differences checked here, 3 have the paper's sign, 0 the opposite sign "
                                      "and 1 an undecided sign (our CI holds 0); of the 4 not opposite, the paper's value lies "
                                      "inside our CI for 1, above our effect for 1 and below it for 2; 1 excluded (collapsed model)")


def test_claims_table_pools_datasets_and_takes_a_claims_own_attack(study, frame):
    # over both datasets A - B robust is (50 + 10) / 200 = 30.0 pp
    table = rtables.claims_table(study, CLAIMS[:1], "pgd", EPS)
    assert table.loc["rob", "ours"] == pytest.approx(30.0)
    assert table.loc["rob", "verdict"] == "same sign, smaller than the paper's"
    own = Claim("pgd_4", "A", "B", "robust", 30.0, attack="pgd", eps=float(EPS))
    table = rtables.claims_table(study, [own], "square", 99.0)  # the claim's own attack and eps win
    assert table.loc["pgd_4", "claim"] == "A - B, robust, pgd 4/255"
    assert table.loc["pgd_4", "verdict"] == "same sign, consistent with the paper's size"


def test_seed_claims_repeat_each_claim_per_training_seed(study, frame, monkeypatch):
    from types import SimpleNamespace

    study.zoo.update({m: SimpleNamespace(name=m.lower()) for m in ("A", "B", "C")})
    # seed 1 swaps A for a replica that is robust on far fewer images; B and C have no replica
    replica = {**RESULTS, ("A", "d1"): _result(ALL, i < 30), ("A", "d2"): _result(ALL, i < 30)}

    def reseeded(seed):
        other = Study("mini", study.datasets, N, 0, {**study.zoo, "A": SimpleNamespace(name=f"a-s{seed}")}, study.images,
                      dict(study.variants), {}, None, dict(study._classifiers))
        monkeypatch.setattr(other, "train_plus", lambda **kw: None)
        return other

    monkeypatch.setattr(study, "with_training_seed", reseeded)
    monkeypatch.setattr(evaluation, "evaluate", lambda model, images, attack, eps, *, label, **kw: replica[tuple(label.split("/"))])
    claims = (Claim("ab", "A", "B", "robust", 30.0), Claim("cb", "C", "B", "clean", -45.0))
    table = rtables.seed_claims(study, claims, "pgd", EPS, None, [1])
    assert list(table.columns[:3]) == ["claim", "seed 0", "seed 1"]
    assert table.loc["ab", "spread over seeds (pp)"] == pytest.approx(25.0, abs=0.1)  # A - B: 30 pp -> 5 pp
    assert table.loc["ab", "verdict across seeds"].startswith("differs: seed 0: same sign")
    assert table.loc["cb", "verdict across seeds"].startswith("one training run only")
    summary = rtables.seed_summary(table)
    assert summary["seed_n"] == "2" and summary["seed_same"] == "0 of 1" and summary["seed_tested"] == "A - B, robust"


def test_two_sample_bootstrap_resamples_each_side_on_its_own():
    a, b = np.r_[np.ones(50), np.zeros(50)] * 100, np.r_[np.ones(20), np.zeros(80)] * 100
    est = stats.bootstrap_two_sample(a, b)
    assert est.mean == pytest.approx(30.0) and est.low < 30 < est.high and est.low > 15 and est.n == 200
    with pytest.raises(ValueError):
        stats.bootstrap_two_sample(a, [])


def test_paper_values_of_the_per_dataset_claims_come_from_table1():
    from radapt_lib import reference
    from radapt_lib.rtables.verdicts import _paper_dataset_diff

    t = reference.TABLE1_AUTOATTACK
    assert _paper_dataset_diff("R-Adapt+", "FARE", "robust", True) == round(t["R-Adapt+"]["ImageNet"] - t["FARE"]["ImageNet"], 1)
    others = [d for d in reference.TABLE1_DATASETS if d != "ImageNet"]
    assert len(others) == 15
    assert _paper_dataset_diff("R-Adapt+", "CLIP", "robust", False) == round(
        sum(t["R-Adapt+"][d] - t["CLIP"][d] for d in others) / 15, 1)


def test_heldout_reading_compares_the_epoch_comparison_on_two_image_samples():
    from radapt_lib.rtables.verdicts import _heldout_reading

    def frame(lo, hi):
        row = {"clean": 50.0, "clean_lo": 45.0, "clean_hi": 55.0, "vs1": (lo + hi) / 2, "vs1_lo": lo, "vs1_hi": hi}
        return pd.DataFrame([{**row, "epoch": 0}, {**row, "epoch": 1}, {**row, "epoch": 5}])

    flat, falling = frame(-3.0, 3.0), frame(-6.0, -1.0)
    assert "do not fall" in _heldout_reading(flat, test_falls=True)["ts_heldout_reading"]
    assert "fall too" in _heldout_reading(falling, test_falls=True)["ts_heldout_reading"]
    assert "where the test images do not" in _heldout_reading(falling, test_falls=False)["ts_heldout_reading"]
    assert _heldout_reading(flat, test_falls=False)["ts_heldout_reading"] == "neither sample falls"
    assert _heldout_reading(flat, True)["ts_heldout_e_gain"].endswith("pp from epochs = 1 to 5")
