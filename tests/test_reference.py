"""Checks on radapt_lib.reference: the R-Adapt paper's reported numbers (never ours)."""
import math

import pandas as pd
import pytest

from radapt_lib import reference as ref

EXPECTED_DATASETS = (
    "ImageNet", "CIFAR10", "CIFAR100", "STL10", "Caltech101", "Caltech256", "OxfordPets", "Flowers102",
    "Food101", "StanfordCars", "SUN397", "Country211", "FGVCA", "EuroSAT", "DTD", "PCAM",
)
EXPECTED_METHODS = (
    "CLIP", "R-Adapt_CLIP", "TeCoA", "R-Adapt_TeCoA", "TGA", "R-Adapt_TGA", "FARE", "R-Adapt_FARE", "R-Adapt+",
)
TABLE1 = {"clean": ref.TABLE1_CLEAN, "autoattack": ref.TABLE1_AUTOATTACK}


def test_table1_datasets_and_methods():
    assert ref.TABLE1_DATASETS == EXPECTED_DATASETS
    assert len(set(ref.TABLE1_DATASETS)) == 16
    for table in TABLE1.values():
        assert tuple(table) == EXPECTED_METHODS


@pytest.mark.parametrize("which", sorted(TABLE1))
def test_table1_rows_have_16_datasets_plus_avg(which):
    for method, row in TABLE1[which].items():
        assert list(row) == list(EXPECTED_DATASETS) + ["Avg"], method
        assert all(isinstance(v, float) and 0.0 <= v <= 100.0 for v in row.values()), method


# Every row of the paper's Table 1 passes this (largest gap 0.05, for CLIP clean
# and TGA AutoAttack), so no row is exempted.
@pytest.mark.parametrize("which", sorted(TABLE1))
@pytest.mark.parametrize("method", EXPECTED_METHODS)
def test_table1_avg_matches_mean_of_16(which, method):
    row = TABLE1[which][method]
    mean = sum(row[d] for d in EXPECTED_DATASETS) / 16
    assert abs(mean - row["Avg"]) <= 0.15, (which, method, mean, row["Avg"])


def test_table1_spot_values():
    assert ref.TABLE1_CLEAN["CLIP"]["ImageNet"] == 69.7
    assert ref.TABLE1_CLEAN["R-Adapt+"]["PCAM"] == 52.4
    assert ref.TABLE1_AUTOATTACK["R-Adapt+"]["Avg"] == 57.2
    assert ref.TABLE1_AUTOATTACK["TeCoA"]["FGVCA"] == 15.2
    assert all(v == 0.0 for v in ref.TABLE1_AUTOATTACK["CLIP"].values())


def test_table2_shape_and_consistency_with_table1():
    keys = ["clean"] + [(a, e) for a in ("PGD", "CW", "APGD-CE") for e in (1, 2, 4)]
    assert tuple(ref.TABLE2) == EXPECTED_METHODS
    for method, row in ref.TABLE2.items():
        assert list(row) == keys, method
        # The paper's Table 2 repeats Table 1's averages.
        assert row["clean"] == ref.TABLE1_CLEAN[method]["Avg"], method
        assert row[("APGD-CE", 4)] == ref.TABLE1_AUTOATTACK[method]["Avg"], method


def test_fig1_gains_are_table2_differences():
    plus, fare = ref.TABLE2["R-Adapt+"], ref.TABLE2["FARE"]
    assert round(plus["clean"] - fare["clean"], 1) == ref.FIG1_GAINS["clean"]
    assert round(plus[("APGD-CE", 4)] - fare[("APGD-CE", 4)], 1) == ref.FIG1_GAINS["robust"]


def test_table3_and_table4_structure():
    assert set(ref.TABLE3) == {"CLIP", "FARE", "R-Adapt+"}
    for method, row in ref.TABLE3.items():
        assert set(row) == {"clean"} | {(a, e) for a in ("APGD-DLR", "FAB", "Square") for e in (2, 4)}
        assert row["clean"] == ref.TABLE1_CLEAN[method]["Avg"]
    # The text: R-Adapt+ beats FARE by 10.4 and 8.8 under Square.
    assert round(ref.TABLE3["R-Adapt+"][("Square", 2)] - ref.TABLE3["FARE"][("Square", 2)], 1) == 10.4
    assert round(ref.TABLE3["R-Adapt+"][("Square", 4)] - ref.TABLE3["FARE"][("Square", 4)], 1) == 8.8
    for row in ref.TABLE4.values():
        assert set(row) == {(s, r) for s in ("clean", 2, 4) for r in ("R@1", "R@10")}
    assert ref.TABLE4["R-Adapt+"][(2, "R@1")] == 79.7


