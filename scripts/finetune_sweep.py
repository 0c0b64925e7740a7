"""Robustness vs fine-tuning length: retrain a mini fine-tune with more steps and measure it as it trains.

    .venv/bin/python scripts/finetune_sweep.py mini-fare --steps 1000 --every 200 [--pgd-steps 5] [--lr 1e-3] [--train-eps 8] [--release]

Starts from the released mini-clip with the zoo's fine-tuning config, `steps` (and optionally the inner
attack's steps and the learning rate) replaced (the cosine schedule spans the whole run, so only the last
point is a finished run of that length). Every `every` steps it measures, on fixed seeded test images of
the source split (animals), clean and PGD-10 robust accuracy (l-inf 4/255) with 95% bootstrap CIs, and keeps
the per-image outcomes so that a reader can recompute every interval.
Writes data_cache/sweeps/<name>-<steps>-pgd<k>-lr<lr>-eps<e>.json and prints the curve. With --release it
writes the same record to zoo/sweeps/ instead, where the zoo page reads its step curves
(`step_curves.read_records`). The finished run's vision tower is saved to data_cache/sweeps/ (never released here).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from dataclasses import asdict, replace

import torch

from radapt_lib import config, data, evaluation, step_curves, training, zoo

MEASUREMENT = {"dataset": data.FINETUNE_SOURCE, "split": "test", "attack": "pgd", "n_iter": 10, "eps_255": 4, "seed": 0}


def measure(n: int, seed: int):
    source = data.mini_dataset(MEASUREMENT["dataset"], MEASUREMENT["split"], n=n, seed=seed)

    def on_checkpoint(clf) -> dict:
        res = evaluation.evaluate(clf, source, MEASUREMENT["attack"], MEASUREMENT["eps_255"] / 255,
                                  n_iter=MEASUREMENT["n_iter"], seed=seed, label="checkpoint")
        clean, robust = res.clean(), res.robust()
        return {"clean": clean.fmt(1), "robust_pgd10": robust.fmt(1), "robust": robust.mean, "clean_acc": clean.mean,
                "clean_correct": step_curves.bits(res.correct("clean")),
                "robust_correct": step_curves.bits(res.correct("robust"))}

    return on_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=[n for n in zoo.ORDER if n != "mini-clip"])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--n", type=int, default=500, help="test images per measurement")
    parser.add_argument("--pgd-steps", type=int, default=None, help="inner attack steps (default: the zoo's)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the zoo's)")
    parser.add_argument("--train-eps", type=float, default=None,
                        help="training l-inf budget in 1/255 (default: the zoo's 4); measured at 4/255 regardless")
    parser.add_argument("--release", action="store_true", help="write the record to zoo/sweeps/ (read by the zoo page)")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()  # the code that runs
    config.setup(0)
    train_eps = None if args.train_eps is None else config.check_eps_255(args.train_eps, "--train-eps") / 255
    overrides = {k: v for k, v in (("pgd_steps", args.pgd_steps), ("lr", args.lr), ("eps", train_eps)) if v is not None}
    cfg = replace(training.MINI_FINETUNES[args.name], steps=args.steps, eval_every=args.every, **overrides)
    state, log = training.finetune(zoo.load_state("mini-clip"), training.MiniClipConfig(), cfg, args.name,
                                   on_checkpoint=measure(args.n, seed=0))
    folder = step_curves.sweeps_dir() if args.release else config.cache_dir() / "sweeps"
    out = folder / f"{args.name}-{args.steps}-pgd{cfg.pgd_steps}-lr{cfg.lr:g}-eps{cfg.eps * 255:g}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"model": args.name, "config": asdict(cfg), "released_config": asdict(training.MINI_FINETUNES[args.name]),
              "parent_sha256": zoo.entry("mini-clip")["sha256"], "n": args.n, "measurement": MEASUREMENT,
              "checkpoints": log.checkpoints, "seconds": log.seconds, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "cpu": zoo.cpu_name(), "date": time.strftime("%Y-%m-%d"),
              "commit": commit}
    # The finished run's vision tower stays in data_cache/ (a candidate for a later release, e.g. a longer-trained
    # point for the trend with scale); the record names its sha256 so that a release can be checked against it.
    weights = config.cache_dir() / "sweeps" / f"{out.stem}.safetensors"
    record["final_weights"] = {"file": str(weights.relative_to(config.cache_dir())), "sha256": zoo.save_weights(state, weights)}
    out.write_text(json.dumps(record, indent=1))
    for c in log.checkpoints:
        print(f"step {c['step']:5d}  loss {c['loss']:8.3f}  clean {c['clean']}  PGD-10 robust {c['robust_pgd10']}  "
              f"probe {c['probe_acc']:.1f}  {c['seconds'] / 60:.1f} min")
    print(f"{args.name}: {log.seconds / 60:.1f} min of training -> {out}")


if __name__ == "__main__":
    main()
