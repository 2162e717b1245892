# retrainctl: `make run` trains the bundled demo models, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= etc/retrainctl.yaml
# The pip each new venv gets first: the pip that `python -m venv` bundles (23.x) spends most of an
# install weighing PyPI's ~100,000 file links of our dependencies against its platform tags
# (50 s of CPU for `make install`; 26 s with a current pip, which is a 3 s download).
PIP_AT_LEAST := pip>=25.1

.PHONY: run test test-fast typecheck venv system-deps bytecode clean bench bench-dask bench-quality docs

# The project's own modules byte-compiled ahead (only what changed since; under a second): every
# command, fit process and tracking process imports them, and where PYTHONDONTWRITEBYTECODE is
# set (CI images, containers) Python would otherwise compile them from source at every start,
# about 0.35 s of CPU per command. The venv's libraries are compiled when they are installed.
bytecode: $(VENV)/.installed
	$(BIN)/python -m compileall -q -j 0 retrainctl tests bench > /dev/null

run: $(VENV)/.installed bytecode
	$(BIN)/retrainctl --config $(CONFIG) check

# Tests in parallel (pytest-xdist; what several tests share is made once, see made_once in
# tests/conftest.py). The type checker and the import layers are tests too (test_types.py,
# test_layers.py). The Debian packages' install is timed on its own line. `worksteal`: a worker
# that runs out of tests takes some of another's, so the suite does not end on one busy worker.
TEST_WORKERS ?= 3
test: system-deps $(VENV)/.test-installed bytecode
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=25 tests

# The edit loop: every test not marked slow (real servers, installs, fits on every model).
test-fast: $(VENV)/.test-installed bytecode
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not slow" tests

typecheck: $(VENV)/.test-installed
	$(BIN)/python -m mypy

venv: $(VENV)/.installed

# Regenerates the key reference in docs/configuration.md from retrainctl/config/keys.py, and the
# --json outputs' JSON Schemas (retrainctl/schemas/*.json) and their reference in docs/json.md.
docs: $(VENV)/.installed
	$(BIN)/python -m retrainctl.config.reference
	$(BIN)/python -m retrainctl.schemas.build

# Ratios against md5sum, `python -c pass` and a bare fit script, measured side by side (a few
# minutes). With the test extras, so that the Dask row (7) runs too.
bench: $(VENV)/.test-installed bytecode
	$(BIN)/python bench/bench.py

# False-alarm and detection rates of the performance and drift triggers (fixed seeds, a few minutes).
bench-quality: $(VENV)/.installed bytecode
	$(BIN)/python bench/quality_bench.py

# The stamp files make a second `make run` instant while re-installing when setup.py changes;
# `make test` installs the package with its test extras in one pip run.
$(VENV)/.installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check '$(PIP_AT_LEAST)'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.test-installed: setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check '$(PIP_AT_LEAST)'
	@# Byte-compiled afterwards on both cores: pip compiles one file at a time (11 s more). The
	@# libraries' own test suites (a fifth of the files, never imported here) are left out: 27 s -> 15 s.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[test,dask]'
	$(BIN)/python -m compileall -q -j 0 -x '/tests?/' $(VENV)/lib > /dev/null
	touch $(VENV)/.installed $@

# Sixteen models on a two-worker local Dask cluster against executor: local, max_parallel: 1.
bench-dask: $(VENV)/.test-installed bytecode
	$(BIN)/python bench/dask_bench.py

clean:
	rm -rf $(VENV) build *.egg-info var

# ---- make install / make uninstall: a venv under PREFIX, config, data and systemd units. ----
# DESTDIR stages the tree elsewhere (packaging, tests); every installed path still names the
# final location, so the staged tree is only meant to run once copied to /.
PREFIX         ?= /opt/retrainctl
DESTDIR        ?=
# The system interpreter: a pyenv or home-directory Python is unreadable to the service user.
INSTALL_PYTHON ?= /usr/bin/python3
# Extra pip options for the installed venv (the tests' staged installs pass --no-compile: byte-
# compiling every dependency costs 15 s of CPU that a throw-away tree never earns back).
INSTALL_PIP_FLAGS ?=
ETCDIR         := /etc/retrainctl
VARDIR         := /var/lib/retrainctl
UNITDIR        := /etc/systemd/system
SYSUSERSDIR    := /etc/sysusers.d
UNITS          := retrainctl-check.service retrainctl-check.timer retrainctl-train@.service \
                  retrainctl-notify-failure@.service
# The services whose shared [Service] settings come from systemd/retrainctl-hardening.conf.
HARDENED       := retrainctl-check.service retrainctl-train@.service retrainctl-notify-failure@.service
# The failure hook's own settings, a second drop-in after hardening.conf.
NOTIFY_DROP_IN := retrainctl-notify-failure@.service.d/notify-failure.conf
IVENV          := $(DESTDIR)$(PREFIX)/venv
# Bash completion: system-wide for a root or a staged (DESTDIR) install, else the user's own folder,
# which bash-completion searches when `retrainctl` is first completed.
COMPLETIONDIR  ?= $(if $(DESTDIR)$(filter 0,$(shell id -u)),/etc/bash_completion.d,$(HOME)/.local/share/bash-completion/completions)

.PHONY: install install-venv install-config install-data install-units install-completion uninstall

install: install-venv install-config install-data install-units install-completion
	@echo "installed: $(PREFIX)/bin/retrainctl; enable the timer with: systemctl enable --now retrainctl-check.timer"

