"""The CI step of docs/operations.md, run as written: `check --dry-run` decides, `train MODEL --json` trains."""
import re
import subprocess

from conftest import BIN, REPO


def ci_step():
    page = (REPO / "docs" / "operations.md").read_text()
    found = re.search(r"<!-- ci-step -->\n```sh\n(.*?)```", page, re.S)
    assert found, "docs/operations.md has the CI step block"
    return found[1]


def run_ci_step(project, cwd):
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(cwd), "RETRAINCTL_CONFIG": str(project.config_path)}
    return subprocess.run(["/bin/sh", "-c", ci_step()], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_ci_step_trains_what_is_due_then_nothing(project, tmp_path):
    first = run_ci_step(project, tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [["iris:", "success", "v1"], ["housing:", "success", "v1"]]
    assert re.fullmatch(r"iris: success v1 accuracy=0\.\d+", lines[0])
    assert [(e["model_name"], e["trigger_type"], e["description"].split(";")[0]) for e in project.history()] == [
        ("iris", "manual", "CI: due (initial)"), ("housing", "manual", "CI: due (initial)")]

    second = run_ci_step(project, tmp_path)
    assert (second.returncode, second.stdout) == (0, "nothing due\n")
    assert len(project.history()) == 2


def test_ci_step_fails_when_a_training_fails(project, tmp_path):
    project.set_model("housing", target="no_such_column")
    done = run_ci_step(project, tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith("iris: success v1 ")
    assert "housing: FAILED " in done.stderr and "no_such_column" in done.stderr
