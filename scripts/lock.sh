#!/usr/bin/env bash
# Refreshes requirements/lock.txt, the exact versions that `make run`, `make test` and CI install:
# every dependency of pyproject.toml with all its extras, resolved together with the torch /
# torchvision pair of requirements/pins.in. Usage: make lock   (or bash scripts/lock.sh)
# Then run `make test` and commit the new lock with the change that needed it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$PYTHON" -m venv "$tools"
"$tools/bin/python" -m pip install -q --disable-pip-version-check "pip-tools==7.6.2"
# No index or find-links lines in the lock: where packages come from is each machine's pip setting.
CUSTOM_COMPILE_COMMAND="make lock" "$tools/bin/pip-compile" --quiet --all-extras --strip-extras --allow-unsafe --no-emit-index-url \
  --no-emit-find-links --no-emit-trusted-host ${LOCK_UPGRADE:+--upgrade} --output-file requirements/lock.txt \
  pyproject.toml requirements/pins.in
echo "wrote requirements/lock.txt"
