# retrainctl: `make run` trains the bundled demo models, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= etc/retrainctl.yaml

.PHONY: run test venv test-deps prometheus-deps clean bench-dask

run: $(VENV)/.installed
	$(BIN)/retrainctl --config $(CONFIG) check

test: $(VENV)/.test-installed prometheus-deps
	$(BIN)/python -m pytest -q tests

venv: $(VENV)/.installed

# The stamp files make a second `make run` instant while re-installing when setup.py changes.
$(VENV)/.installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,dask]'
	touch $@

# Sixteen models on a two-worker local Dask cluster against executor: local, max_parallel: 1.
bench-dask: $(VENV)/.test-installed
	$(BIN)/python bench/dask_bench.py

# The metrics tests run Debian's real Pushgateway and promtool (package prometheus); installed
# only when missing, with sudo only when not root.
prometheus-deps:
	@command -v prometheus-pushgateway >/dev/null && command -v promtool >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-pushgateway prometheus; }

clean:
	rm -rf $(VENV) build *.egg-info var
