#!/usr/bin/env bash
# Create/refresh the project-local virtual environment (.venv). Idempotent: when the
# requirement files have not changed since the last install, it returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=$(cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat .venv/.radapt-stamp 2>/dev/null)" != "$stamp" ]; then
  echo "[setup] installing requirements into .venv (torch is large: a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  echo "$stamp" > .venv/.radapt-stamp
fi
