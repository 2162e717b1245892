"""`--json` for machines: every output carries `"schema": N` and validates against the JSON Schema
shipped for it (retrainctl/schemas/<output>.json, also in a non-editable install); with `--json`
an error is a JSON object on stdout with the command's exit code. Through the installed command."""
import copy
import json
import subprocess

import jsonschema
import pytest

from conftest import REPO, RETRAINCTL
from retrainctl.schemas import VERSIONS, build

SCHEMAS = REPO / "retrainctl" / "schemas"
OUTPUTS = ("check", "train", "status", "history", "rollback", "error")


def schema(output):
    return json.loads((SCHEMAS / f"{output}.json").read_text())


def problems(output, data):
    """What is wrong with `data` as `output`'s JSON, one line per error (none: valid)."""
    validator = jsonschema.Draft202012Validator(schema(output),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return sorted(f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data))


def valid(output, done):
    """The parsed stdout of a --json run, after checking it against the output's schema."""
    data = json.loads(done.stdout)
    assert problems(output, data) == []
    assert data["schema"] == VERSIONS[output] == 1
    return data


def records_in(output, data):
    """The history records an output holds."""
    if output == "history":
        return data["history"]
    if output == "rollback":
        return [{k: v for k, v in data.items() if k != "schema"}]
    if output == "status":
        return [m["last_event"] for m in data["models"] if m["last_event"]]
    outcomes = data["models"] if output == "check" else [data]
    return [o["event"] for o in outcomes if o["event"]]


def assert_records_documented(output, data):
    """Records are open (the log may hold another version's keys), so the schema alone would let an
    undocumented key through: every key this version writes must be described."""
    documented = set(build.RECORD_KEYS)
    for record in records_in(output, data):
        assert set(record) <= documented, set(record) - documented


def test_schema_files_are_valid_draft_2020_12_and_current():
    for output in OUTPUTS:
        s = schema(output)
        assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(s)
        for shape in s.get("oneOf", [s]):  # train and rollback: one model, or several
            assert shape["properties"]["schema"] == {"const": VERSIONS[output],
                                                     "description": shape["properties"]["schema"]["description"]}
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(f"{o}.json" for o in OUTPUTS)
    assert build.main(["--check"]) == 0, "stale: run `make docs` (python -m retrainctl.schemas.build)"


def test_every_output_of_a_retraining_cycle_matches_its_schema(trained):
    project = trained  # iris and housing v1
    status = valid("status", project.run("status", "--json"))
    assert [m["model_name"] for m in status["models"]] == ["iris", "housing"]
    assert status["models"][0]["columns"]["PetalLengthCm"]["used"] is True

    project.append_rows("iris", 30)
    dry = project.run("check", "--dry-run", "--json")
    assert dry.returncode == 3, dry.stderr
    data = valid("check", dry)
    assert (data["dry_run"], data["exit_code"], [m["action"] for m in data["models"]]) == (True, 3, ["train", "none"])

    done = project.run("check", "--json")
    assert done.returncode == 0, done.stderr
    data = valid("check", done)
    assert [(m["result"].split(" ")[0], m["event"] and m["event"]["version"]) for m in data["models"]] == [
        ("promoted", 2), ("up", None)]
    assert_records_documented("check", data)

    train = project.run("train", "housing", "--force", "--reason", "relabelled", "--json")
    assert train.returncode == 0, train.stderr
    data = valid("train", train)
    assert (data["event"]["version"], data["event"]["forced"], data["due_reasons"][0]["description"]) == (
        2, True, "relabelled")
    assert_records_documented("train", data)

    back = project.run("rollback", "iris", "--json")
    assert back.returncode == 0, back.stderr
    data = valid("rollback", back)
    assert (data["status"], data["version"], data["previous_version"]) == ("rolled_back", 1, 2)
    assert_records_documented("rollback", data)

    assert project.run("pause", "housing").returncode == 0
    history = project.run("history", "--json", "--limit", "0")
    assert history.returncode == 0, history.stderr
    data = valid("history", history)
    assert [(r["model_name"], r["status"]) for r in data["history"]] == [
        ("housing", "paused"), ("iris", "rolled_back"), ("housing", "success"), ("iris", "success"),
        ("housing", "success"), ("iris", "success")]
    assert_records_documented("history", data)
    data = valid("status", project.run("status", "--json"))
    assert [(m["paused"], m["last_event"]["status"]) for m in data["models"]] == [(False, "rolled_back"),
                                                                                (True, "paused")]
    assert_records_documented("status", data)


