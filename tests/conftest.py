"""Shared fixtures: a throw-away project folder with small copies of the demo data, a config
that trains quickly, and two ways to run the command (CliRunner in-process, and the installed
console script as a subprocess from another working directory, the way cron does)."""
import contextlib
import copy
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import _pytest.runner
import pytest
import yaml
from click.testing import CliRunner

# pytest puts each test's id and phase in os.environ (PYTEST_CURRENT_TEST). The suite's in-process
# commands reuse idle fit processes as a long-lived caller of the Python API does, but only in an
# unchanged environment (retrainctl/fit/kept.py), so with it each test would start its own and pay
# pandas' and scikit-learn's imports again (2-3 s of CPU per test that trains). Nothing here reads it.
_pytest.runner._update_current_test_var = lambda item, when: None

# Three test workers share two cores: the OpenMP and BLAS threads of a fit (HistGradientBoosting,
# numpy) would only fight over them. The commands the tests start inherit these.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

# A shell starts a background job (`make test &`, a CI runner's step) with SIGINT ignored, and an
# ignored signal stays ignored across exec: every command a test starts would then shrug off the
# Ctrl-C the interruption tests send it. The commands a test starts get the default, as from a
# terminal, cron or systemd (a handler, unlike "ignored", is reset by exec).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "raw"
BIN = Path(sys.executable).parent
RETRAINCTL = str(BIN / "retrainctl")


def small_housing(dest, every=40):
    """Every 40th row of the housing data: ~500 rows covering all regions, gaps and categories."""
    lines = (DATA / "housing.csv").read_text().splitlines(keepends=True)
    dest.write_text(lines[0] + "".join(lines[1::every]))


def base_config(**models):
    return {
        "base_dir": "..",
        "state_dir": "var/state",
        "model_dir": "var/models",
        # MLflow adds seconds to every training; tests/test_tracking.py turns it on where it is tested.
        "mlflow": {"enabled": False},
        "defaults": {"check_interval": 0, "min_data_size": 50, "max_model_age_hours": 24},
        "models": models,
    }


IRIS = {
    "data_path": "data/raw/iris.csv",
    "target": "Species",
    "task": "classification",
    "features": ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"],
    "estimator": "sklearn.tree.DecisionTreeClassifier",
    "params": {"random_state": 0},
    "metric": "accuracy",
}
HOUSING = {
    "data_path": "data/raw/housing.csv",
    "target": "median_house_value",
    "task": "regression",
    "estimator": "sklearn.linear_model.Ridge",
    "metric": "r2",
}


class Project:
    """A temporary retrainctl project: <root>/etc/retrainctl.yaml, data/raw/*.csv, var/."""

    def __init__(self, root):
        self.root = root
        self.config_path = root / "etc" / "retrainctl.yaml"
        (root / "etc").mkdir(parents=True)
        (root / "data" / "raw").mkdir(parents=True)
        (root / "data" / "raw" / "iris.csv").write_bytes((DATA / "iris.csv").read_bytes())
        small_housing(root / "data" / "raw" / "housing.csv")
        self.config = base_config(iris=dict(IRIS), housing=dict(HOUSING))
        self.write_config()

    @property
    def state_dir(self):
        return self.root / "var" / "state"

    @property
    def model_dir(self):
        return self.root / "var" / "models"

    def data(self, name):
        return self.root / "data" / "raw" / f"{name}.csv"

    def write_config(self, config=None):
        if config is not None:
            self.config = config
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def set_model(self, name, **changes):
        self.config["models"][name].update(changes)
        self.write_config()

    def config_error(self, **sections):
        """Set top-level config sections and run `config`: it must exit 2 with one line that
        names the config file; returns the rest of that line."""
        self.config.update(sections)
        self.write_config()
        result = self.cli("config")
        assert result.exit_code == 2, result.output
        prefix = f"Error: {self.config_path}: "
        assert result.stderr.startswith(prefix) and result.stderr.count("\n") == 1, result.stderr
        return result.stderr[len(prefix):].rstrip("\n")

    def cli(self, *args, env=None):
        """Run the command in-process; returns click's Result (exit_code, stdout, stderr)."""
        from retrainctl.cli import main

        runner = CliRunner()
        return runner.invoke(main, ["--config", str(self.config_path), *args], env=env, catch_exceptions=False)

    def run(self, *args, cwd=None, env=None, timeout=300):
        """Run the installed console script as a subprocess from another folder."""
        full_env = dict(os.environ)
        full_env.pop("RETRAINCTL_CONFIG", None)
        if env:
            full_env.update(env)
        return subprocess.run([RETRAINCTL, "--config", str(self.config_path), *args], cwd=cwd or "/",
                              env=full_env, capture_output=True, text=True, timeout=timeout)

    def events(self):
        path = self.state_dir / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def history(self, model=None):
        return [e for e in self.events() if e["status"] != "started" and (model is None or e["model_name"] == model)]

    def current_version(self, name):
        link = self.model_dir / name / "current"
        return int(os.readlink(link)[1:]) if link.is_symlink() else None

    def append_rows(self, name, n):
        """Append copies of the first n data rows to a data file (new content, same schema)."""
        path = self.data(name)
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines) + "".join(lines[1:n + 1]))


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path / "proj")


