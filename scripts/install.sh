#!/usr/bin/env bash
# Creates .venv and installs Gemma Arena into it. Usage: bash scripts/install.sh [--test]
#   --test  also the test and benchmark tools (pytest, Playwright, bitsandbytes, llama.cpp's
#           server, which pip compiles from source: ~8 minutes the first time, cached after).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }

# torch and torchvision first, pinned as a pair: Gemma4Processor needs torchvision, and a
# torchvision that does not match torch fails to import.
pip install -q "torch==2.14.1" "torchvision==0.29.1"
if [ "${1:-}" = "--test" ]; then
  pip install -q -e ".[test]"
else
  pip install -q -e .
fi
echo "installed into $VENV"
