#!/usr/bin/env bash
# Creates .venv and installs Gemma Arena into it, at the exact versions of requirements/lock.txt.
# Usage: bash scripts/install.sh [--test]
#   --test  also the test and benchmark tools (pytest, Playwright, bitsandbytes, llama.cpp's
#           server, which pip compiles from source: ~8 minutes the first time, cached after).
#
# The lock is a constraints file: it fixes the version of every package that gets installed,
# and installs none that nothing asks for (a local CPU build of torch 2.14.1 needs none of the
# CUDA libraries the lock lists for PyPI's build). PIP_CONSTRAINT, not -c, so that the versions
# hold in pip's isolated build environments too (setuptools for this package).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }

export PIP_CONSTRAINT="$PWD/requirements/lock.txt"
if [ "${1:-}" = "--test" ]; then
  pip install -q -e ".[test]"
else
  pip install -q -e .
fi
echo "installed into $VENV (versions from requirements/lock.txt)"