def copy_project(template, dest, config=None):
    """A copy of a project folder (data, config, state, models) at `dest`, as a Project."""
    shutil.copytree(template.root, dest, symlinks=True)
    copied = Project.__new__(Project)
    copied.root, copied.config_path = dest, dest / "etc" / "retrainctl.yaml"
    copied.config = copy.deepcopy(template.config if config is None else config)
    return copied


def made_once(tmp_path_factory, name, build):
    """A folder made by `build(folder)` once for the whole run: the first xdist worker (or the one
    pytest process) to ask makes it under a file lock, the others wait for it and reuse it. Tests
    copy it (or only read it), never change it."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by every worker of this run
    folder, made = root / f"made-once-{name}", root / f"made-once-{name}.made"
    with FileLock(str(folder) + ".lock"):
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            made.touch()
    return folder


def shared_server(tmp_path_factory, name, start):
    """A server started once for the whole run, like made_once: the first xdist worker to ask
    calls `start(folder)`, which starts it in a process group of its own (start_new_session) and
    returns (its pid, what the tests need of it: a URL, an address); the others reuse it. The
    process that runs the session (the xdist controller, or the one pytest process) stops every
    such group at its end (pytest_sessionfinish below), so a server costs one start per run, not
    one per worker that happens to run one of its tests."""
    def build(folder):
        pid, answer = start(folder)
        (folder / "answer.json").write_text(json.dumps(answer))
        (folder / "server.pid").write_text(str(pid))
    return json.loads((made_once(tmp_path_factory, name, build) / "answer.json").read_text())


def stop_process_group(pgid, grace=15.0):
    """SIGTERM to the process group of a shared server; SIGKILL after `grace` seconds if any
    member is left. Its leader is reaped here when it is this process's own child (a run without
    xdist), else init reaps it (the worker that started it has exited)."""
    import time

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pgid, os.WNOHANG)  # an unreaped leader would stay in its group as a zombie
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def pytest_sessionfinish(session):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller stops them, after every worker is done
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    for pidfile in factory.getbasetemp().glob("made-once-*/server.pid"):
        stop_process_group(int(pidfile.read_text()))


def trained_project(folder):
    """The demo project after its first `check` (iris and housing trained as v1), made by the
    installed command."""
    template = Project(folder / "proj")
    done = template.run("check")
    assert done.returncode == 0, done.stderr
    assert template.current_version("iris") == template.current_version("housing") == 1


@pytest.fixture(scope="session")
def _trained_template(tmp_path_factory):
    folder = made_once(tmp_path_factory, "trained", trained_project)
    template = Project.__new__(Project)
    template.root, template.config_path = folder / "proj", folder / "proj" / "etc" / "retrainctl.yaml"
    template.config = base_config(iris=dict(IRIS), housing=dict(HOUSING))
    return template


@pytest.fixture
def trained(tmp_path, _trained_template):
    """A project whose first `check` already trained both models (v1 each, with their `initial`
    success records): the starting point of every test about what happens after, without two
    fits of its own."""
    return copy_project(_trained_template, tmp_path / "proj")


class Disk:
    """A small tmpfs mounted for one test (see the `full_disk` fixture)."""

    FILLER = ".filler"

    def __init__(self, path):
        self.path = path

    def fill(self):
        """Take every free byte with a filler file, down to the last byte of its last page."""
        fd = os.open(self.path / self.FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (1 << 16, 1 << 12, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
        finally:
            os.close(fd)

    def free(self):
        os.unlink(self.path / self.FILLER)


@pytest.fixture
def full_disk():
    """full_disk(path, size) mounts a tmpfs of `size` (mount's syntax: "1m") on `path` (created if
    missing, and empty), returns a Disk whose fill() leaves it without a free byte, and unmounts it
    after the test. Skips only where mounting is impossible (not root, no mount permission)."""
    mounted = []

    def mount(path, size):
        path.mkdir(parents=True, exist_ok=True)
        # The suite runs as root (CI does); without it these tests fail, never skip.
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs on {path} (the suite runs as root): {done.stderr.strip()}")
        mounted.append(path)
        return Disk(path)

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], check=True)


def staged_install(root):
    shutil.copytree("/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    done = subprocess.run(["make", "-C", str(REPO), "install", f"DESTDIR={root}", "INSTALL_PIP_FLAGS=--no-compile"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr


def copy_install(installed, dest):
    """A copy of the staged install that a test may change: the venv's files hard-linked (1 s
    instead of copying 1 GB; pip and `sed -i` replace a file rather than write into it, so the
    shared tree is never touched), everything else (config, data, units) copied."""
    venv = os.path.join(str(installed), "opt", "retrainctl", "venv") + os.sep

    def link_or_copy(src, dst):
        if src.startswith(venv):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(installed, dest, symlinks=True, copy_function=link_or_copy)
    return dest


@pytest.fixture(scope="session")
def installed(tmp_path_factory):
    """`make install DESTDIR=<tmp>`, once per run (it builds a venv: about 25 s of CPU, without byte-compiling). The
    DESTDIR starts as a target root with systemd in it (a copy of the system's unit folder), so
    `systemd-analyze verify --root=DESTDIR` resolves sysinit.target and the ExecStart paths."""
    return made_once(tmp_path_factory, "installed", staged_install)
