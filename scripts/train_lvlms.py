"""Train and release the mini LVLMs and their R-Adapt+ anchors (see scripts/train_lvlms.sh)."""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from radapt_lib import config
from radapt_lib.lvlm import release
from radapt_lib.lvlm.mini_vlm import MINI_VLMS


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"mini LVLMs (default: all of {tuple(MINI_VLMS)})")
    parser.add_argument("--anchors", action="store_true", help="only train and release the anchors")
    args = parser.parse_args(argv)
    names = args.names or list(MINI_VLMS)
    config.setup(0)
    if not args.anchors:
        rows = []
        for name in names:
            record = release.release_model(name)
            rows.append({"model": name, "minutes": record["minutes"], "parameters": record["parameters"], **record["final"]})
        print(pd.DataFrame(rows).to_string(index=False))
    print(pd.DataFrame(release.release_anchors(names)).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
