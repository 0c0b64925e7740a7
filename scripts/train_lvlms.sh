#!/usr/bin/env bash
# Train the mini LVLMs (LLaVA's recipe over released mini CLIP towers) and their R-Adapt+ anchors, and release them
# into zoo/ (weights + the manifest's lvlms / lvlm_anchors sections).
#   scripts/train_lvlms.sh                  # every mini LVLM, then every anchor (~10 min on 2 CPU cores)
#   scripts/train_lvlms.sh mini-llava       # one LVLM and its anchors
#   scripts/train_lvlms.sh --anchors        # only the anchors (of every LVLM, or of those named)
set -euo pipefail
source "$(dirname "$0")/env.sh"
exec .venv/bin/python scripts/train_lvlms.py "$@"
