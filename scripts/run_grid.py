"""Compute a Tables 1-3 page's evaluation grid ahead of the page, over as many processes as torchrun starts.

    torchrun --standalone --nproc_per_node=8 scripts/run_grid.py notebooks/20_table1_main.ipynb \
        -p profile paper -p attack autoattack -p n_iter 100 -p n_samples 1000

Each rank evaluates its share of the page's cells (method x dataset x attack x eps) into the
content-addressed cache (RADAPT_CACHE, default data_cache/); rank 0 gathers one row per cell, prints
the table and writes it to data_cache/grids/. Launched again after a crash, it computes only the cells
that are missing. Then execute the page with the same -p values: it reads every cell from the cache.
Without torchrun it runs as one process.
"""
from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from radapt_lib import config, grid, page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", help=f"one of notebooks/{{{','.join(grid.GRID_PAGES)}}}.ipynb")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a page parameter, as papermill's -p (e.g. -p n_samples 1000)")
    parser.add_argument("--stop-after-cells", type=int, default=None,
                        help="each rank leaves after computing this many cells (simulates a crash; for tests)")
    args = parser.parse_args(argv)
    plan = grid.plan_for(args.notebook, {name: page.literal_or_text(value) for name, value in args.p})
    rank, world = grid.init_distributed()
    study = grid.prepare(plan, rank, world)
    grid.share_cores()
    rows = grid.run_shard(study, plan, rank, world, args.stop_after_cells)
    gathered = grid.gather(rows, rank, world)
    if rank == 0:
        out = config.cache_dir() / "grids" / f"{plan.page}-{plan.key()}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".part")
        tmp.write_text(json.dumps({"plan": repr(plan), "world": world, "rows": gathered}, indent=1))
        tmp.replace(out)
        with pd.option_context("display.width", 200, "display.max_rows", None):
            print(pd.DataFrame(gathered).drop(columns=["outcome"]).to_string(index=False))
        print(f"[grid] {len(gathered)} cells, {sum(r['computed'] for r in gathered)} computed now, "
              f"{world} process(es) -> {out}")
    grid.finish(world)
    return 0


if __name__ == "__main__":
    sys.exit(main())
