"""A full disk must never lie: on a real, size-limited tmpfs under the state dir, an append is
written whole or fails with exit 1 and one line naming the log and the cause, and the caches
beside it (summary.json, checks.json) never fail a command."""
import json
import os
import resource
import shutil

import pytest

from tests.conftest import IRIS, REPO

ENV = {"PYTHONPATH": str(REPO)}  # the test trainer lives in tests/slowfit.py

PAGE = resource.getpagesize()


def onto_tmpfs(full_disk, path, size):
    """full_disk(path, size) for a folder the trained copy already filled: its files are moved
    onto the new tmpfs (they take the same room there as if the first check had written them)."""
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    disk = full_disk(path, size)
    shutil.copytree(aside, path, symlinks=True, dirs_exist_ok=True)
    shutil.rmtree(aside)
    return disk


def paused(project):
    result = project.run("status", "--json")
    assert result.returncode == 0, result.stderr
    return {r["model_name"]: r["paused"] for r in json.loads(result.stdout)["models"]}


def end_short_of_a_page(log, room):
    """Pad the log with a record so that it ends `room` bytes before a page boundary: tmpfs
    allocates whole pages, so a longer record written next gets exactly `room` bytes in."""
    base = len(b'{"model_name": "padding", "pad": ""}\n')
    size = os.path.getsize(log)
    pad = (-(size + base + room)) % PAGE
    with open(log, "ab") as fh:
        fh.write(json.dumps({"model_name": "padding", "pad": "x" * pad}).encode() + b"\n")
    assert os.path.getsize(log) % PAGE == (PAGE - room) % PAGE


@pytest.mark.parametrize("room", [0, 40], ids=["no byte free", "short write"])
def test_resume_on_a_full_disk_fails_loudly_and_records_nothing(project, full_disk, room):
    disk = full_disk(project.state_dir, "256k")
    assert project.run("pause", "iris").returncode == 0
    log = project.state_dir / "events.jsonl"
    end_short_of_a_page(log, room)
    before = log.read_bytes()
    disk.fill()

    result = project.run("resume", "iris")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == f"Error: {log}: cannot append to the state log: No space left on device\n"
    assert log.read_bytes() == before  # the part the disk took was cut back under the lock
    assert paused(project) == {"iris": True, "housing": False}  # status runs on the full disk too

    disk.free()
    result = project.run("resume", "iris")
    assert (result.returncode, result.stdout) == (0, "iris: resumed\n"), result.stderr
    assert paused(project) == {"iris": False, "housing": False}
    assert [e["status"] for e in project.events() if e["model_name"] == "iris"] == ["paused", "resumed"]


def test_a_full_disk_never_fails_a_check_over_its_caches(trained, full_disk):
    """Nothing to train, so a check only reads the log and writes caches: the schedule cache it
    cannot write is a warning, the summary it cannot refresh is silent, the exit code is 0."""
    project = trained  # after its first check, the state dir moved onto the tmpfs
    disk = onto_tmpfs(full_disk, project.state_dir, "1m")
    (project.state_dir / "summary.json").unlink(missing_ok=True)
    os.unlink(project.state_dir / "checks.json")
    disk.fill()

    result = project.run("check")
    assert result.returncode == 0, result.stderr
    assert "iris" in result.stdout and "housing" in result.stdout
    checks = project.state_dir / "checks.json"
    assert f"{checks}: not updated: No space left on device" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not (project.state_dir / "summary.json").exists() and not checks.exists()
    assert paused(project) == {"iris": False, "housing": False}


def ends(project):
    """(model, status, error_type) of every attempt's end, oldest first (the padding skipped)."""
    return [(e["model_name"], e["status"], e.get("error_type")) for e in project.events()
            if e["model_name"] != "padding" and e["status"] != "started"]


def table(stdout):
    """The check's table: {model: (action, result)}."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["MODEL", "DUE", "WHY", "ACTION", "RESULT"], stdout
    return {line.split()[0]: (line.split()[3], " ".join(line.split()[4:])) for line in lines[1:]}


def test_side_files_on_a_full_disk_never_abort_a_check(trained, full_disk):
    """Both models due, the state dir without a free page (the log's last page still has room):
    the `running` side files and the caches warn, both models train and are recorded, and
    nothing is left open for the next run to call an interrupted attempt."""
    project = trained  # after its first check, the state dir moved onto the tmpfs
    disk = onto_tmpfs(full_disk, project.state_dir, "1m")
    project.append_rows("iris", 5)
    project.append_rows("housing", 5)
    end_short_of_a_page(project.state_dir / "events.jsonl", PAGE - 1)
    disk.fill()

    result = project.run("check")
    assert result.returncode == 0, result.stderr
    trained = table(result.stdout)
    assert list(trained) == ["iris", "housing"] and {action for action, _ in trained.values()} == {"train"}
    assert trained["iris"][1].startswith("promoted v2 (accuracy ")
    assert trained["housing"][1].startswith("promoted v2 (r2 ")
    running = project.state_dir / "running"
    for path in (running / "iris.json", running / "housing.json", project.state_dir / "checks.json"):
        assert f"{path}: not updated: No space left on device" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    status = project.run("status", "--json")
    assert status.returncode == 0, status.stderr
    assert [(r["model_version"], r["training_now"]) for r in json.loads(status.stdout)["models"]] == [(2, False)] * 2

    disk.free()
    assert project.run("check").returncode == 0
    assert ends(project) == [("iris", "success", None), ("housing", "success", None)] * 2  # nothing interrupted


def test_a_disk_filling_during_a_fit_fails_each_model_alone_as_disk_full(trained, full_disk):
    """State and models on one tmpfs that iris's trainer fills: iris's save fails and is
    recorded as `disk_full` naming its folder, housing is still fitted (and meets the same full
    disk), the table is printed, exit 1; once space is back nothing is called interrupted."""
    project = trained  # after its first check, var/ (state and models) moved onto the tmpfs
    var = project.root / "var"
    disk = onto_tmpfs(full_disk, var, "4m")
    project.set_model("iris", retry_backoff_seconds=0)
    project.set_model("housing", retry_backoff_seconds=0)
    project.set_model("iris", estimator=None, trainer="tests.slowfit:fill_disk", params={"disk": str(var)})
    project.append_rows("iris", 5)
    project.append_rows("housing", 5)
    end_short_of_a_page(project.state_dir / "events.jsonl", PAGE - 1)

    result = project.run("check", env=ENV)
    assert result.returncode == 1, result.stderr
    failed = table(result.stdout)
    assert set(failed) == {"iris", "housing"} and {action for action, _ in failed.values()} == {"train"}
    records = {e["model_name"]: e for e in project.events()[-2:]}
    for name in ("iris", "housing"):
        error = f"{project.model_dir / name}"
        assert records[name]["status"] == "failure" and records[name]["error_type"] == "disk_full"
        assert records[name]["error"].startswith(error) and records[name]["error"].endswith(": No space left on device")
        assert f"{name}: {records[name]['error']}\n" in result.stderr
        assert failed[name][1] == f"failed: {records[name]['error']}"
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr

    disk.free()
    project.set_model("iris", estimator=IRIS["estimator"], trainer=None, params=IRIS["params"])
    again = project.run("check", env=ENV)
    assert again.returncode == 0, again.stderr
    assert ends(project) == [("iris", "success", None), ("housing", "success", None),
                             ("iris", "failure", "disk_full"), ("housing", "failure", "disk_full"),
                             ("iris", "success", None), ("housing", "success", None)]