def test_status_quality_and_running_keys_match_the_schema(trained):
    """The performance and drift evidence, and where a running fit executes: the keys that are
    null on a fresh project."""
    from retrainctl.base.locks import training_lock
    from retrainctl.state.sidecars import mark_running

    project = trained
    project.set_model("iris", eval_path="data/raw/iris.csv", drift_path="data/raw/iris.csv", min_eval_rows=30)
    lock = training_lock(str(project.state_dir), "iris")
    lock.acquire()
    try:
        mark_running(str(project.state_dir), "iris", "0123456789abcdef", "local", "running", where="worker-1")
        done = project.run("status", "--json", "iris")
    finally:
        lock.release()
    assert done.returncode == 0, done.stderr
    row = valid("status", done)["models"][0]
    assert (row["eval_rows"], row["drift_rows"], row["degraded"], row["drifted"]) == (150, 150, False, False)
    assert len(row["eval_ci"]) == 2 and set(row["drift_psi"]) >= {"PetalLengthCm", "SepalWidthCm"}
    assert (row["training_now"], row["executing"]["executor"], row["executing"]["where"]) == (True, "local", "worker-1")


def test_status_says_queued_from_the_started_record(trained):
    """A fit whose lock is held and whose `started` record is open, with no side file of its
    attempt (one left by an earlier, killed run does not count): `queued`, on the executor and
    controller the record names."""
    from retrainctl.base.locks import training_lock
    from retrainctl.core.records import Record, Status
    from retrainctl.state.log import StateLog
    from retrainctl.state.sidecars import mark_running

    project = trained
    state_dir = str(project.state_dir)
    StateLog(state_dir).append(Record("iris", "manual", Status.STARTED, 1_800_000_000.0, attempt_id="a" * 16,
                                      extra={"executor": "dask", "host": "ctl-1", "pid": 4242}))
    mark_running(state_dir, "iris", "b" * 16, "local", "running", where="worker-9")  # an earlier run's
    lock = training_lock(state_dir, "iris")
    lock.acquire()
    try:
        done = project.run("status", "--json", "iris")
        table = project.run("status", "iris")
    finally:
        lock.release()
    assert done.returncode == 0, done.stderr
    row = valid("status", done)["models"][0]
    assert row["executing"] == {"executor": "dask", "state": "queued", "where": None,
                                "since": "2027-01-15T08:00:00+00:00", "controller": {"host": "ctl-1", "pid": 4242}}
    assert "dask:queued" in table.stdout, table.stdout


def test_the_schemas_reject_what_retrainctl_does_not_print(trained):
    """Strict where the output is this version's own: a key it never prints, a missing key, a
    wrong type or word all fail."""
    status = json.loads(trained.run("status", "--json").stdout)
    row = status["models"][0]
    broken = {
        "an unknown key in a row": lambda d: d["models"][0].update(colour="blue"),
        "an unknown top-level key": lambda d: d.update(extra=1),
        "a missing key": lambda d: d["models"][0].pop("due"),
        "a string for a count": lambda d: d["models"][0].update(failures_in_row="0"),
        "an unknown action": lambda d: d["models"][0].update(action="retrain"),
        "another schema version": lambda d: d.update(schema=2),
        "no schema": lambda d: d.pop("schema"),
        "an unknown column type": lambda d: d["models"][0]["columns"]["PetalLengthCm"].update(type="number"),
        "a record without its status": lambda d: d["models"][0]["last_event"].pop("status"),
        "a record with a started status": lambda d: d["models"][0]["last_event"].update(status="started"),
    }
    for what, change in broken.items():
        data = copy.deepcopy(status)
        change(data)
        assert problems("status", data) != [], what
    assert row["last_event"]["status"] == "success" and problems("status", status) == []
    error = {"schema": 1, "error": "x", "exit_code": 2}
    assert problems("error", error) == []
    assert problems("error", dict(error, exit_code=0)) != [] and problems("error", dict(error, traceback="")) != []


def error_of(done, exit_code):
    """The JSON error object on stdout; stderr says the same as without --json."""
    assert done.returncode == exit_code, (done.stdout, done.stderr)
    data = valid("error", done)
    assert data["exit_code"] == exit_code
    assert f"Error: {data['error']}\n" in done.stderr
    return data["error"]


