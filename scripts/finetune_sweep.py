"""Robustness vs fine-tuning length: retrain a mini fine-tune with more steps and measure it as it trains.

    .venv/bin/python scripts/finetune_sweep.py mini-fare --steps 1000 --every 200 [--pgd-steps 5] [--lr 1e-3] [--train-eps 8]

Starts from the released mini-clip with the zoo's fine-tuning config, `steps` (and optionally the inner
attack's steps and the learning rate) replaced (the cosine schedule spans the whole run, so only the last
point is a finished run of that length). Every `every` steps it measures, on fixed seeded test images of
the source split (animals), clean and PGD-10 robust accuracy (l-inf 4/255) with 95% bootstrap CIs.
Writes data_cache/sweeps/<name>-<steps>-pgd<k>-lr<lr>-eps<e>.json and prints the curve. Nothing is released.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace

from radapt_lib import config, data, evaluation, training, zoo


def measure(n: int, seed: int):
    source = data.mini_dataset(data.FINETUNE_SOURCE, "test", n=n, seed=seed)

    def on_checkpoint(clf) -> dict:
        res = evaluation.evaluate(clf, source, "pgd", 4 / 255, n_iter=10, seed=seed, label="checkpoint")
        clean, robust = res.clean(), res.robust()
        return {"clean": clean.fmt(1), "robust_pgd10": robust.fmt(1), "robust": robust.mean, "clean_acc": clean.mean}

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
    args = parser.parse_args()
    config.setup(0)
    train_eps = None if args.train_eps is None else config.check_eps_255(args.train_eps, "--train-eps") / 255
    overrides = {k: v for k, v in (("pgd_steps", args.pgd_steps), ("lr", args.lr), ("eps", train_eps)) if v is not None}
    cfg = replace(training.MINI_FINETUNES[args.name], steps=args.steps, eval_every=args.every, **overrides)
    state, log = training.finetune(zoo.load_state("mini-clip"), training.MiniClipConfig(), cfg, args.name,
                                   on_checkpoint=measure(args.n, seed=0))
    out = config.cache_dir() / "sweeps" / f"{args.name}-{args.steps}-pgd{cfg.pgd_steps}-lr{cfg.lr:g}-eps{cfg.eps * 255:g}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": asdict(cfg), "n": args.n, "checkpoints": log.checkpoints,
                               "seconds": log.seconds}, indent=1))
    for c in log.checkpoints:
        print(f"step {c['step']:5d}  loss {c['loss']:8.3f}  clean {c['clean']}  PGD-10 robust {c['robust_pgd10']}  "
              f"probe {c['probe_acc']:.1f}  {c['seconds'] / 60:.1f} min")
    print(f"{args.name}: {log.seconds / 60:.1f} min of training -> {out}")


if __name__ == "__main__":
    main()
