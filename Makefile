# Every target runs from a clean machine: `make test` and `make demo` create the venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
QUIX_VENV ?= .venv-quix
export SEG_DATASET ?= $(abspath ../shared/data/online_retail.csv.xz)

.PHONY: install test lint format demo bench bench-env clean

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

$(QUIX_VENV)/bin/activate: bench/requirements-quix.txt
	$(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install --quiet --upgrade pip
	$(QUIX_VENV)/bin/pip install --quiet -r bench/requirements-quix.txt
	touch $(QUIX_VENV)/bin/activate

bench-env: $(QUIX_VENV)/bin/activate  ## the Quix Streams peer's own venv (its pydantic pins conflict with ours)

bench: install bench-env  ## performance and quality figures (prints ratios against baselines)
	SEG_BENCH_QUIX_PYTHON=$(abspath $(QUIX_VENV))/bin/python $(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) $(QUIX_VENV) .pytest_cache .ruff_cache
