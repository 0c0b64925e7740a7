#!/usr/bin/env bash
# Create/refresh the project-local virtual environment (.venv). Idempotent: when the
# requirement files have not changed since the last install, it returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi

# uv installs the same pinned set as pip (constraints.txt pins every package) about 2x faster: ~75 s instead of
# ~150 s for torch's CUDA build on the project's 2-core machines, most of CI's install time. uv does not read pip's
# configuration, so the wheel folders, indexes and constraints that pip is configured with are handed over.
install_with_uv() {
  .venv/bin/python -m pip install -q uv==0.13.8 || return 1
  local args=(--python .venv/bin/python --index-strategy unsafe-best-match -r requirements.txt -c constraints.txt)
  local value
  for value in ${PIP_FIND_LINKS:-} $(.venv/bin/python -m pip config get global.find-links 2>/dev/null); do
    args+=(--find-links "$value")
  done
  for value in $(.venv/bin/python -m pip config get global.extra-index-url 2>/dev/null); do
    args+=(--extra-index-url "$value")
  done
  for value in $(.venv/bin/python -m pip config get global.constraint 2>/dev/null); do
    args+=(-c "$value")
  done
  .venv/bin/uv pip install -q --compile-bytecode "${args[@]}"  # pip compiles too; PYTHONDONTWRITEBYTECODE machines never would
}

stamp=$(cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat .venv/.radapt-stamp 2>/dev/null)" != "$stamp" ]; then
  echo "[setup] installing requirements into .venv (torch is large: ~75 s with uv, a few minutes with pip)"
  .venv/bin/python -m pip install -q --upgrade pip
  if ! install_with_uv; then
    echo "[setup] uv could not install the requirements: installing them with pip"
    .venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
  fi
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  echo "$stamp" > .venv/.radapt-stamp
fi
