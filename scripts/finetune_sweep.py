"""Robustness vs fine-tuning length: retrain a mini fine-tune with more steps and measure it as it trains.

    .venv/bin/python scripts/finetune_sweep.py mini-fare --steps 1000 --every 200

Starts from the released mini-clip with the zoo's fine-tuning config, `steps` replaced (the cosine
schedule spans the whole run, so only the last point is a finished run of that length). At every
`every` steps it measures, on fixed seeded test images: clean and PGD-10 robust accuracy (l-inf
4/255) on the source split (animals) and clean accuracy on the unseen classes (vehicles), with 95%
bootstrap CIs. Writes data_cache/sweeps/<name>-<steps>.json and prints the curve. Nothing is released.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace

import torch

from radapt_lib import attacks, config, data, stats, training, zoo


def measure(n: int, seed: int):
    source = data.mini_dataset(data.FINETUNE_SOURCE, "test", n=n, seed=seed)
    x, y = source.images.float().div(255), source.labels

    def on_checkpoint(clf) -> dict:
        with torch.no_grad():
            clean_ok = (clf(x).argmax(1) == y).numpy()
        x_adv = attacks.attack(clf, x, y, "pgd", 4 / 255, n_iter=10, seed=seed).x_adv
        with torch.no_grad():
            robust_ok = clean_ok & (clf(x_adv).argmax(1) == y).numpy()
        return {"clean": stats.bootstrap_mean(100 * clean_ok).fmt(1), "robust_pgd10": stats.bootstrap_mean(100 * robust_ok).fmt(1),
                "robust": float(100 * robust_ok.mean()), "clean_acc": float(100 * clean_ok.mean())}

    return on_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=[n for n in zoo.ORDER if n != "mini-clip"])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--n", type=int, default=500, help="test images per measurement")
    args = parser.parse_args()
    config.setup(0)
    cfg = replace(training.MINI_FINETUNES[args.name], steps=args.steps, eval_every=args.every)
    state, log = training.finetune(zoo.load_state("mini-clip"), training.MiniClipConfig(), cfg, args.name,
                                   on_checkpoint=measure(args.n, seed=0))
    out = config.cache_dir() / "sweeps" / f"{args.name}-{args.steps}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": asdict(cfg), "n": args.n, "checkpoints": log.checkpoints,
                               "seconds": log.seconds}, indent=1))
    for c in log.checkpoints:
        print(f"step {c['step']:5d}  loss {c['loss']:8.3f}  clean {c['clean']}  PGD-10 robust {c['robust_pgd10']}  "
              f"probe {c['probe_acc']:.1f}  {c['seconds'] / 60:.1f} min")
    print(f"{args.name}: {log.seconds / 60:.1f} min of training -> {out}")


if __name__ == "__main__":
    main()