def test_lvlm_tables():
    for table in (ref.TABLE5, ref.TABLE11):
        assert set(table) == {"No Defense", "R-Adapt+"}
        assert set(table["R-Adapt+"]) == {4, 8, 16}
        for settings in table.values():
            for tasks in settings.values():
                assert set(tasks) == {"CAP", "VQA"}
                assert all(set(v) == {"clean", "rob"} for v in tasks.values())
    assert ref.TABLE5["R-Adapt+"][16]["CAP"]["rob"] == 85.3
    assert ref.TABLE11["R-Adapt+"][4]["VQA"]["rob"] == 73.8
    assert ref.TABLE11["No Defense"][None]["CAP"]["rob"] == 28.7


def test_table6_rows_follow_the_text():
    rows = {(r["gif"], r["fra"]): r for r in ref.TABLE6}
    assert len(ref.TABLE6) == 4 and len(rows) == 4
    # The text: GIF alone gives 57.5 and FRA alone 44.2 robust accuracy on Caltech256.
    assert rows[(True, False)]["Caltech256"]["rob"] == 57.5
    assert rows[(False, True)]["Caltech256"]["rob"] == 44.2
    assert rows[(True, True)]["Caltech256"]["rob"] == 82.5
    for dataset in ref.TABLE6_DATASETS:
        vanilla = rows[(False, False)][dataset]
        assert vanilla["rob"] == 0.0
        assert vanilla["clean"] == ref.TABLE1_CLEAN["CLIP"][dataset]
        # Both components together are the most robust in every dataset.
        assert rows[(True, True)][dataset]["rob"] == max(r[dataset]["rob"] for r in ref.TABLE6)


def test_tables_7_and_8():
    assert list(ref.TABLE7) == [500, 1000, 2000, 3000, 5000, 10000]
    assert list(ref.TABLE8) == [3, 5, 8, 10, 15, 20]
    # The default (2000 images, 10 iterations) column is the same in both tables.
    assert ref.TABLE7[2000] == ref.TABLE8[10]
    # The text: 2,000 -> 10,000 images gives only +0.8 on Caltech256.
    assert round(ref.TABLE7[10000]["Caltech256"] - ref.TABLE7[2000]["Caltech256"], 1) == 0.8


def test_table9():
    assert ref.TABLE9["R-Adapt_CLIP"]["alpha"] == 1.2
    assert ref.TABLE9["R-Adapt_CLIP"]["beta"] == -0.8
    assert ref.TABLE9["R-Adapt+"]["alpha"] == 0.8
    assert ref.TABLE9["R-Adapt+"]["beta"] == 0.2
    assert ref.TABLE9["R-Adapt_TGA"]["d0"] == 30
    for variant in ("R-Adapt_CLIP", "R-Adapt_TeCoA", "R-Adapt_FARE", "R-Adapt+"):
        assert ref.TABLE9[variant]["d0"] == 40
    for variant in ("R-Adapt_TeCoA", "R-Adapt_TGA", "R-Adapt_FARE"):
        assert ref.TABLE9[variant] == {"alpha": 1.2, "beta": 0.0, "d0": ref.TABLE9[variant]["d0"]}
    # R-Adapt+ follows Fig. 7's rule beta = max(1 - alpha, 0).
    assert math.isclose(ref.TABLE9["R-Adapt+"]["beta"], max(1 - ref.TABLE9["R-Adapt+"]["alpha"], 0.0))


def test_quoted_figure_values():
    assert ref.FIG2B_PROGRESSIVE_FARE_CALTECH256 == {"none": 0.0, "Emb": 55.0, "B1-Attn": 80.7}
    assert ref.FIG10_INPUT_INSENSITIVITY["random_pairs"]["FARE"] == 0.985
    assert ref.FIG10_INPUT_INSENSITIVITY["white"]["TeCoA"] == 0.898
    assert ref.FIG10_INPUT_INSENSITIVITY["cross_TeCoA_FARE_range"] == (0.74, 0.81)
    assert ref.SEC32_WHITE_SIMILARITY["n_images"] == 500
    budget = ref.R_ADAPT_PLUS_BUDGET
    assert budget["aft_images"] / budget["images"] == budget["ratio"] == 640
    assert math.isclose(budget["eps"], 4 / 255)


def test_table1_frame():
    for which, table in TABLE1.items():
        frame = ref.table1_frame(which)
        assert isinstance(frame, pd.DataFrame)
        assert list(frame.index) == list(EXPECTED_METHODS)
        assert list(frame.columns) == list(EXPECTED_DATASETS) + ["Avg"]
        assert frame.loc["R-Adapt_FARE", "EuroSAT"] == table["R-Adapt_FARE"]["EuroSAT"]


@pytest.mark.parametrize("bad", ["bogus", "Clean", "robust", ""])
def test_table1_frame_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="autoattack"):
        ref.table1_frame(bad)


def test_table2_frame():
    frame = ref.table2_frame()
    assert frame.shape == (9, 10)
    assert list(frame.index) == list(EXPECTED_METHODS)
    assert frame.loc["R-Adapt+", ("APGD-CE", 1)] == 63.1
    assert frame.loc["CLIP", ("clean", 0)] == 69.8
