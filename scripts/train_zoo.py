"""Retrain the mini zoo from scratch and rewrite zoo/ and its manifest (see scripts/train_zoo.sh)."""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from radapt_lib import anchor_zoo, config, plus, zoo


def release(name: str, models: dict) -> dict:
    """Train one model, write its weights, and return its summary row; `models` gets its new entry."""
    old = models.get(name, {})
    state, log = zoo.train(name)
    record = zoo.record_of(name, state, log, f"{name}.safetensors")
    record["sha256"] = zoo.save_weights(zoo.release_state(name, state), zoo.zoo_dir() / record["file"])
    if name in zoo.PREFIX_STEPS:
        steps = zoo.PREFIX_STEPS[name]
        record["prefix"] = zoo.prefix_record(name, steps)
        # The prefix run must be the full run's first steps, loss for loss.
        zoo.compare_prefix({**record["prefix"], "sha256": None, "losses": log.losses[:steps]}, record["prefix"])
    models[name] = record
    zoo.write_manifest(models)
    same = "new" if not old else ("bit-identical" if old.get("sha256") == record["sha256"] else "changed")
    return {"model": name, "minutes": record["minutes"], "images/s": record["images_per_s"],
            "parameters": record["parameters"], "final": record["final"], "vs released": same}


def check() -> int:
    manifest = zoo.read_manifest()["models"]
    for name, steps in zoo.PREFIX_STEPS.items():
        verdict = zoo.compare_prefix(manifest[name]["prefix"], zoo.prefix_record(name, steps))
        print(f"{name}: first {steps} steps {verdict}")
    return 0


def release_anchors(from_cache: bool, keep: bool, models: list[str]) -> int:
    """Re-release every released R-Adapt+ anchor (and, from_cache, every anchor the local cache trained; and the
    default anchor of each of `models`)."""
    from radapt_lib.rtables import PLUS_DEFAULT

    released = [(r["origin"], plus.AnchorTrainConfig(**r["config"])) for r in anchor_zoo.anchor_records().values()]
    found = released + (anchor_zoo.cached_origins() if from_cache else [])
    found += [(anchor_zoo.mini_origin(zoo.check_name(m)), PLUS_DEFAULT["mini"]) for m in models]
    pairs = {anchor_zoo.identity(o, c): (o, c) for o, c in found}
    if not pairs:
        print("no anchors to release: build the book first, then run with --from-cache")
        return 1
    rows = anchor_zoo.release_anchors(list(pairs.values()), keep_current=keep)
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"models to retrain (default: all of {zoo.ORDER})")
    parser.add_argument("--check", action="store_true", help="only retrain the prefixes and compare with the manifest")
    parser.add_argument("--anchors", action="store_true", help="re-release the R-Adapt+ anchors (not the models)")
    parser.add_argument("--from-cache", action="store_true",
                        help="with --anchors: also release every anchor that the local cache trained (e.g. after a book build)")
    parser.add_argument("--maa", action="store_true",
                        help="retrain the MAA adapters (names: the variants, default all) and re-release them")
    parser.add_argument("--keep", action="store_true",
                        help="with --anchors: keep every anchor released under its current key; train only new or stale ones")
    args = parser.parse_args(argv)
    config.setup(0)
    if args.check:
        return check()
    if args.maa:
        from radapt_lib import maa_release

        print(pd.DataFrame(maa_release.release(args.names or None)).to_string(index=False))
        return 0
    if args.anchors:  # names given with --anchors: release the default anchor on each of those CLIPs
        return release_anchors(args.from_cache, args.keep, args.names)
    names = [zoo.check_name(n) for n in args.names] or list(zoo.ORDER)
    try:
        models = dict(zoo.read_manifest().get("models", {}))
    except zoo.ZooError:
        models = {}
    zoo.zoo_dir().mkdir(parents=True, exist_ok=True)
    rows = [release(name, models) for name in names]
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
