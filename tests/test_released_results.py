"""The released evaluation results (results/): they match their manifest, are reachable from the current code, a
corrupt one is a clear error, and a sample recomputed here gives the same per-image outcomes bit for bit."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from radapt_lib import cache, config, evaluation, released, transfer
from radapt_lib.analysis import cka
from radapt_lib.rtables import audit, d0rules
from radapt_lib.rtables.study import Study

MANIFEST = released.read_manifest()
ENTRIES = MANIFEST["results"]
FIRST_EVALUATION = next(n for n in sorted(ENTRIES) if n.startswith("evaluations/"))


def _record(name: str) -> dict:
    return torch.load(released.results_dir() / f"{name}.pt", map_location="cpu", weights_only=False)


def test_manifest_matches_the_released_files():
    files = {p.relative_to(released.results_dir()).with_suffix("").as_posix()
             for kind in released.RELEASED_KINDS for p in (released.results_dir() / kind).glob("*.pt")}
    assert ENTRIES, "no results are released: run scripts/book.sh --release-results"
    assert files == set(ENTRIES)
    for name, entry in ENTRIES.items():
        path = released.results_dir() / f"{name}.pt"
        assert released.file_sha256(path) == entry["sha256"], name
        assert cache.key_of(_record(name)["spec"]) == Path(name).name, f"{name} holds another spec"


def _lvlm_code() -> str:
    """The code fingerprint of the LVLM page's records, as `lvlm.protocol.lvlm_spec` computes it."""
    import torch

    from radapt_lib.lvlm import protocol
    from radapt_lib.lvlm.vattack import VAttackConfig

    vqa = protocol.VqaSet(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), ("dog",), ("cat",), "p", ("q",), "none", 1)
    return protocol.lvlm_spec({}, vqa, VAttackConfig())["code"]


def test_every_release_was_made_by_the_current_code_and_libraries():
    """A release made before an edit to the evaluation code is unreachable: CI would recompute it all, slowly."""
    current = {cache.code_fingerprint(*evaluation.EVALUATION_CODE),
               cache.code_fingerprint(*evaluation.EVALUATION_CODE, "analysis.shapley"),
               cache.code_fingerprint(*evaluation.EVALUATION_CODE, *audit.AUDIT_CODE),
               cache.code_fingerprint(*d0rules.CALIBRATION_CODE), cache.code_fingerprint(*cka.CKA_CODE),
               cache.code_fingerprint(*evaluation.EVALUATION_CODE, "retrieval"), _lvlm_code(),
               cache.code_fingerprint(*transfer.TRANSFER_CODE)}
    specs = {name: _record(name)["spec"] for name in ENTRIES}
    stale = [name for name, spec in specs.items()
             if spec["code"] not in current or spec["versions"] != cache.library_versions()]
    assert not stale, f"{len(stale)} released results are stale (e.g. {stale[0]}): run {released.RELEASE_COMMAND}"


@pytest.fixture
def results_copy(tmp_path, monkeypatch):
    shutil.copytree(released.results_dir(), tmp_path / "results")
    monkeypatch.delenv(released.RECOMPUTE_ENV, raising=False)  # these tests read the release, even in a recompute run
    monkeypatch.setattr(released, "results_dir", lambda: tmp_path / "results")
    return tmp_path / "results"


def test_a_released_result_is_read_and_logged(results_copy, tmp_cache, tmp_path, monkeypatch):
    name = FIRST_EVALUATION
    kind, key = name.split("/")
    spec = _record(name)["spec"]
    monkeypatch.setenv(released.ACCESS_LOG_ENV, str(tmp_path / "reads.log"))
    value = cache.cached(kind, spec, lambda: pytest.fail("a released result was recomputed"))
    assert value.n == ENTRIES[name]["n"]
    assert (tmp_path / "reads.log").read_text() == f"{name}\n"
    assert not tmp_cache.exists() or not any(tmp_cache.rglob("*.pt")), "a released hit must not be copied"


def test_recompute_skips_the_release(results_copy, tmp_cache, monkeypatch):
    name = FIRST_EVALUATION
    kind = name.split("/")[0]
    monkeypatch.setenv(released.RECOMPUTE_ENV, "1")
    assert cache.cached(kind, _record(name)["spec"], lambda: "fresh") == "fresh"


