"""A table page's evaluation grid, sharded over torch.distributed ranks (torchrun), written into the cache.

The Tables 1-3 pages evaluate a product: methods x attacks x eps on their Study's datasets. `Plan`
reads that product from the page's own parameters (its notebook's `parameters` cell, overridden as
papermill's `-p` would), and `run_shard` evaluates this rank's share of the cells through
`Study.evaluate`, so every result lands under the very cache key the page reads: building the page
afterwards is a cache hit. Each cell is written atomically when it finishes, so a run killed part-way and
launched again computes only the cells that are missing. `gather` collects the per-cell rows on rank 0.
"""
from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from . import cache, evaluation, page
from .rtables import METHODS, Study

# The pages whose evaluations are one methods x attacks x eps product (their other cells read these results).
GRID_PAGES = ("20_table1_main", "21_table2_attacks", "22_table3_attacks")


@dataclass(frozen=True)
class Cell:
    """One evaluation: a Table row (method) on one dataset under one attack at one eps (1/255)."""

    method: str
    dataset: str
    attack: str
    n_iter: int | None
    eps_255: float


@dataclass(frozen=True)
class Plan:
    """A page's evaluation grid, from its validated parameters."""

    page: str
    profile: str
    datasets: tuple[str, ...]
    n_samples: int
    seed: int
    methods: tuple[str, ...]
    attacks: tuple[tuple[str, int], ...]  # (attack, iterations; 0 = the attack's default)
    eps_list: tuple[float, ...]
    n_queries: int | None

    def cells(self) -> list[Cell]:
        """Every cell, in the page's order (datasets, then methods, then attacks, then eps)."""
        return [Cell(m, d, a, it or None, float(e)) for d in self.datasets for m in self.methods
                for a, it in self.attacks for e in self.eps_list]

    def key(self) -> str:
        return cache.key_of({"plan": repr(self)})


def notebook_parameters(notebook: Path) -> dict[str, Any]:
    """The literal values assigned in a notebook's cell tagged `parameters` (the page's defaults)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise ValueError(f"{notebook} has no cell tagged 'parameters'")
    values = {}
    for node in ast.parse("".join(tagged[0]["source"])).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def plan_for(notebook: Path, overrides: dict[str, Any] | None = None) -> Plan:
    """The grid of a Tables 1-3 page for its parameters with `overrides`, validated as the page validates them."""
    name = Path(notebook).stem
    if name not in GRID_PAGES:
        raise ValueError(f"{name!r} is not a grid page: use one of {GRID_PAGES} (the other pages run as notebooks)")
    defaults = notebook_parameters(notebook)
    unknown = sorted(set(overrides or {}) - set(defaults))  # a parameter the page lacks would change the cells' keys
    if unknown:
        raise page.ParameterError(f"unknown parameter(s) {unknown} for {name}: use some of {sorted(defaults)}")
    params = {**defaults, **(overrides or {})}
    p = page.setup("radapt", **params)
    attacks = p.attacks if p.attacks is not None else {p.attack: p.n_iter}
    eps_list = p.eps_list_255 if p.eps_list_255 is not None else [p.eps_255]
    return Plan(name, p.profile, tuple(p.datasets), p.n_samples, p.seed, tuple(p.methods or METHODS),
                tuple(attacks.items()), tuple(float(e) for e in eps_list), p.n_queries)


def init_distributed() -> tuple[int, int]:
    """Join torchrun's process group (env:// rendezvous; NCCL on GPUs, else gloo). Without torchrun: rank 0 of 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def finish(world: int) -> None:
    if world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def share_cores() -> None:
    """On the CPU, split the cores between the ranks of this machine (the results do not depend on the thread count)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if not torch.cuda.is_available() and local > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))


def outcome_hash(result) -> str:
    """Fingerprint of a result's per-image clean and attacked predictions: equal hashes, equal outcomes."""
    return evaluation.fingerprint(torch.from_numpy(np.stack([result.clean_pred, result.adv_pred])))


def run_shard(study: Study, plan: Plan, rank: int = 0, world: int = 1, stop_after: int | None = None) -> list[dict]:
    """Evaluate cells rank, rank + world, ... of the plan; one row per cell, `computed` False on a cache hit.

    stop_after: leave after computing this many cells (what a killed rank leaves behind; for tests).
    """
    rows, computed = [], 0
    for index, cell in list(enumerate(plan.cells()))[rank::world]:
        if stop_after is not None and computed >= stop_after:
            raise SystemExit(f"rank {rank}: stopped after {computed} computed cell(s), as asked")
        before = len(cache.COMPUTED)
        study.evaluate([cell.method], cell.attack, [cell.eps_255], [cell.dataset], n_iter=cell.n_iter,
                       n_queries=plan.n_queries)
        res = study.results[(cell.method, cell.dataset, cell.attack, cell.eps_255)]
        new = any(kind == "evaluations" for kind, _ in cache.COMPUTED[before:])
        computed += new
        rows.append({"cell": index, **cell.__dict__, "n": res.n, "clean": round(res.clean().mean, 2),
                     "robust": round(res.robust().mean, 2), "seconds": round(res.seconds, 1), "computed": new,
                     "rank": rank, "outcome": outcome_hash(res)})
    return rows


def gather(rows: list[dict], rank: int, world: int) -> list[dict] | None:
    """Every rank's rows on rank 0, in cell order (None on the other ranks)."""
    if world == 1:
        return sorted(rows, key=lambda r: r["cell"])
    collected = [None] * world if rank == 0 else None
    dist.gather_object(rows, collected, dst=0)
    return sorted((r for part in collected for r in part), key=lambda r: r["cell"]) if rank == 0 else None


def prepare(plan: Plan, rank: int, world: int) -> Study:
    """The page's Study, with the R-Adapt+ anchor trained once (rank 0 first; the others then read the cache)."""
    study = None
    for turn in ((0,), tuple(range(1, world))):
        if rank in turn:
            study = Study.create(plan.profile, plan.datasets, plan.n_samples, plan.seed)
            if "R-Adapt+" in plan.methods:
                study.train_plus(progress=rank == 0)
        if world > 1:
            dist.barrier()
    return study
