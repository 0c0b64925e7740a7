#!/usr/bin/env bash
# Retrain the mini zoo from scratch and re-release it into zoo/ (weights + manifest.json).
#   scripts/train_zoo.sh                   # every model, in order (~5.5 h on 2 CPU cores: the manifest's minutes)
#   scripts/train_zoo.sh mini-fare         # one model (fine-tunes start from the released mini-clip)
#   scripts/train_zoo.sh --maa             # retrain the MAA adapters (every variant, or the ones named)
#   scripts/train_zoo.sh --check           # only retrain the short prefixes and compare with the manifest
#   scripts/train_zoo.sh --anchors         # retrain every released R-Adapt+ anchor and re-release them
#   scripts/train_zoo.sh --anchors --from-cache   # ... plus every anchor a book build trained (new page parameters)
# A whole re-release: the models, then `scripts/book.sh --force` with RADAPT_CACHE pointing at an empty
# folder, then `--anchors --from-cache` with the same RADAPT_CACHE.
set -euo pipefail
source "$(dirname "$0")/env.sh"
exec .venv/bin/python scripts/train_zoo.py "$@"
