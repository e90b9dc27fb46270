# Every target runs from a clean machine: `make test`, `make lint` and `make demo` create the venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
QUIX_VENV ?= .venv-quix
export SEG_DATASET ?= $(abspath ../shared/data/online_retail.csv.xz)

.PHONY: install test test-fast lint deploy-check format demo bench bench-env bench-api bench-scale chaos clean

$(BIN)/activate: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --editable .
	touch $(BIN)/activate

install: $(BIN)/activate  ## create .venv: pinned runtime + development requirements, `live-segments` on its PATH

lint: install  ## ruff lint + format check, the layer contract (import-linter), the type checker (mypy)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

deploy-check: install  ## Compose file (docker compose config), Prometheus config and rules (promtool), dashboard JSON
	PYTHON=$(BIN)/python ./deploy/check

test: lint deploy-check  ## the whole suite against a real broker and Redis (see tests/conftest.py)
	$(BIN)/python -m pytest

test-fast: install  ## only the tests that need no broker, Redis or dataset
	$(BIN)/python -m pytest -m "not services"

demo: install  ## end to end on a local broker and Redis; see README
	$(BIN)/python -m demo

$(QUIX_VENV)/bin/activate: bench/requirements-quix.txt
	$(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install --quiet --upgrade pip
	$(QUIX_VENV)/bin/pip install --quiet -r bench/requirements-quix.txt
	touch $(QUIX_VENV)/bin/activate

bench-env: $(QUIX_VENV)/bin/activate  ## the Quix Streams peer's own venv (its pydantic pins conflict with ours)

bench: install bench-env  ## performance and quality figures (prints ratios against baselines)
	SEG_BENCH_QUIX_PYTHON=$(abspath $(QUIX_VENV))/bin/python $(BIN)/python -m bench.run

bench-api: install  ## GET /customers/{id} under load (wrk) against a minimal app doing the same Redis read
	$(BIN)/python -m bench.api_bench

bench-scale: install  ## 1M simulated customers: worker RSS, assignment load, Redis bytes, rows/s vs the real year (long)
	nice -n 10 $(BIN)/python -m bench.scale_bench

chaos: install  ## every fault of the hardening issue on the real data, each against a calm run: one table (~15 min, not in CI)
	$(BIN)/python -m harness.chaos "$(SEG_DATASET)"

clean:
	rm -rf $(VENV) $(QUIX_VENV) .pytest_cache .ruff_cache .mypy_cache build *.egg-info
