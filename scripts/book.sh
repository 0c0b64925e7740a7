#!/usr/bin/env bash
# Build the book (mini profile, offline): install what is missing, execute stale notebooks, render.
#   scripts/book.sh            # re-execute only what changed, then render book/_build/html
#   scripts/book.sh --force    # re-derive every page (from the released zoo; see README)
set -euo pipefail
source "$(dirname "$0")/env.sh"
exec .venv/bin/python scripts/build_book.py "$@"
