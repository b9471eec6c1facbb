PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup check lint types test
$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,web,postgres]'

lint:
	$(BIN)/ruff check oversight tests benchmarks examples
	$(BIN)/ruff format --check oversight tests benchmarks examples

types:
	$(BIN)/mypy

test:
	$(BIN)/pytest -q

check: lint types test
