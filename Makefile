# The README's two commands: `make run` (serve on the embedded SQLite default, with simulated engines)
# and `make test`. Everything is installed from the committed lock (uv.lock), never from open ranges.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# uv, pinned with hashes in tools/uv.txt, lives in the user cache so that every clone shares it.
UV_VERSION := $(shell sed -n 's/^uv==\([0-9.]*\).*/\1/p' tools/uv.txt)
UV_HOME    := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/mindrouter/uv-$(UV_VERSION)
UV         := $(UV_HOME)/bin/uv
# uv uses the interpreter named by PYTHON and never downloads one of its own.
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Compiled requirement files for what installs outside the project's venv (the sidecar, uv itself, and the
# build backend that builds MindRouter in the gateway image).
COMPILE = $(UV) pip compile --quiet --custom-compile-command "make lock" --generate-hashes --universal --python-version 3.11

.PHONY: run demo test lint typecheck pytest check-lock lock upgrade bench bench-fairness bench-gateway bench-soak clean

run: $(STAMP)
	$(BIN)/mindrouter serve --demo

# Users of every role flood a simulated cluster through a real gateway; their token shares, live.
demo: $(STAMP)
	$(BIN)/python -m bench.fairness --live --seconds 60

test: check-lock lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers (pytest-xdist): most of the suite waits on real servers, not on the CPU; tests/conftest.py keeps each
# module's tests together and runs the machine-loading suites one at a time. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
pytest: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS)

bench: $(STAMP)
	taskset -c 0 $(BIN)/python -m bench.key_check

bench-fairness: $(STAMP)
	$(BIN)/python -m bench.fairness

# Gateway vs direct, with the event loop's lag and the TTFT of 64 paced streams (docs/performance.md).
bench-gateway: $(STAMP)
	$(BIN)/python -m bench.gateway --seconds 10

# 30 minutes of steady mixed traffic, judged for drift (exit status 1 when anything drifts).
bench-soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes 30

# pyproject.toml and uv.lock must agree: a clone installs exactly what was tested, or nothing.
check-lock: $(UV)
	@$(UV) lock --check --quiet 2>/dev/null || { \
		echo "uv.lock does not match pyproject.toml: run 'make lock' (or 'make upgrade'), test, and commit uv.lock." >&2; \
		exit 1; }

# After editing dependencies in pyproject.toml or sidecar/requirements.in: lock them, changing nothing else.
lock: $(UV)
	$(UV) lock
	$(COMPILE) --constraints <($(UV) export --quiet --frozen --no-hashes --no-emit-project --all-extras) \
		sidecar/requirements.in -o sidecar/requirements.txt
	$(COMPILE) --no-header tools/build.in -o tools/build.txt

# Deliberately move every dependency (and uv) to its newest release; then `make test` and commit the lot.
upgrade: $(UV)
	$(UV) lock --upgrade
	$(COMPILE) --upgrade --constraints <($(UV) export --quiet --frozen --no-hashes --no-emit-project --all-extras) \
		sidecar/requirements.in -o sidecar/requirements.txt
	$(COMPILE) --upgrade --no-header tools/build.in -o tools/build.txt
	$(COMPILE) --upgrade --no-header tools/uv.in -o tools/uv.txt

# The venv is synced from the lock whenever the lock (or pyproject.toml) changes.
$(STAMP): pyproject.toml uv.lock $(UV)
	$(UV) sync --locked --extra dev --quiet || { \
		echo "Could not install from uv.lock; if it disagrees with pyproject.toml, run 'make lock'." >&2; exit 1; }
	touch $(STAMP)

# The path names the version, so a uv already there is the right one (a fresh clone need not reinstall it).
$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "MindRouter needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv --clear $(UV_HOME)
	$(UV_HOME)/bin/python -m pip install --quiet --require-hashes --no-deps -r tools/uv.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
