"""Every command through click's CliRunner: output shapes, exit codes, exact error text."""
import json
import subprocess
import sys

import click
import pytest
import yaml

from retrainctl.cli import main
from tests.conftest import REPO


def test_every_command_has_help():
    from click.testing import CliRunner

    runner = CliRunner()
    assert set(main.commands) >= {"check", "train", "trigger", "status", "history", "config", "pause", "resume",
                                  "rollback"}
    for name, command in main.commands.items():
        assert command.help and len(command.help.strip()) > 20, name
        r = runner.invoke(main, [name, "--help"])
        assert r.exit_code == 0, name
        assert f" {name} [OPTIONS]" in r.output, name


def test_config_prints_effective_yaml(project):
    r = project.cli("config")
    assert r.exit_code == 0, r.output
    eff = yaml.safe_load(r.stdout)
    assert eff["models"]["iris"]["check_interval"] == 0  # from defaults
    assert eff["models"]["iris"]["min_data_size"] == 50
    assert eff["models"]["housing"]["metric"] == "r2"
    assert eff["state_dir"] == str(project.state_dir)
    one = yaml.safe_load(project.cli("config", "--model", "housing").stdout)
    assert list(one["models"]) == ["housing"]


def test_config_invalid_exits_2(project):
    project.set_model("iris", estimator="sklearn.tree.NoSuchTree")
    r = project.cli("config")
    assert r.exit_code == 2
    assert r.stderr.strip() == (f"Error: {project.config_path}: models.iris.estimator: 'sklearn.tree' has no "
                                "'NoSuchTree'")
    r2 = project.cli("check")
    assert r2.exit_code == 2 and "models.iris.estimator" in r2.stderr


def test_unknown_model_everywhere_exits_2(project):
    for args in (["check", "nope"], ["status", "nope"], ["history", "--model", "nope"], ["pause", "nope"],
                 ["rollback", "nope"], ["config", "--model", "nope"], ["train", "nope"]):
        r = project.cli(*args)
        assert r.exit_code == 2, args
        assert f"model 'nope' is not configured in {project.config_path}" in r.stderr, args


def test_status_history_and_json_shapes(project):
    r = project.cli("check", "iris")
    assert r.exit_code == 0, r.output
    st = json.loads(project.cli("status", "--json").stdout)["models"]
    iris, housing = st
    for key in ("model_name", "due", "due_reasons", "model_version", "model_age_seconds", "data_rows",
                "data_changed", "paused", "last_event", "failures_in_row", "training_now"):
        assert key in iris, key
    assert (iris["model_version"], iris["data_rows"], iris["data_changed"], iris["due"]) == (1, 150, False, False)
    assert housing["model_version"] is None and housing["due"] is True
    assert housing["due_reasons"] == [{"trigger_type": "initial", "description": "no current model"}]
    assert iris["last_event"]["status"] == "success" and iris["training_now"] is False
    assert (iris["registry_champion_version"], iris["registry_in_sync"]) == (None, None)  # MLflow off

    table = project.cli("status").stdout.splitlines()
    assert table[0].split()[:4] == ["MODEL", "ROWS", "CHANGED", "VERSION"]
    assert table[1].split()[:4] == ["iris", "150", "no", "v1"]

    project.cli("pause", "housing")
    hist = json.loads(project.cli("history", "--json").stdout)["history"]
    assert [h["status"] for h in hist] == ["paused", "success"]  # newest first
    rec = hist[1]
    for key in ("model_name", "trigger_type", "trigger_time", "status", "duration", "data_hash", "description",
                "version", "score", "metric", "error"):
        assert key in rec, key
    assert json.loads(project.cli("history", "--json", "--limit", "1").stdout)["history"] == hist[:1]
    assert json.loads(project.cli("history", "--json", "--model", "iris").stdout)["history"] == hist[1:]
    assert project.cli("history", "--limit", "-1").exit_code == 2


def test_train_busy_model_exits_1(project):
    from retrainctl.base.locks import training_lock

    project.state_dir.mkdir(parents=True)
    lock = training_lock(str(project.state_dir), "iris")
    lock.acquire()
    try:
        r = project.cli("train", "iris")
        assert r.exit_code == 1 and r.stderr.strip() == "Error: iris: already being trained by another process"
        c = project.cli("check", "iris", "--json")
        row = json.loads(c.stdout)["models"][0]
        assert c.exit_code == 0 and row["result"] == "skipped: being trained by another process"
        assert json.loads(project.cli("status", "--json", "iris").stdout)["models"][0]["training_now"] is True
    finally:
        lock.release()
    assert project.history() == []


def test_rollback(trained):
    project = trained  # iris v1 from its first check
    for _ in range(2):  # versions of the same data and config: --force
        assert project.cli("train", "iris", "--force").exit_code == 0
    assert project.current_version("iris") == 3
    r = project.cli("rollback", "iris")
    assert r.exit_code == 0 and r.stdout.startswith("iris: rolled back from v3 to v2 by ")
    assert project.current_version("iris") == 2
    assert project.cli("rollback", "iris", "--to", "3").exit_code == 0 and project.current_version("iris") == 3
    missing = project.cli("rollback", "iris", "--to", "9")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == "Error: iris: version 9 does not exist (available: v1, v2, v3)"
    assert project.current_version("iris") == 3
    last = project.history()[-1]
    assert (last["trigger_type"], last["status"], last["version"], last["previous_version"]) == (
        "operator", "rolled_back", 3, 2)


