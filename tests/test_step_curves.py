"""The fine-tunes' step sweeps (zoo/sweeps/): records of the released recipe, intervals recomputed from outcomes."""
import json
from dataclasses import asdict

import numpy as np
import pytest

from radapt_lib import stats, step_curves, training, zoo


def record(model: str, robust_rates: list[float], clean_rate: float = 0.5, n: int = 400) -> dict:
    rng = np.random.default_rng(0)
    clean, u = rng.random(n) < clean_rate, rng.random(n)  # the same images at every step: a flat curve is flat
    points = []
    for i, rate in enumerate(robust_rates):
        points.append({"step": 200 * (i + 1), "images": 12800 * (i + 1), "clean_correct": step_curves.bits(clean),
                       "robust_correct": step_curves.bits(clean & (u < rate / clean_rate))})
    return {"model": model, "n": n, "config": {"steps": 200 * len(robust_rates)}, "checkpoints": points}


def test_bits_round_trip_and_refuse_other_characters():
    x = np.array([True, False, True, True])
    assert step_curves.bits(x) == "1011"
    assert (step_curves.unbits("1011") == x).all()
    with pytest.raises(ValueError, match="0s and 1s"):
        step_curves.unbits("10x1")


def test_curve_intervals_are_recomputed_from_the_outcomes():
    rec = record("mini-fare", [0.1, 0.2])
    frame = step_curves.curve_frame([rec])
    expected = stats.accuracy(step_curves.unbits(rec["checkpoints"][1]["robust_correct"]))
    row = frame[frame.step == 400].iloc[0]
    assert (row["robust (%)"], row["robust low"], row["robust high"]) == (expected.mean, expected.low, expected.high)


def test_verdicts_tell_a_rising_curve_from_a_flat_one():
    frame = step_curves.verdicts([record("mini-fare", [0.05, 0.15, 0.35]), record("mini-tecoa", [0.2, 0.2, 0.2])])
    assert frame.loc["mini-fare", "still rising at the end"] == "yes"
    assert frame.loc["mini-fare", f"robust >= {step_curves.ROBUST_TARGET:g} %"] == "meets"
    assert frame.loc["mini-tecoa", "still rising at the end"] == "no"
    assert frame.loc["mini-tecoa", f"robust >= {step_curves.ROBUST_TARGET:g} %"] in ("misses", "undecided")
    text = step_curves.conclusion(frame)
    assert text.startswith("mini-fare still gains") and "1 of 2 reaches" in text
    assert step_curves.conclusion(frame.loc[["mini-tecoa"]]).startswith("none of the fine-tunes still gains")


def test_a_corrupt_record_is_a_clear_error(tmp_path):
    bad = record("mini-fare", [0.1])
    bad["checkpoints"][0]["robust_correct"] = bad["checkpoints"][0]["robust_correct"][:-1]
    (tmp_path / "mini-fare.json").write_text(json.dumps(bad))
    with pytest.raises(zoo.ZooError, match="finetune_sweep.py"):
        step_curves.read_records(tmp_path)


def test_released_sweeps_are_of_the_released_recipes():
    """Each record retrains a released fine-tune's recipe from the released mini-clip, only longer: a re-release of
    the zoo (new parent or recipe) without new sweeps fails here."""
    records = step_curves.read_records()
    assert records and all(r["model"] in training.MINI_FINETUNES for r in records)
    clip_sha = zoo.entry("mini-clip")["sha256"]
    for rec in records:
        released = asdict(training.MINI_FINETUNES[rec["model"]])
        assert rec["released_config"] == released, rec["file"]
        differ = {k for k in released if rec["config"][k] != released[k]}
        assert differ <= {"steps", "eval_every"}, (rec["file"], differ)
        assert rec["parent_sha256"] == clip_sha, rec["file"]
        assert [p["step"] for p in rec["checkpoints"]][-1] == rec["config"]["steps"]
