"""End to end through the installed console script, run from another working directory (/),
on a temporary copy of the data, the way cron and systemd run it."""
import json
import os
import subprocess
import sys

import joblib
import pandas as pd

from tests.conftest import RETRAINCTL


def summary(project, model=None):
    return [(e["model_name"], e["trigger_type"], e["status"]) for e in project.history(model)]


def test_first_run_trains_both_then_nothing(project):
    first = project.run("check")
    assert first.returncode == 0, first.stderr
    assert summary(project) == [("iris", "initial", "success"), ("housing", "initial", "success")]
    assert project.current_version("iris") == 1 and project.current_version("housing") == 1
    lines = first.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "DUE", "WHY", "ACTION", "RESULT"]
    assert lines[1].split()[:6] == ["iris", "yes", "initial", "train", "promoted", "v1"]
    assert "Traceback" not in first.stderr

    second = project.run("check", "--json")
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    assert [(m["model_name"], m["due"], m["action"]) for m in out["models"]] == [
        ("iris", False, "none"), ("housing", False, "none")]
    assert len(project.history()) == 2


def test_append_retrains_only_that_model_and_touch_does_nothing(trained):
    project = trained
    os.utime(project.data("iris"))
    touched = project.run("check")
    assert touched.returncode == 0 and len(project.history()) == 2

    project.append_rows("housing", 20)
    r = project.run("check")
    assert r.returncode == 0, r.stderr
    assert summary(project)[2:] == [("housing", "data_change", "success")]
    ev = project.history()[-1]
    assert ev["description"].startswith("data file changed: data/raw/housing.csv")
    assert ev["version"] == 2 and project.current_version("housing") == 2 and project.current_version("iris") == 1


