"""A full disk must never lie: on a real, size-limited tmpfs under the state dir, an append is
written whole or fails with exit 1 and one line naming the log and the cause, and the caches
beside it (summary.json, checks.json) never fail a command."""
import json
import os
import resource

import pytest

PAGE = resource.getpagesize()


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


def test_a_full_disk_never_fails_a_check_over_its_caches(project, full_disk):
    """Nothing to train, so a check only reads the log and writes caches: the schedule cache it
    cannot write is a warning, the summary it cannot refresh is silent, the exit code is 0."""
    disk = full_disk(project.state_dir, "1m")
    assert project.run("check").returncode == 0
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