def test_notify_command_and_callback(project, tmp_path):
    out = tmp_path / "events.json"
    script = tmp_path / "notify.py"
    script.write_text("import sys\nopen(sys.argv[1], 'a').write(sys.stdin.read() + '\\n')\n")
    project.config["notify"] = {"command": [sys.executable, str(script), str(out)], "timeout_seconds": 5}
    project.write_config()
    assert project.cli("train", "iris").exit_code == 0
    sent = json.loads(out.read_text())
    assert (sent["model_name"], sent["status"], sent["trigger_type"]) == ("iris", "success", "manual")

    import retrainctl

    calls = []
    cfg = retrainctl.load_config(str(project.config_path))
    retrainctl.train(cfg, "iris", force=True, notification_callback=lambda name, status, duration, **kw: calls.append(
        (name, status, duration > 0, kw["version"])))
    assert calls == [("iris", "success", True, 2)]


@pytest.mark.parametrize("command,message", [
    (["sh", "-c", "exit 3"], "notify command sh exited 3"),
    (["sleep", "30"], "notify command sleep timed out after 1s"),
    (["/nonexistent/notifier"], "notify command /nonexistent/notifier could not run"),
])
def test_failing_notifier_never_fails_the_retrain(project, command, message):
    project.config["notify"] = {"command": command, "timeout_seconds": 1}
    project.write_config()
    r = project.cli("train", "iris")
    assert r.exit_code == 0
    assert message in r.stderr
    assert project.history()[-1]["status"] == "success"


def test_log_format_json_and_log_file(project, tmp_path):
    log_file = tmp_path / "retrainctl.log"
    project.config["log_file"] = str(log_file)
    project.write_config()
    r = project.cli("--log-format", "json", "check", "iris")
    assert r.exit_code == 0
    lines = [json.loads(line) for line in r.stderr.splitlines()]
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert any(entry["message"].startswith("iris: promoted v1") for entry in lines)
    assert "iris: promoted v1" in log_file.read_text()


def test_log_file_in_a_folder_that_does_not_exist_yet(project):
    """`log_file` in a new folder is created as state_dir is (it made every command fail, even
    `config`); a path that cannot be a folder is one line and exit 2."""
    log_file = project.root / "var" / "log" / "retrainctl" / "retrainctl.log"
    project.config["log_file"] = str(log_file)
    project.write_config()
    shown = project.run("config")
    assert shown.returncode == 0, shown.stderr
    assert f"log_file: {log_file}" in shown.stdout
    trained = project.run("check", "iris")
    assert trained.returncode == 0, trained.stderr
    assert "iris: promoted v1" in log_file.read_text()

    (project.root / "var" / "blocked").write_text("a file, not a folder")
    project.config["log_file"] = str(project.root / "var" / "blocked" / "retrainctl.log")
    project.write_config()
    r = project.run("status")
    assert r.returncode == 2
    assert r.stderr == (f"Error: {project.root}/var/blocked/retrainctl.log: cannot open log_file: "
                        "Not a directory\n")


def test_quiet_hides_info(project):
    r = project.cli("-q", "check", "iris")
    assert r.exit_code == 0 and r.stderr == ""
    assert r.stdout.splitlines()[1].split()[0] == "iris"


def doc_sections(path):
    """{heading: text} of a Markdown page's `## ` sections."""
    sections, heading = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:]
            sections[heading] = ""
        elif heading is not None:
            sections[heading] += line + "\n"
    return sections


def test_docs_document_every_command_and_option():
    """Each command has a section of docs/commands.md naming it and every one of its options; the
    global options have theirs. The config keys are checked against their declaration by the
    configuration reference's own test (docs/configuration.md)."""
    sections = doc_sections(REPO / "docs" / "commands.md")
    for name, command in [(None, main), *main.commands.items()]:
        if name is None:
            text = sections["Global options"]
        else:
            found = [body for heading, body in sections.items() if f"`retrainctl {name}`" in heading]
            assert len(found) == 1, f"docs/commands.md has one section for retrainctl {name}"
            text = found[0]
        for param in command.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    assert f"`{opt}" in text, f"{name or 'global'}: {opt}"


def test_a_bad_estimator_param_stops_check_and_train_before_anything(project):
    """The models' import-time validation runs in the fit process started for the first fit; a
    bad value is still one line naming the key and exit 2, before anything is recorded or saved."""
    project.set_model("iris", params={"max_depth": -3})
    for args in (["check"], ["train", "iris"]):
        r = project.run(*args)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith(f"Error: {project.config_path}: models.iris.params: The 'max_depth' parameter "
                                   f"of DecisionTreeClassifier must be") and r.stderr.count("\n") == 1, r.stderr
    assert project.events() == [] and not (project.model_dir / "iris").exists()
    assert not (project.state_dir / "validated.json").exists()


def test_the_controller_of_a_first_training_does_not_import_scikit_learn(project):
    """check and train leave the ML imports to the fit processes (the validation of the models
    included): the controller's start-up is not the cost of importing scikit-learn."""
    code = ("import sys\nfrom retrainctl.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print('exit', e.code, 'sklearn' in sys.modules, 'scipy' in sys.modules)\n")
    for args in (["check"], ["train", "housing"]):
        r = subprocess.run([sys.executable, "-c", code, "-q", "--config", str(project.config_path), *args],
                           capture_output=True, text=True, cwd="/", timeout=300)
        assert r.stdout.splitlines()[-1] == "exit 0 False False", (r.stdout, r.stderr)
    assert (project.current_version("iris"), project.current_version("housing")) == (1, 1)
