# Every target runs from a clean machine: `make test` and `make demo` create the venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export SEG_DATASET ?= $(abspath ../shared/data/online_retail.csv.xz)

.PHONY: install test lint format demo bench bench-api clean

$(BIN)/activate: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(BIN)/activate

install: $(BIN)/activate  ## create .venv and install pinned requirements

lint: install  ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint  ## the whole suite against a real broker and Redis (see tests/conftest.py)
	$(BIN)/python -m pytest

demo: install  ## end to end on a local broker and Redis; see README
	$(BIN)/python -m demo

bench: install  ## performance and quality figures (prints ratios against baselines)
	$(BIN)/python -m bench.run

bench-api: install  ## GET /customers/{id} under load (wrk) against a minimal app doing the same Redis read
	$(BIN)/python -m bench.api_bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
