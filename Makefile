# The two set-up commands (see README): `make run` and `make test`. Both build .venv/ first.
# `make test` is the one full command (lint and every test, printing the 15 slowest);
# `make test-fast` is the unit tier for the inner loop: under 2 minutes on 2 CPU cores, without
# the browser (e2e), packaged models, Ray, the AppTest pages (app) and the slow tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501
FAST := not (slow or e2e or models or ray or app)

.PHONY: venv run test test-fast lint format bench clean-venv

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/streamlit run app.py --server.port $(PORT) --server.headless true

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: venv lint
	$(BIN)/python -m pytest --durations=15

test-fast: venv
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -m "$(FAST)"

bench: venv
	$(BIN)/python benchmarks/bench_methods.py

clean-venv:
	rm -rf $(VENV)
