#!/usr/bin/env bash
# Retrain the mini zoo from scratch and re-release it into zoo/ (weights + manifest.json).
#   scripts/train_zoo.sh                   # every model, in order (~25-35 min on 2 CPU cores)
#   scripts/train_zoo.sh mini-fare         # one model (fine-tunes start from the released mini-clip)
#   scripts/train_zoo.sh --check           # only retrain the short prefixes and compare with the manifest
set -euo pipefail
source "$(dirname "$0")/env.sh"
exec .venv/bin/python scripts/train_zoo.py "$@"
