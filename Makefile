# Executable reproduction of Shao, Iyer et al. (Sci Rep 2022). `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= default
NB ?=
SET ?=
PARAMS ?=
CONFIG ?= workflow/config.yaml
CORES ?= 2
JOBS ?= 2
SNAKEMAKE_ARGS ?=
SETARGS := $(foreach s,$(SET),--set $(s)) $(if $(PARAMS),--params $(PARAMS))
LOCKHASH := $(shell cat requirements/lock.txt requirements/upstream.txt pyproject.toml package.json 2>/dev/null | sha256sum | cut -c1-12)
READY := $(VENV)/.ready-$(LOCKHASH)
export OPENBLAS_NUM_THREADS := 1
export PYTHONHASHSEED := 0

.PHONY: help setup book pdf run test test-fast test-slurm lint lock bench upstream upstream-slurm clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=default|test|real  NB=03  SET='key=value 03_de.p_max=0.05'  PARAMS=my.yml  JOBS=2  CONFIG=workflow/config.yaml"

$(READY): requirements/lock.txt requirements/upstream.txt pyproject.toml package.json
	@echo "setting up $(VENV) (pinned, hashed dependencies; first time only)"
	@if [ -f scripts/install_system_deps.sh ]; then bash scripts/install_system_deps.sh; fi
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q --require-hashes -r requirements/lock.txt -r requirements/upstream.txt
	@$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@npm ci --silent --no-audit --no-fund
	@rm -f $(VENV)/.ready-*; touch $@

setup: $(READY) ## create .venv and install the pinned dependencies

book: $(READY) ## execute every notebook (incremental) and build the HTML book into _build/html
	@$(BIN)/python -m helpers run --profile $(PROFILE) $(SETARGS) --jobs $(JOBS) --book

pdf: book ## the whole book as one PDF: _build/pdf/book.pdf (single-page HTML printed by headless Chromium)
	@$(BIN)/python -m helpers pdf

run: $(READY) ## re-execute one chapter (NB=03) and what depends on it, then rebuild the HTML
	@test -n "$(NB)" || { echo "usage: make run NB=03 [PROFILE=test] [SET='key=value']"; exit 2; }
	@$(BIN)/python -m helpers run --profile $(PROFILE) $(SETARGS) --jobs $(JOBS) --only $(NB) --force --book

test: $(READY) lint ## lint, then the whole test suite (unit, R-golden, notebooks, book, workflow)
	@$(BIN)/python -m pytest -q

lint: $(READY) ## ruff: lint and format check of src, tests, benchmarks, workflow and the notebooks' code
	@$(BIN)/ruff check src tests benchmarks workflow scripts
	@$(BIN)/ruff format --check src tests benchmarks workflow scripts
	@$(BIN)/python scripts/lint_notebooks.py

lock: ## regenerate the hashed locks from pyproject.toml (keeps locked versions; UPGRADE=1 to upgrade)
	@$(BIN)/python -m pip install -q uv
	@$(BIN)/uv pip compile pyproject.toml --extra book --extra test --python-version 3.11.7 --generate-hashes $(if $(UPGRADE),--upgrade) -o requirements/lock.txt
	@$(BIN)/uv pip compile pyproject.toml --extra upstream --python-version 3.11.7 --generate-hashes --constraint requirements/lock.txt $(if $(UPGRADE),--upgrade) -o requirements/upstream.txt

test-fast: $(READY) ## the unit and golden tests only (no notebooks, book or workflow)
	@$(BIN)/python -m pytest -q -m "not slow and not upstream"

test-slurm: $(READY) ## the upstream workflow on a one-node SLURM cluster the test starts itself (root; 6-17 min)
	@$(BIN)/python -m pytest -q tests/test_slurm.py

bench: $(READY) ## benchmarks: writes benchmarks/results.json
	@$(BIN)/python -m benchmarks.run

upstream: $(READY) ## fastq -> counts with Snakemake (CONFIG=workflow/config.yaml)
	@$(BIN)/snakemake -s workflow/Snakefile --configfile $(CONFIG) --cores $(CORES) $(SNAKEMAKE_ARGS)

upstream-slurm: $(READY) ## the same on a SLURM cluster (workflow/profiles/slurm)
	@$(BIN)/snakemake -s workflow/Snakefile --configfile $(CONFIG) --profile workflow/profiles/slurm $(SNAKEMAKE_ARGS)

clean: ## remove generated results and the built book (keeps .venv)
	rm -rf results _build executed book/_static/mathjax
