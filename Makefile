# One command installs and runs the demo; one installs and runs the tests. Both work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,optimizers]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sage generate --corpus bundled --seeds 40 --targets 2-5 --out artifacts/runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest

# Benchmarks (retrieval, client overhead, calls, throughput, memory): `make bench` is the quick mode (about 4.5 min);
# FULL=1 adds 1M passages, the full throughput curve and 2,000 seeds of memory.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench.run_all $(if $(FULL),,--quick)

clean:
	rm -rf artifacts/runs artifacts/indexes artifacts/mlflow.db artifacts/mlflow-artifacts