def test_manual_train_and_trigger_alias(project):
    r = project.run("train", "iris", "--reason", "new labels from QA", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["event"]["trigger_type"] == "manual" and out["event"]["status"] == "success"
    assert out["event"]["description"].startswith("new labels from QA")
    same = project.run("trigger", "iris")  # the same data and config: nothing to train on
    assert same.returncode == 0
    assert same.stdout == ("iris: unchanged: the training data and config have not changed since v1: a retrain "
                           "would only copy it (--force trains anyway)\n")
    r2 = project.run("trigger", "iris", "--force")
    assert r2.returncode == 0 and r2.stdout.startswith("iris: promoted v2")
    assert summary(project) == [("iris", "manual", "success"), ("iris", "manual", "skipped"),
                                ("iris", "manual", "success")]
    assert project.history()[1]["error_type"] == "unchanged"


def test_too_few_rows_gives_one_skipped_event(project):
    project.set_model("iris", min_data_size=1000)
    for _ in range(3):
        r = project.run("check", "iris")
        assert r.returncode == 0, r.stderr
    assert summary(project) == [("iris", "initial", "skipped")]
    assert project.history()[0]["error"] == "data/raw/iris.csv has only 150 rows, min_data_size is 1000"
    assert project.current_version("iris") is None
    manual = project.run("train", "iris")
    assert manual.returncode == 1 and "min_data_size is 1000" in manual.stdout


def test_pause_resume_and_auto_retraining_off(project):
    r = project.run("pause", "iris")
    assert r.returncode == 0 and r.stdout == "iris: paused\n"
    assert project.run("pause", "iris").stdout == "iris: already paused\n"
    check = project.run("check", "--json")
    rows = {m["model_name"]: m for m in json.loads(check.stdout)["models"]}
    assert rows["iris"]["action"] == "hold" and rows["iris"]["note"] == "paused"
    assert rows["housing"]["action"] == "train"
    assert project.current_version("iris") is None
    status = json.loads(project.run("status", "--json").stdout)["models"]
    assert [s["paused"] for s in status] == [True, False]
    assert project.run("resume").stdout == "iris: resumed\nhousing: already resumed\n"
    assert project.run("check", "iris").returncode == 0
    assert summary(project, "iris") == [("iris", "operator", "paused"), ("iris", "operator", "resumed"),
                                        ("iris", "initial", "success")]

    project.set_model("iris", enable_auto_retraining=False)
    project.append_rows("iris", 10)
    out = json.loads(project.run("check", "iris", "--json").stdout)["models"][0]
    assert (out["action"], out["note"]) == ("hold", "enable_auto_retraining is false")
    assert project.run("train", "iris").returncode == 0
    assert summary(project, "iris")[-1] == ("iris", "manual", "success")


def test_model_age_trigger(trained):
    project = trained
    project.set_model("iris", max_model_age_hours=0.0001)  # 0.36 s
    import time

    time.sleep(0.5)
    r = project.run("check", "iris")
    assert r.returncode == 0, r.stderr
    # The data has not changed: a retrain would only copy v1. Recorded once, and the age clock restarts.
    assert summary(project)[-1] == ("iris", "model_age", "skipped")
    last = project.history()[-1]
    assert "(max_model_age_hours 0.0001)" in last["description"] and last["error_type"] == "unchanged"
    assert project.current_version("iris") == 1
    project.append_rows("iris", 5)
    time.sleep(0.5)
    r = project.run("check", "iris")
    assert r.returncode == 0, r.stderr
    assert summary(project)[-1] == ("iris", "data_change", "success")
    assert "(max_model_age_hours 0.0001)" in project.history()[-1]["description"]


def test_check_interval_holds_across_runs(trained):
    project = trained  # iris v1 from the first check, which also started its check_interval
    project.config["defaults"]["check_interval"] = 3600
    project.write_config()
    assert project.run("check", "iris").returncode == 0
    project.append_rows("iris", 5)
    r = project.run("check", "iris", "--json")
    row = json.loads(r.stdout)["models"][0]
    assert row["action"] == "wait" and row["note"].endswith("(check_interval 3600s)")
    assert len(project.history()) == 2  # the first check's two records, nothing since
    # a dry run still tells the truth about the triggers only once the interval has passed
    status = json.loads(project.run("status", "--json").stdout)["models"]
    assert status[0]["due"] is True and status[0]["due_reasons"][0]["trigger_type"] == "data_change"


def test_dry_run_exit_codes_and_no_side_effects(project):
    project.config["models"].pop("housing")  # iris alone makes every point; housing would only add a fit
    project.write_config()
    r = project.run("check", "--dry-run")
    assert r.returncode == 3, r.stderr
    assert project.history() == [] and project.current_version("iris") is None
    assert project.run("check").returncode == 0
    assert project.run("check", "--dry-run").returncode == 0


def test_missing_data_file_fails_that_model_only(project):
    project.data("iris").unlink()
    r = project.run("check")
    assert r.returncode == 1
    assert f"{project.data('iris')}: data file not found" in r.stderr
    assert "Traceback" not in r.stderr
    assert summary(project) == [("iris", "data_change", "failure"), ("housing", "initial", "success")]
    assert project.history()[0]["error_type"] == "data_error"
    again = project.run("check")
    assert again.returncode == 1 and len(project.history()) == 2  # recorded once, not every run


def test_bad_data_files_fail_with_the_file_named_and_keep_the_live_model(trained):
    project = trained
    model_bytes = (project.model_dir / "iris" / "v1" / "model.joblib").read_bytes()
    path = project.data("iris")
    header = path.read_text().splitlines()[0]
    cases = [
        ("empty", b"", "skipped", "has only 0 rows"),
        ("header only", (header + "\n").encode(), "skipped", "has only 0 rows"),
        ("binary", b"\x00\x01\x02\n" * 80, "failure", f"{path}: not a text CSV file (binary content)"),
        ("no target", path.read_text().replace("Species", "Kind").encode(), "failure",
         f"{path}: target column 'Species' not found"),
        ("a column twice", "\n".join(line + "," + line.split(",")[-1] for line in path.read_text().splitlines()).encode(),
         "failure", f"{path}: column(s) named more than once in the header: Species"),
    ]
    for name, content, status, message in cases:
        path.write_bytes(content)
        r = project.run("train", "iris")
        assert r.returncode == 1, name
        last = project.history()[-1]
        assert last["status"] == status, name
        assert message in (last["error"] or ""), (name, last)
        assert message in r.stdout + r.stderr, name
        assert "Traceback" not in r.stderr
        assert project.current_version("iris") == 1
        assert (project.model_dir / "iris" / "v1" / "model.joblib").read_bytes() == model_bytes


def test_usage_and_config_errors_exit_2(project):
    r = project.run("train", "irsi")
    assert r.returncode == 2
    assert r.stderr.strip() == f"Error: model 'irsi' is not configured in {project.config_path}; did you mean 'iris'?"
    project.config_path.write_text("models:\n  iris: [\n")
    r = project.run("check")
    assert r.returncode == 2 and "YAML syntax error (line 3, column 1)" in r.stderr and "Traceback" not in r.stderr
    r = project.run("status")
    assert r.returncode == 2


def test_saved_model_is_a_whole_pipeline(trained):
    project = trained
    raw = pd.read_csv(project.data("housing"))
    assert raw["total_bedrooms"].isna().any()  # the gaps really are in the test data
    model = joblib.load(project.model_dir / "housing" / "current" / "model.joblib")
    pred = model.predict(raw.drop(columns=["median_house_value"]).head(50))
    assert len(pred) == 50
    meta = json.loads((project.model_dir / "housing" / "current" / "metadata.json").read_text())
    assert meta["version"] == 1 and meta["metric"] == "r2" and "ocean_proximity" in meta["features"]
    import hashlib

    assert meta["sha256"] == hashlib.sha256((project.model_dir / "housing" / "v1" / "model.joblib").read_bytes()).hexdigest()
    iris_meta = json.loads((project.model_dir / "iris" / "current" / "metadata.json").read_text())
    assert "Id" not in iris_meta["features"] and iris_meta["classes"] == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]


