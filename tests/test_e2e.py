"""End to end through the installed console script, run from another working directory."""
import json
import os
import time


def test_first_run_trains_both_then_nothing(project):
    first = project.run("check")
    assert first.returncode == 0, first.stderr
    assert [(e["model_name"], e["trigger_type"], e["status"]) for e in project.history()] == [
        ("iris", "initial", "success"), ("housing", "initial", "success")]
    assert project.current_version("iris") == 1 and project.current_version("housing") == 1
    lines = first.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "DUE", "WHY", "ACTION", "RESULT"]
    assert lines[1].split()[:4] == ["iris", "yes", "initial", "train"]

    second = project.run("check", "--json")
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    assert [(m["model_name"], m["due"], m["action"]) for m in out["models"]] == [
        ("iris", False, "none"), ("housing", False, "none")]
    assert len(project.history()) == 2
