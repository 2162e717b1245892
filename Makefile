# retrainctl: `make run` trains the bundled demo models, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= etc/retrainctl.yaml

.PHONY: run test venv test-deps clean bench

run: $(VENV)/.installed
	$(BIN)/retrainctl --config $(CONFIG) check

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q tests

venv: $(VENV)/.installed

# Ratios against md5sum, `python -c pass` and a bare fit script, measured side by side (a few minutes).
bench: $(VENV)/.installed
	$(BIN)/python bench/bench.py

# The stamp files make a second `make run` instant while re-installing when setup.py changes.
$(VENV)/.installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info var