def test_keeps_the_last_versions_never_current(trained):
    project = trained  # v1 from the first check, then v2, v3, v4
    project.set_model("iris", keep_versions=2)
    for _ in range(3):
        assert project.run("train", "iris", "--force").returncode == 0
    assert sorted(os.listdir(project.model_dir / "iris")) == ["current", "v3", "v4"]


def test_no_op_check_imports_nothing_heavy(project):
    assert project.run("check").returncode == 0
    code = ("import sys\nfrom retrainctl.cli import main\n"
            "try:\n    main(['--config', sys.argv[1], 'check'])\nexcept SystemExit as e:\n    code = e.code\n"
            "heavy = [m for m in ('pandas', 'sklearn', 'numpy', 'mlflow', 'scipy') if m in sys.modules]\n"
            "print(code, heavy)\n")
    r = subprocess.run([sys.executable, "-c", code, str(project.config_path)], capture_output=True, text=True, cwd="/")
    assert r.stdout.strip().splitlines()[-1] == "0 []", r.stdout + r.stderr


def test_python_dash_m_and_env_config(project):
    r = subprocess.run([sys.executable, "-m", "retrainctl", "history", "--json"], capture_output=True, text=True,
                       cwd="/", env=dict(os.environ, RETRAINCTL_CONFIG=str(project.config_path)))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"schema": 1, "history": []}


def test_runs_from_the_config_folder_and_home_alike(project, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    r = subprocess.run([RETRAINCTL, "--config", "etc/retrainctl.yaml", "check", "iris"], cwd=project.root,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r2 = subprocess.run([RETRAINCTL, "status", "--json"], cwd=home, capture_output=True, text=True,
                        env=dict(os.environ, RETRAINCTL_CONFIG=str(project.config_path), HOME=str(home)))
    assert json.loads(r2.stdout)["models"][0]["model_version"] == 1
    assert not (home / "var").exists()


def test_dry_run_ignores_check_interval_and_a_missing_file_is_never_hidden(trained):
    project = trained
    project.config["defaults"]["check_interval"] = 3600
    project.write_config()
    assert project.run("check", "iris").returncode == 0
    project.append_rows("iris", 5)
    assert project.run("check", "iris").returncode == 0  # inside the interval: waits
    dry = project.run("check", "iris", "--dry-run", "--json")
    assert dry.returncode == 3  # but a dry run answers "is anything due now?"
    assert json.loads(dry.stdout)["models"][0]["due_reasons"][0]["trigger_type"] == "data_change"

    project.data("iris").unlink()
    for _ in range(2):  # not hidden by check_interval, and reported on every run
        r = project.run("check", "iris")
        assert r.returncode == 1 and "data file not found" in r.stderr


def test_rejected_candidates_never_push_out_the_rollback_target(trained):
    project = trained  # v1 from the first check
    project.set_model("iris", keep_versions=2)
    assert project.run("train", "iris", "--force").returncode == 0  # v2 current, v1 the rollback target
    project.set_model("iris", estimator="sklearn.dummy.DummyClassifier", params={})
    for _ in range(3):
        r = project.run("train", "iris")
        assert r.returncode == 0 and "rejected" in r.stdout
    assert sorted(os.listdir(project.model_dir / "iris")) == ["current", "v1", "v2", "v4", "v5"]
    assert project.run("rollback", "iris").returncode == 0 and project.current_version("iris") == 1


def test_first_candidate_rejected_is_not_retrained_on_the_same_data(project, tmp_path):
    (tmp_path / "onlysetosa.py").write_text(
        "from sklearn.dummy import DummyClassifier\n"
        "def fit(X, y, params):\n"
        "    return DummyClassifier(strategy='constant', constant='Iris-setosa').fit(X[:1], ['Iris-setosa'])\n")
    project.set_model("iris", estimator=None, trainer="onlysetosa:fit", params={})
    env = {"PYTHONPATH": str(tmp_path)}
    first = project.run("check", "iris", env=env)
    assert first.returncode == 0 and "sanity check failed" in first.stdout
    again = project.run("check", "iris", "--json", env=env)
    row = json.loads(again.stdout)["models"][0]
    assert (row["action"], row["due"]) == ("none", False)
    assert [e["status"] for e in project.history()] == ["rejected"]
