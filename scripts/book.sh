#!/usr/bin/env bash
# Build the book (mini profile, offline): install what is missing, execute stale notebooks, render.
#   scripts/book.sh            # re-execute only what changed, then render book/_build/html
#   scripts/book.sh --force    # re-derive every page (cold cache: trains the mini zoo, ~37 min in all)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
RADAPT_DATA=${RADAPT_DATA:-../shared/data}
# kernels run in other folders: make the path absolute
export RADAPT_DATA=$(cd "$RADAPT_DATA" 2>/dev/null && pwd || echo "$RADAPT_DATA")
exec .venv/bin/python scripts/build_book.py "$@"
