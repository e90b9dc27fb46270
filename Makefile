# Every target runs from a clean machine: `make test`, `make lint` and `make demo` create the venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export SEG_DATASET ?= $(abspath ../shared/data/online_retail.csv.xz)

.PHONY: install test test-fast lint deploy-check format demo bench clean

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

bench: install  ## performance and quality figures (prints ratios against baselines)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build *.egg-info
