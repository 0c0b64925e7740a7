"""The claims ledger: verdict words -> categories, claims -> one word, and values read from executed pages."""
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from radapt_lib import claims, reference

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("verdict, expected", [
    ("supports", "for"), ("only partly supports", "partly"), ("partly supports", "partly"),
    ("contradicts", "against"), ("cannot decide", "undecided"), ("met", "for"), ("not met", "against"),
    ("opposite sign: contradicts the paper", "against"), ("same sign, larger than the paper's", "for"),
    ("sign undecided (our CI holds 0), smaller than the paper's", "undecided"),
    ("excluded: R-Adapt_CLIP collapsed (the collapse rule), so its robust accuracy is no evidence", "excluded"),
])
def test_every_verdict_word_the_pages_use_has_its_category(verdict, expected):
    assert claims.category(verdict) == expected


def test_an_unknown_verdict_word_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="CATEGORY_RULES"):
        claims.category("looks fine")
    with pytest.raises(ValueError):
        claims.category("the method is robust")  # "met" must match a word, not a prefix of "method"


@pytest.mark.parametrize("cats, expected", [
    (["for", "for"], "supported"), (["against", "excluded"], "contradicted"), (["undecided"], "undecided"),
    (["excluded"], "no usable evidence"), (["for", "against", "undecided"], "mixed (1 for, 1 against, 1 undecided)"),
    (["partly"], "partly supported"), (["timing", "against"], "contradicted"), (["timing"], "no usable evidence"),
])
def test_a_claims_word_counts_its_usable_evidence(cats, expected):
    assert claims.overall(cats) == expected


def _page(folder: Path, stem: str, values: dict) -> None:
    cell = new_code_cell("glue")
    cell.outputs = [new_output("display_data", data={claims.GLUE_MIME: repr(v)},
                               metadata={"scrapbook": {"name": k, "mime_prefix": "application/papermill.record/"}})
                    for k, v in values.items()]
    nbformat.write(new_notebook(cells=[cell]), folder / f"{stem}.ipynb")


TOY = (claims.PaperClaim("X1", "a toy claim", "Sec. 0", (
    claims.Evidence("90_toy", "robust gain", "v1", "{gain} pp", "{paper} pp"),
    claims.Evidence("91_toy", "clean cost", "v2", "{cost} pp"),
)),)


def test_the_ledger_reads_each_pages_glued_values(tmp_path):
    _page(tmp_path, "90_toy", {"v1": "opposite sign: contradicts the paper", "gain": "-3.0 [-5.0, -1.0]", "paper": 4.4})
    _page(tmp_path, "91_toy", {"v2": "cannot decide", "cost": "1.0 [-1.0, 3.0]"})
    table = claims.ledger(TOY, folder=tmp_path)
    assert list(table["ours"]) == ["-3.0 [-5.0, -1.0] pp", "1.0 [-1.0, 3.0] pp"]
    assert list(table["paper"]) == ["4.4 pp", "-"]
    assert list(table["category"]) == ["against", "undecided"]
    assert claims.summary(table, TOY)["verdict"].item() == "mixed (1 against, 1 undecided)"
    values = claims.verdict_values(claims.summary(table, TOY))
    assert values["cl_X1"].startswith("mixed") and values["cl_mixed"] == "1 (X1)" and values["cl_supported"] == "none"


def test_a_missing_glue_key_or_page_names_the_fix(tmp_path):
    _page(tmp_path, "90_toy", {"v1": "supports"})
    with pytest.raises(KeyError, match="90_toy glues no"):
        claims.ledger(TOY, folder=tmp_path)
    with pytest.raises(FileNotFoundError, match="scripts/book.sh"):
        claims.page_values("91_toy", tmp_path)
    with pytest.raises(FileNotFoundError, match="records="):
        claims.records_dir(tmp_path / "empty")


def test_every_claim_reads_from_the_books_record():
    """Every evidence row names a page of the book and glue keys that page has; every verdict has a category."""
    stems = {p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb")}
    assert {ev.page for c in claims.CLAIMS for ev in c.evidence} <= stems
    table = claims.ledger()
    assert len(table) == sum(len(c.evidence) for c in claims.CLAIMS)
    assert set(table["category"]) <= set(claims.CATEGORIES)


def test_the_protocol_notes_are_computed_from_the_reference_data(monkeypatch):
    notes = dict(claims.protocol_notes().values)
    assert notes["Table 1's 'AutoAttack'"].startswith(f"for 9 of {len(reference.METHODS)} methods")
    edited = {m: dict(v) for m, v in reference.TABLE2.items()}
    edited["FARE"][("APGD-CE", 4)] = 50.0
    monkeypatch.setattr(reference, "TABLE2", edited)
    notes = dict(claims.protocol_notes().values)
    assert notes["Table 1's 'AutoAttack'"].startswith("for 8 of 9 methods")
    assert "52.8 %" in notes["FARE baseline"] and "+20.4 pp" in notes["FARE baseline"]