def test_a_corrupt_or_unlisted_release_is_a_clear_error(results_copy, tmp_cache):
    name = FIRST_EVALUATION
    kind, key = name.split("/")
    spec = _record(name)["spec"]
    path = results_copy / f"{name}.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(released.ReleasedResultError, match="sha256.*git checkout"):
        cache.cached(kind, spec, lambda: pytest.fail("recomputed"))
    manifest = json.loads((results_copy / "manifest.json").read_text())
    del manifest["results"][name]
    (results_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(released.ReleasedResultError, match="not in manifest.json"):
        cache.cached(kind, spec, lambda: pytest.fail("recomputed"))
    other = sorted(ENTRIES)[1]  # another record under this key, listed with its own sha256: a wrong spec
    shutil.copyfile(results_copy / f"{other}.pt", path)
    manifest["results"][name] = ENTRIES[other]
    (results_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(released.ReleasedResultError, match="holds another spec"):
        cache.cached(kind, spec, lambda: pytest.fail("recomputed"))


def test_release_writes_what_was_read(results_copy, tmp_path):
    reads = tmp_path / "reads.log"
    chosen = sorted(next(n for n in sorted(ENTRIES) if n.startswith(f"{kind}/")) for kind in released.RELEASED_KINDS)
    reads.write_text("".join(f"{n}\n" for n in chosen + chosen[:1]) + "datasets/0123456789abcdef\n")
    manifest = released.release(reads, cache_root=results_copy)
    assert sorted(manifest["results"]) == chosen
    assert sorted(p.relative_to(results_copy).with_suffix("").as_posix() for p in results_copy.glob("*/*.pt")) == chosen
    assert not results_copy.with_name("results.staging").exists()


def test_a_release_can_keep_another_machines_records(results_copy, tmp_path):
    """--keep-released: what this machine read is added, everything released before stays (other CPUs' keys)."""
    reads = tmp_path / "reads.log"
    first = sorted(ENTRIES)[:1]
    reads.write_text(f"{first[0]}\n")
    assert sorted(released.release(reads, cache_root=results_copy)["results"]) == first  # without keep: only what was read
    shutil.rmtree(results_copy)
    shutil.copytree(config.REPO_ROOT / "results", results_copy)  # results_dir() is the copy here
    reads.write_text("")
    manifest = released.release(reads, cache_root=results_copy, keep=True)
    assert sorted(manifest["results"]) == sorted(ENTRIES)
    assert len(list(results_copy.glob("*/*.pt"))) == len(ENTRIES)


# Table 1's FARE and R-Adapt+ on the animals under APGD-CE (20 iterations) and Table 3's CLIP under Square: recomputed
# here from nothing, they must give the released per-image outcomes. Fails when an attack, a model or the machine's
# arithmetic changed what the pages read.
SAMPLE = [("FARE", "apgd-ce", 20, None, 100), ("R-Adapt+", "apgd-ce", 20, None, 100), ("CLIP", "square", None, 200, 40)]


@pytest.fixture(scope="module")
def animals_study():
    config.setup(0)
    study = Study.create("mini", datasets=["animals"], n_samples=100, seed=0)
    study.train_plus(progress=False)
    return study


def _differing_fields(study: Study, method: str, attack: str, n_iter, n_queries, n: int) -> list[str]:
    """Recompute one page's evaluation from nothing; the per-image fields that differ from the released record."""
    before = len(cache.COMPUTED)
    study.subset(n).evaluate([method], attack, [4], n_iter=n_iter, n_queries=n_queries)
    computed = [key for kind, key in cache.COMPUTED[before:] if kind == "evaluations"]
    assert len(computed) == 1
    name = f"evaluations/{computed[0]}"
    assert name in ENTRIES, f"{method} {attack} is not among the released results: run {released.RELEASE_COMMAND}"
    fresh = cache.load_checked(config.cache_dir() / f"{name}.pt")["value"]
    kept = _record(name)["value"]
    return [f for f in ("labels", "clean_pred", "adv_pred") if not np.array_equal(getattr(fresh, f), getattr(kept, f))]


@pytest.mark.parametrize("method,attack,n_iter,n_queries,n", SAMPLE)
def test_released_results_reproduce_here(method, attack, n_iter, n_queries, n, animals_study, tmp_cache, monkeypatch):
    monkeypatch.setenv(released.RECOMPUTE_ENV, "1")
    assert _differing_fields(animals_study, method, attack, n_iter, n_queries, n) == []


def test_the_reproduction_check_sees_a_changed_attack_outside_the_key(animals_study, tmp_cache, monkeypatch):
    """pyautoattack's code is keyed by its version only: an edit at the same version leaves the key as it is, so
    only the recomputed outcomes can tell (here APGD cut to 2 iterations inside the library)."""
    from pyautoattack.autopgd_base import APGDAttack

    original = APGDAttack.perturb

    def shortened(self, *args, **kwargs):
        self.n_iter = 2
        return original(self, *args, **kwargs)

    monkeypatch.setattr(APGDAttack, "perturb", shortened)
    monkeypatch.setenv(released.RECOMPUTE_ENV, "1")
    assert _differing_fields(animals_study, *SAMPLE[0]) == ["adv_pred"]
