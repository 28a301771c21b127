# The README's two commands: `make run` (serve on the embedded SQLite default, with simulated engines)
# and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run demo test lint typecheck pytest bench bench-fairness clean

run: $(STAMP)
	$(BIN)/mindrouter serve --demo

# Users of every role flood a simulated cluster through a real gateway; their token shares, live.
demo: $(STAMP)
	$(BIN)/python -m bench.fairness --live --seconds 60

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	taskset -c 0 $(BIN)/python -m bench.key_check

bench-fairness: $(STAMP)
	$(BIN)/python -m bench.fairness

# The venv is rebuilt only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "MindRouter needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
