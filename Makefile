# The two set-up commands of the README. Both install into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test install install-test lint bench lock

run: install            ## install, then serve the app on the demo variants
	$(PY) app.py

test: install-test      ## install with the test tools, then run every test
	$(PY) -m pytest

install:
	bash scripts/install.sh

install-test:
	bash scripts/install.sh --test
	bash scripts/install-browser.sh

lint:
	$(PY) -m ruff check .
	$(PY) -m mypy

lock:                   ## refresh requirements/lock.txt (LOCK_UPGRADE=1: newest versions the ranges allow)
	bash scripts/lock.sh

bench:
	$(PY) -m bench.bench_fanout