def test_an_unknown_model_is_a_json_error_exit_2(trained):
    configured = f"is not configured in {trained.config_path} (configured: housing, iris)"
    for command in (["status", "nope"], ["train", "nope"], ["rollback", "nope"], ["check", "iris", "nope"],
                    ["history", "--model", "nope"]):
        assert error_of(trained.run(*command, "--json"), 2) == f"model 'nope' {configured}", command
        plain = trained.run(*command)
        assert (plain.returncode, plain.stdout, plain.stderr) == (2, "", f"Error: model 'nope' {configured}\n")


@pytest.mark.parametrize("args, message", [
    (["history", "--json", "--bogus"], "No such option '--bogus'."),
    (["rollback", "--json"], "Missing argument 'MODEL'."),
    (["history", "--limit", "x", "--json"], "Invalid value for '--limit': 'x' is not a valid integer range."),
    (["rollback", "iris", "--to", "0", "--json"], "Invalid value for '--to': expected a version such as 3 or v3, got '0'"),
    (["stauts", "--json"], "No such command 'stauts'. Did you mean 'status'?"),
    (["config", "--json"], "No such option '--json'."),
    (["--log-format", "xml", "status", "--json"],
     "Invalid value for '--log-format' (env var: 'RETRAINCTL_LOG_FORMAT'): 'xml' is not one of 'text', 'json'."),
])
def test_a_usage_error_with_json_is_a_json_error_exit_2(project, args, message):
    done = project.run(*args)
    assert error_of(done, 2) == message
    assert "Usage: retrainctl" in done.stderr  # stderr as without --json


def test_a_config_error_is_a_json_error_exit_2(project):
    project.config_path.write_text("models: [unclosed\n")
    for command in ("check", "status", "history"):
        message = error_of(project.run(command, "--json"), 2)
        assert message.startswith(f"{project.config_path}: ") and "\n" not in message
    missing = project.root / "missing.yaml"
    done = subprocess.run([RETRAINCTL, "--config", str(missing), "status", "--json"],
                          capture_output=True, text=True)
    assert error_of(done, 2) == f"{missing}: config file not found"


def test_a_busy_or_damaged_model_is_a_json_error_exit_1(trained):
    from retrainctl.base.locks import training_lock

    project = trained
    lock = training_lock(str(project.state_dir), "iris")
    lock.acquire()
    try:
        assert error_of(project.run("train", "iris", "--json"), 1) == "iris: already being trained by another process"
    finally:
        lock.release()
    assert project.run("train", "iris", "--force").returncode == 0  # v2
    (project.model_dir / "iris" / "v1" / "model.joblib").write_bytes(b"tampered")
    message = error_of(project.run("rollback", "iris", "--json"), 1)
    assert message.startswith(f"{project.model_dir / 'iris' / 'v1' / 'model.joblib'}: ") and "checksum does not match" in message


def test_a_data_error_is_the_models_outcome_not_an_error_object(trained):
    """A data file that cannot be read fails that model, not the command: the output says so per
    model (`action: error`, `failed: true`), with exit 1."""
    project = trained
    project.data("iris").unlink()
    done = project.run("check", "--json")
    assert done.returncode == 1, done.stderr
    data = valid("check", done)
    iris = data["models"][0]
    assert (data["exit_code"], iris["action"], iris["failed"], iris["event"]["error_type"]) == (1, "error", True,
                                                                                               "data_error")
    assert data["models"][1]["failed"] is False
    train = project.run("train", "iris", "--json")
    assert train.returncode == 1, train.stderr
    assert (valid("train", train)["action"], json.loads(train.stdout)["failed"]) == ("error", True)


def test_an_option_value_that_reads_json_is_not_the_flag(trained):
    """`--reason --json` gives the reason "--json": the command's errors stay plain text."""
    done = trained.run("train", "nope", "--reason", "--json")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"Error: model 'nope' is not configured in {trained.config_path} (configured: housing, iris)\n"


def test_the_schema_files_ship_in_a_non_editable_install(installed):
    site = next((installed / "opt/retrainctl/venv/lib").glob("python3*/site-packages"))
    assert not list(site.glob("__editable__*"))
    shipped = site / "retrainctl" / "schemas"
    assert sorted(p.name for p in shipped.glob("*.json")) == sorted(f"{o}.json" for o in OUTPUTS)
    for output in OUTPUTS:
        assert (shipped / f"{output}.json").read_text() == (SCHEMAS / f"{output}.json").read_text(), output
