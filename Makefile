# Two commands for a newcomer: `make up` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export GAUNTLET_HOME ?= $(CURDIR)/.gauntlet
export DAGSTER_HOME ?= $(GAUNTLET_HOME)/dagster

.PHONY: up test bench venv clean-state

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/python -m scripts.up

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean-state:
	rm -rf $(GAUNTLET_HOME)
