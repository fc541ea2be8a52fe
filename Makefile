# Intentflow: `make demo` runs the pipeline end to end on the embedded default;
# `make test` runs the tests. Both set up .venv first (Python 3.11).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin

# The embedded default: everything under .intentflow/ (lake, registry, Airflow's SQLite).
export INTENTFLOW_HOME ?= $(CURDIR)/.intentflow
export AIRFLOW_HOME ?= $(INTENTFLOW_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__PARALLELISM ?= 4
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GX_ANALYTICS_ENABLED := false
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export PATH := $(BIN):$(PATH)

.PHONY: install chromium demo airflow test test-fast lint format bench clean

# torch first and pinned: the CPU wheel; an unpinned resolve would pull a CUDA build.
$(VENV)/.installed: pyproject.toml
	@echo "== setting up $(VENV) (first run: about 2 minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install  ## generate 7 days, ingest each with Airflow, retrain, print a summary
	bash scripts/demo.sh

airflow: install  ## the Airflow UI (standalone) on the demo's state
	bash scripts/airflow_standalone.sh

# Debian's Chromium for the browser test (as root, through apt-get); elsewhere that test skips
# with its reason (and fails under CI: tests/ci.py).
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "note: chromium is not installed; the browser test will skip"

test: install chromium  ## lint, then the whole suite (what CI runs)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/pytest -q

test-fast: install  ## skip the tests that train the real model or run whole DAGs
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: install  ## benchmarks against same-run baselines (training needs ../shared/datasets)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[bench]'
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/ingest.py --rows 1000000
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/redaction.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/lake_publish.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/ingest_cli.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/dag_parse.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/train.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/threads.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/entities.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/oos.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/answers.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/serve.py --home $(INTENTFLOW_HOME)/bench-serve --train

clean:
	rm -rf $(INTENTFLOW_HOME)
