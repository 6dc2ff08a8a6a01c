# tickstep — run `make help` for the list of targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help demo test test-rust test-python build lint bench bench-deps clean
.PHONY: bench-save bench-compare bench-record bench-check bench-chart
.PHONY: docs

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.ready: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "maturin>=1.9.4,<2.0"
	touch $@

build: $(VENV)/.ready ## release build of the extension into .venv (with dev extras)
	$(VENV)/bin/maturin develop --release --extras dev --quiet

demo: build ## multi-symbol backtest on the embedded sample data
	$(PY) -m tickstep demo

test: build test-rust test-python ## cargo test + pytest

test-rust:
	cargo test --quiet

test-python:
	$(PY) -m pytest -q

docs: build ## the documentation site into target/docs (offline; warnings are errors)
	$(VENV)/bin/sphinx-build -E -a -W --keep-going -q -b html docs target/docs
	@echo "open target/docs/index.html"

lint: build ## rustfmt, clippy, ruff
	cargo fmt --all -- --check
	cargo clippy --all-targets --quiet -- -D warnings
	cargo clippy --features python --quiet -- -D warnings
	$(VENV)/bin/ruff check python tests benches docs

bench: build ## cargo bench, whole workloads, batch, data loading, peers, accessors, search, Pareto ranking, stored returns (BENCHMARKS.md)
	cargo bench --bench engine
	$(PY) benches/run_all.py --json target/bench-results.json
	$(PY) benches/signals.py $(if $(wildcard target/bench-venvs/vbt/bin/python),--vectorbt-python target/bench-venvs/vbt/bin/python)
	$(PY) benches/custom_data.py --repeat 5
	$(PY) benches/accessors.py
	$(PY) benches/search.py
	$(PY) benches/pareto.py
	$(PY) benches/runs_returns.py

bench-save: ## criterion baseline of the core benches: make bench-save NAME=main [FILTER=tick_loop]
	@test -n "$(NAME)" || { echo "usage: make bench-save NAME=baseline [FILTER=regex]"; exit 2; }
	$(PYTHON) benches/track_criterion.py save $(NAME) $(FILTER)

bench-compare: ## cargo bench against a saved baseline, table of changes: make bench-compare NAME=main
	@test -n "$(NAME)" || { echo "usage: make bench-compare NAME=baseline [FILTER=regex]"; exit 2; }
	$(PYTHON) benches/track_criterion.py compare $(NAME) $(FILTER)

bench-record: build ## append this commit's figures to benches/history.jsonl (~3 min)
	$(PY) benches/track.py record $(if $(NOTE),--note "$(NOTE)")

bench-check: build ## short regression check against the last record (not in make test; README)
	$(PY) benches/track.py check

bench-chart: build ## draw benches/history.jsonl into target/bench-history.html
	$(PY) benches/track.py chart

bench-deps: $(VENV)/.ready ## optional peers for make bench: backtesting.py, backtrader, vectorbt, nautilus_trader
	$(VENV)/bin/pip install --quiet "backtesting>=0.6" "backtrader>=1.9.78" "vectorbt>=1.0"
	$(PYTHON) -m venv target/bench-venvs/vbt
	target/bench-venvs/vbt/bin/pip install --quiet "vectorbt>=0.26"
	$(PYTHON) -m venv target/bench-venvs/nautilus
	target/bench-venvs/nautilus/bin/pip install --quiet nautilus_trader

clean: ## remove build products and the virtual environment
	rm -rf target $(VENV)
