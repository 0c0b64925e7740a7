"""The grid runner (scripts/run_grid.py): a page's cells sharded over torch.distributed ranks into the cache.

Two gloo processes must give exactly one process's per-image outcomes; a run stopped part-way and
launched again must compute only the missing cells; the page's own evaluation call must then be a
cache hit for every cell.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from radapt_lib import config, grid, page, rtables

ROOT = Path(__file__).resolve().parent.parent
TABLE2 = ROOT / "notebooks" / "21_table2_attacks.ipynb"
SMALL = {"datasets": "animals", "n_samples": "8", "methods": "CLIP,R-Adapt_CLIP,R-Adapt+", "attacks": "pgd:2",
         "eps_list": "2,4"}


def fresh_cache(root: Path) -> Path:
    """An empty results cache that shares the decoded datasets (decoding CIFAR-10 again would only cost time)."""
    shared = config.cache_dir() / "datasets"
    shared.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True)
    (root / "datasets").symlink_to(shared, target_is_directory=True)
    return root


def launch(cache_dir: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    script = [str(ROOT / "scripts" / "run_grid.py")]
    if processes > 1:
        script = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *script]
    params = [arg for name, value in SMALL.items() for arg in ("-p", name, value)]
    env = {**os.environ, "RADAPT_CACHE": str(cache_dir)}
    return subprocess.run([sys.executable, *script, str(TABLE2), *params, *extra], env=env, capture_output=True,
                          text=True, timeout=900)


def rows_of(cache_dir: Path) -> list[dict]:
    files = sorted((cache_dir / "grids").glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())["rows"]


def outcomes(rows: list[dict]) -> list[tuple]:
    return [(r["cell"], r["method"], r["eps_255"], r["clean"], r["robust"], r["outcome"]) for r in rows]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> list[dict]:
    cache_dir = fresh_cache(tmp_path_factory.mktemp("grid") / "one")
    done = launch(cache_dir, 1)
    assert done.returncode == 0, done.stderr[-3000:]
    return rows_of(cache_dir)


def test_plan_is_the_pages_product():
    plan = grid.plan_for(TABLE2)
    assert len(plan.cells()) == 2 * 4 * 3 * 3  # datasets x methods x attacks x eps, as the page evaluates
    small = grid.plan_for(TABLE2, {k: page.literal_or_text(v) for k, v in SMALL.items()})
    assert [(c.method, c.eps_255) for c in small.cells()] == [(m, e) for m in ("CLIP", "R-Adapt_CLIP", "R-Adapt+")
                                                              for e in (2.0, 4.0)]
    table1 = grid.plan_for(ROOT / "notebooks" / "20_table1_main.ipynb", {"profile": "paper", "n_samples": 1000})
    assert table1.methods == tuple(rtables.METHODS) and table1.attacks == (("apgd-ce", 20),) and table1.n_samples == 1000


def test_plan_refuses_what_the_page_would():
    with pytest.raises(ValueError, match="not a grid page"):
        grid.plan_for(ROOT / "notebooks" / "10_cka.ipynb")
    with pytest.raises(page.ParameterError, match="unknown parameter"):
        grid.plan_for(TABLE2, {"n_sample": 5})
    with pytest.raises(page.ParameterError, match="unknown parameter"):  # Table 3's, not Table 2's
        grid.plan_for(TABLE2, {"n_queries": 5000})
    with pytest.raises(page.ParameterError, match="1/255"):
        grid.plan_for(TABLE2, {"eps_list": "0.0157"})


def test_two_gloo_processes_give_one_process_results(one_process, tmp_path):
    cache_dir = fresh_cache(tmp_path / "two")
    done = launch(cache_dir, 2)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = rows_of(cache_dir)
    assert {r["rank"] for r in rows} == {0, 1} and all(r["computed"] for r in rows)
    assert outcomes(rows) == outcomes(one_process)
    assert len(list((cache_dir / "evaluations").glob("*.pt"))) == len(rows)


def test_a_stopped_run_resumes_without_recomputing(one_process, tmp_path, monkeypatch):
    cache_dir = fresh_cache(tmp_path / "resumed")
    stopped = launch(cache_dir, 2, "--stop-after-cells", "1")
    assert stopped.returncode != 0 and not (cache_dir / "grids").exists()
    finished = {p.name: p.stat().st_mtime_ns for p in (cache_dir / "evaluations").glob("*.pt")}
    assert 1 <= len(finished) <= 2  # one cell per rank, unless a rank was stopped mid-cell when the other left
    done = launch(cache_dir, 2)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = rows_of(cache_dir)
    assert sum(not r["computed"] for r in rows) == len(finished)
    assert {p.name: p.stat().st_mtime_ns for p in (cache_dir / "evaluations").glob("*.pt") if p.name in finished} == finished
    assert outcomes(rows) == outcomes(one_process)

    # The page's own evaluation call now reads every cell from the cache.
    monkeypatch.setenv("RADAPT_CACHE", str(cache_dir))
    before = set((cache_dir / "evaluations").glob("*.pt"))
    p = page.setup("radapt", profile="mini", seed=0, **{k: page.literal_or_text(v) for k, v in SMALL.items()})
    study = rtables.Study.create(p.profile, p.datasets, p.n_samples, p.seed)
    study.train_plus(progress=False)
    frame = study.evaluate_many(p.methods, p.attacks, p.eps_list_255)
    assert set((cache_dir / "evaluations").glob("*.pt")) == before
    assert [round(v, 2) for v in frame["robust"]] == [r["robust"] for r in rows]