install-venv:
	test -x $(IVENV)/bin/python || $(INSTALL_PYTHON) -m venv $(IVENV)
	$(IVENV)/bin/python -m pip install --quiet --disable-pip-version-check $(INSTALL_PIP_FLAGS) '$(PIP_AT_LEAST)'
	@# A stale build/ folder would put deleted modules into the wheel.
	rm -rf build
	$(IVENV)/bin/python -m pip install --quiet $(INSTALL_PIP_FLAGS) .
	@# pip wrote $(DESTDIR) into the scripts' #! lines; point them at the final location.
	if [ -n "$(DESTDIR)" ]; then \
	  grep -lIr -- '$(IVENV)' $(IVENV)/bin $(IVENV)/pyvenv.cfg | xargs -r sed -i 's|$(IVENV)|$(PREFIX)/venv|g'; \
	fi
	install -d $(DESTDIR)$(PREFIX)/bin
	ln -sfn ../venv/bin/retrainctl $(DESTDIR)$(PREFIX)/bin/retrainctl

# click's bash script, written by the installed venv (or, without one, the development venv of
# `make venv`); it runs `retrainctl` from PATH. zsh and fish: see the README.
install-completion: $(if $(filter install,$(MAKECMDGOALS)),install-venv)
	py=$(IVENV)/bin/python; test -x $$py || py=$(BIN)/python; \
	install -d $(DESTDIR)$(COMPLETIONDIR) && \
	_RETRAINCTL_COMPLETE=bash_source $$py -I -m retrainctl > $(DESTDIR)$(COMPLETIONDIR)/retrainctl.tmp && \
	mv $(DESTDIR)$(COMPLETIONDIR)/retrainctl.tmp $(DESTDIR)$(COMPLETIONDIR)/retrainctl

# Never overwrites: an existing config is the operator's.
install-config:
	install -d -m 0755 $(DESTDIR)$(ETCDIR)
	test -e $(DESTDIR)$(ETCDIR)/retrainctl.yaml || install -m 0644 etc/retrainctl.installed.yaml $(DESTDIR)$(ETCDIR)/retrainctl.yaml

# The demo data, only where no file of that name exists; state/ and models/ belong to the service user.
install-data:
	install -d -m 0755 $(DESTDIR)$(VARDIR) $(DESTDIR)$(VARDIR)/data $(DESTDIR)$(VARDIR)/data/raw
	for f in data/raw/*.csv; do \
	  test -e $(DESTDIR)$(VARDIR)/data/raw/$${f##*/} || install -m 0644 $$f $(DESTDIR)$(VARDIR)/data/raw/; \
	done
	install -d -m 0750 $(DESTDIR)$(VARDIR)/state $(DESTDIR)$(VARDIR)/models

install-units:
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	for u in $(UNITS); do \
	  sed 's|/opt/retrainctl/|$(PREFIX)/|g' systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; \
	done
	for u in $(HARDENED); do \
	  install -d $(DESTDIR)$(UNITDIR)/$$u.d && \
	  install -m 0644 systemd/retrainctl-hardening.conf $(DESTDIR)$(UNITDIR)/$$u.d/hardening.conf; \
	done
	install -m 0644 systemd/retrainctl-notify-failure.conf $(DESTDIR)$(UNITDIR)/$(NOTIFY_DROP_IN)
	install -m 0644 systemd/retrainctl.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/retrainctl.conf
	@# On the live system: create the user, hand it state/ and models/, tell systemd.
	if [ -z "$(DESTDIR)" ]; then \
	  systemd-sysusers $(SYSUSERSDIR)/retrainctl.conf && \
	  chown retrainctl:retrainctl $(VARDIR)/state $(VARDIR)/models && \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	fi

# Removes the program, units and user file; keeps the config, data, state and models.
uninstall:
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl disable --now retrainctl-check.timer || true; fi
	rm -f $(DESTDIR)$(UNITDIR)/timers.target.wants/retrainctl-check.timer
	for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done
	@# The operator's own drop-ins (systemctl edit) stay, and so does their folder.
	rm -f $(DESTDIR)$(UNITDIR)/$(NOTIFY_DROP_IN)
	for u in $(HARDENED); do rm -f $(DESTDIR)$(UNITDIR)/$$u.d/hardening.conf; rmdir $(DESTDIR)$(UNITDIR)/$$u.d 2>/dev/null || true; done
	rm -f $(DESTDIR)$(SYSUSERSDIR)/retrainctl.conf
	rm -f $(DESTDIR)$(COMPLETIONDIR)/retrainctl
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	rm -rf $(IVENV)
	rm -f $(DESTDIR)$(PREFIX)/bin/retrainctl
	-rmdir $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX) 2>/dev/null
	@echo "kept: $(ETCDIR)/retrainctl.yaml and $(VARDIR) (data, state, models); the user retrainctl stays"

# Debian packages the tests run for real: the Pushgateway, the Prometheus server and promtool
# (metrics and alerts; both programs come with the prometheus package), systemd-analyze, strace and
# jq (scheduling), and the system Python's venv (make install). One apt-get run, only for what is
# missing; sudo only when not root.
system-deps:
	@start=$$(date +%s); missing=""; \
	command -v prometheus-pushgateway >/dev/null || missing="$$missing prometheus-pushgateway"; \
	{ command -v prometheus && command -v promtool; } >/dev/null || missing="$$missing prometheus"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	command -v strace >/dev/null || missing="$$missing strace"; \
	command -v jq >/dev/null || missing="$$missing jq"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	$(INSTALL_PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi; \
	echo "system-deps: Debian packages$${missing:- (all present)} in $$(( $$(date +%s) - start ))s"
