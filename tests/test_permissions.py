"""Paths an unprivileged service user cannot read or write give a one-line error naming the
path and the documented exit code. Root reads everything, so these run the command as `nobody`
(setpriv) with the system Python, a readable copy of this checkout's package and the venv's
packages on its path: the checkout may sit in a folder only its owner can enter (a home
directory, /root, a `mktemp -d` folder), so `nobody` gets them from a folder of its own."""
import json
import os
import shutil
import site
import subprocess
import sys
import tempfile

import pytest
import yaml

from tests.conftest import IRIS, REPO, base_config

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def nobody_path():
    """PYTHONPATH for `nobody`: a copy of the retrainctl package and the venv's site-packages,
    bind-mounted (hard-linked where mounting is not allowed) under a folder anyone may enter."""
    root = tempfile.mkdtemp(prefix="retrainctl-nobody-", dir="/tmp")
    os.chmod(root, 0o755)
    shutil.copytree(REPO / "retrainctl", os.path.join(root, "code", "retrainctl"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    mounted, entries = [], [os.path.join(root, "code")]
    for i, packages in enumerate(p for p in site.getsitepackages() if os.path.isdir(p)):
        target = os.path.join(root, f"site{i}")
        os.mkdir(target)
        if subprocess.run(["mount", "--bind", "-o", "ro", packages, target], capture_output=True).returncode == 0:
            mounted.append(target)
        else:  # no mount here: the same files, hard-linked (copied across file systems)
            os.rmdir(target)
            shutil.copytree(packages, target, symlinks=True, copy_function=_link_or_copy)
        entries.append(target)
    for folder, dirs, files in os.walk(os.path.join(root, "code")):
        for name in dirs + files:
            os.chmod(os.path.join(folder, name), 0o755 if name in dirs else 0o644)
    os.chmod(os.path.join(root, "code"), 0o755)
    yield os.pathsep.join(entries)
    for target in mounted:
        subprocess.run(["umount", target], check=True)
    shutil.rmtree(root)


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@pytest.fixture
def open_project():
    """A project folder that `nobody` can traverse (pytest's tmp_path is private to root)."""
    root = tempfile.mkdtemp(prefix="retrainctl-perm-", dir="/tmp")
    os.chmod(root, 0o755)
    for sub in ("etc", "data", "var"):
        os.makedirs(os.path.join(root, sub), mode=0o755)
        os.chmod(os.path.join(root, sub), 0o755)
    shutil.copy(REPO / "data" / "raw" / "iris.csv", os.path.join(root, "data", "iris.csv"))
    config = base_config(iris=dict(IRIS, data_path="data/iris.csv"))
    config["mlflow"] = {"enabled": False}
    path = os.path.join(root, "etc", "retrainctl.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(config, fh)
    for f in (path, os.path.join(root, "data", "iris.csv")):
        os.chmod(f, 0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def as_nobody(nobody_path):
    return lambda root, *args: _as_nobody(nobody_path, root, *args)


def _as_nobody(python_path, root, *args):
    version = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    assert version == str(tuple(sys.version_info[:2])), "the system Python must match the venv's to load its packages"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": python_path}
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", SYSTEM_PYTHON,
                           "-m", "retrainctl", "--config", os.path.join(root, "etc", "retrainctl.yaml"), *args],
                          cwd="/", env=env, capture_output=True, text=True, timeout=120)


def test_unreadable_config(open_project, as_nobody):
    path = os.path.join(open_project, "etc", "retrainctl.yaml")
    os.chmod(path, 0o600)
    r = as_nobody(open_project, "check")
    assert r.returncode == 2
    assert r.stderr.strip() == f"Error: {path}: permission denied reading the config file"


def test_state_dir_not_writable(open_project, as_nobody):
    r = as_nobody(open_project, "check")
    assert r.returncode == 1
    state = os.path.join(open_project, "var", "state")
    assert r.stderr.strip().splitlines()[-1] == (
        f"Error: {state}: cannot create the state directory: Permission denied")
    assert not os.path.exists(state)


def test_unreadable_data_file(open_project, as_nobody):
    os.chown(os.path.join(open_project, "var"), NOBODY, NOBODY)
    data = os.path.join(open_project, "data", "iris.csv")
    os.chmod(data, 0o600)
    r = as_nobody(open_project, "check")
    assert r.returncode == 1
    assert f"{data}: permission denied" in r.stderr and "Traceback" not in r.stderr
    os.chmod(data, 0o644)
    ok = as_nobody(open_project, "check")  # readable again: the same user trains it
    assert ok.returncode == 0, ok.stderr
    assert os.stat(os.path.join(open_project, "var", "models", "iris", "v1", "model.joblib")).st_uid == NOBODY


def state_files(root):
    """{name: mtime_ns} of the state dir's files: what a read-only user must leave as it was."""
    state = os.path.join(root, "var", "state")
    return {name: os.stat(os.path.join(state, name)).st_mtime_ns for name in os.listdir(state)}


def trained_read_only(root):
    """Train iris as root, then leave the state and model folders readable by all, writable by root only."""
    from tests.conftest import RETRAINCTL

    config = os.path.join(root, "etc", "retrainctl.yaml")
    trained = subprocess.run([RETRAINCTL, "--config", config, "check"], cwd="/", capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    for folder, dirs, files in os.walk(os.path.join(root, "var")):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return state_files(root)


def test_read_only_state_dir_still_answers_status_and_metrics(open_project, as_nobody):
    """An operator (or a monitoring user) who may read the state but not write it: `status`,
    `history` and `metrics` answer; nothing there needs a write, not even a lock probe."""
    before = trained_read_only(open_project)

    status = as_nobody(open_project, "status", "--json")
    assert status.returncode == 0, status.stderr
    [row] = json.loads(status.stdout)["models"]
    assert (row["model_name"], row["model_version"], row["training_now"]) == ("iris", 1, False)
    assert as_nobody(open_project, "history").returncode == 0
    metrics = as_nobody(open_project, "metrics")
    assert metrics.returncode == 0, metrics.stderr
    assert 'model_retraining_success_total{model_name="iris"} 1.0' in metrics.stdout
    assert state_files(open_project) == before


def test_dry_run_answers_on_a_read_only_state_dir(open_project, as_nobody):
    """A dry run is a question: on a state dir it may not write it answers (exit 0 nothing due,
    3 due) and writes nothing there, no lock file, no cache."""
    before = trained_read_only(open_project)
    quiet = as_nobody(open_project, "check", "--dry-run")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.splitlines()[1].split() == ["iris", "no", "-", "none", "up", "to", "date"]
    with open(os.path.join(open_project, "data", "iris.csv"), "a") as fh:
        fh.write("151,5.0,3.4,1.5,0.2,Iris-setosa\n")
    due = as_nobody(open_project, "check", "--dry-run", "--json")
    assert due.returncode == 3, due.stderr
    [model] = json.loads(due.stdout)["models"]
    assert (model["model_name"], model["due"], model["due_reasons"][0]["trigger_type"]) == ("iris", True, "data_change")
    assert "Traceback" not in due.stderr and "not writable" not in due.stderr
    assert state_files(open_project) == before


def test_dry_run_without_a_state_dir_creates_none(open_project, as_nobody):
    r = as_nobody(open_project, "check", "--dry-run", "--json")
    assert r.returncode == 3, r.stderr
    assert [(m["model_name"], m["action"]) for m in json.loads(r.stdout)["models"]] == [("iris", "train")]
    assert not os.path.exists(os.path.join(open_project, "var", "state"))
