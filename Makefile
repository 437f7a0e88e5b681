# One command installs and runs the demo; one installs and runs the tests. Both work on a fresh clone and
# install exactly requirements.lock (every transitive dependency, pinned with hashes), so a dependency's new
# release cannot change what `make test` runs. `make test-latest` is the early warning that one would.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
STAMP := $(VENV)/.installed
LATEST := .venv-latest
TOOLS := .venv-tools
UV_VERSION := 0.13.9
EXTRAS := test,optimizers,fast,bench,ray

.PHONY: demo test bench install lock test-latest clean clean-venv

# A changed lock rebuilds the venv from scratch: pip never removes what a pin dropped.
$(STAMP): $(LOCK) pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python .ci/lock_matches.py $(LOCK)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sage generate --corpus bundled --seeds 40 --targets 2-5 --out artifacts/runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest

# Benchmarks (retrieval, scale, client overhead, calls, throughput, memory): `make bench` is the quick mode (about 8 min);
# FULL=1 adds 1M passages, 1M and 5M for scale, the full throughput curve and 2,000 seeds of memory.
bench: $(STAMP)
	$(BIN)/python -m bench.run_all $(if $(FULL),,--quick)

# Re-resolve the lock from pyproject.toml's ranges (newest versions they allow), with a pinned resolver.
# `make lock UPGRADE="--upgrade-package NAME"` adds or moves NAME (and what it needs) and keeps every other pin.
UPGRADE ?= --upgrade
lock:
	test -x $(TOOLS)/bin/uv || { $(PYTHON) -m venv $(TOOLS) && $(TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION); }
	$(TOOLS)/bin/uv pip compile pyproject.toml .ci/build.in --all-extras --generate-hashes --universal \
	  --python-version 3.11 $(UPGRADE) --custom-compile-command "make lock" --quiet -o $(LOCK)

# The suite against the newest releases pyproject.toml allows, in its own venv; the lock is untouched.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade -e ".[$(EXTRAS)]"
	$(LATEST)/bin/python -m pip freeze --exclude-editable > $(LATEST)/freeze.txt
	@echo "newest allowed versions installed: $(LATEST)/freeze.txt"
	$(LATEST)/bin/python -m pytest -p no:cacheprovider

clean:
	rm -rf artifacts/runs artifacts/indexes artifacts/mlflow.db artifacts/mlflow-artifacts

clean-venv:
	rm -rf $(VENV) $(LATEST) $(TOOLS)
