# Two commands do everything on a fresh machine:
#   make up     set up (venv, package with extras, Mosquitto) and start the rig on this machine
#   make test   the same set-up, then lint, type checks and the whole test suite

PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup up test check lint typecheck pytest schema bench clean

setup: $(STAMP) ensure-mosquitto

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else "Python 3.11-3.13 is needed, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,inference,ble,twin]'
	@touch $@

.PHONY: ensure-mosquitto
ensure-mosquitto:
	@scripts/ensure-mosquitto

up: setup
	$(BIN)/aigloo up

test: setup check pytest

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

schema: $(STAMP)
	$(BIN)/aigloo schema

# Each script prints its figures; --write-docs records them in docs/benchmarks.md.
bench: setup
	$(BIN)/python -m pip install --quiet glances   # the footprint benchmark's baseline
	$(BIN)/python benchmarks/bus.py
	$(BIN)/python benchmarks/agent_footprint.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/rules.py
	$(BIN)/python benchmarks/sensors.py
	$(BIN)/python benchmarks/simulate.py
	$(BIN)/python benchmarks/top_footprint.py

clean:
	rm -rf $(VENV) .aigloo .mypy_cache .ruff_cache .pytest_cache
