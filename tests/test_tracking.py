"""MLflow tracking and registry against a real `mlflow server` (started here on a free loopback
port with a temporary sqlite backend), against the embedded sqlite default, and against servers
that are down or hang."""
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
import urllib.request

import joblib
import pandas as pd
import pytest

from conftest import BIN, REPO, Project, base_config, made_once, shared_server
from retrainctl import __version__
from retrainctl.config.load import parse_config
from retrainctl.base.secrets import redact
from retrainctl.publish.tracking import STORE_VERSION_TAG, serialization_format, tracking_uri

SERVER_START_SECONDS = 180


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """`mlflow server` from the project's venv, started once per run (conftest.shared_server): its
    URL. Each test uses model and experiment names of its own."""
    return shared_server(tmp_path_factory, "mlflow-server", start_mlflow_server)


def start_mlflow_server(root):
    port = free_port()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true")
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(root / "server.log", "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{root}/mlflow.db", "--artifacts-destination", str(root / "artifacts")],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, url + "/health", "mlflow server", root / "server.log")
    except BaseException:
        stop_group(proc)
        raise
    return proc.pid, url


def wait_until_ready(proc, url, what, log_path):
    """Poll `url` until it answers 200; fail the test if `proc` exits first or after SERVER_START_SECONDS."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready after {SERVER_START_SECONDS}s:\n{log_path.read_text()}")
        time.sleep(0.2)


def stop_group(proc):
    """Stop a server started with start_new_session=True, its whole process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def tracking_at(uri):
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        yield mlflow
    finally:
        mlflow.set_tracking_uri(None)


def empty_store(folder):
    """The embedded database as retrainctl creates it (every MLflow migration, under a temporary
    name; tracking._ensure_database), at <folder>/mlflow.db."""
    from retrainctl.publish.tracking import _ensure_database

    _ensure_database(f"sqlite:///{folder}/mlflow.db")


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory):
    return made_once(tmp_path_factory, "mlflow-store", empty_store) / "mlflow.db"


@pytest.fixture
def embedded(_empty_store, monkeypatch):
    """embedded(project): MLflow on with the embedded sqlite store (no tracking_uri, no
    MLFLOW_TRACKING_URI), that store already created: a copy of the one made once per run. Creating
    it runs MLflow's migrations, 1-2 s of CPU per test that is not about creating it (those that are
    make their own: test_embedded_sqlite_default_needs_no_server, a kill while it is created, a file
    system without hard links)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def make(project, **settings):
        project.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_empty_store, project.state_dir / "mlflow.db")
        use_mlflow(project, **settings)

    return make


def use_mlflow(project, **settings):
    # A generous deadline: on a loaded test machine MLflow's imports alone can take most of 30 s.
    # The report page (matplotlib, a second action of the tracking process) only where it is tested.
    project.config["mlflow"] = {"enabled": True, "timeout_seconds": 120, "log_report": False, **settings}
    project.write_config()


def train_json(project, *args, installed=True):
    """Train through the installed command (stdout must stay pure JSON whatever MLflow prints), or
    in-process where a test only needs the tracked version (no subprocess's imports, nor the
    validation's after a config edit)."""
    if installed:
        proc = project.run("train", *args, "--json")
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    else:
        done = project.cli("train", *args, "--json")
        code, stdout, stderr = done.exit_code, done.stdout, done.stderr
    assert code == 0, stderr
    assert "View run" not in stderr and "Successfully registered" not in stderr
    return json.loads(stdout)["event"], stderr


def features_of(project, name):
    df = pd.read_csv(project.data(name))
    return df.drop(columns=[project.config["models"][name]["target"]])


def store_model(project, name, version):
    return joblib.load(project.model_dir / name / f"v{version}" / "model.joblib")


def metadata(project, name, version):
    return json.loads((project.model_dir / name / f"v{version}" / "metadata.json").read_text())


def status_row(project, name):
    out = project.cli("status", name, "--json")
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)["models"][0]


def test_runs_registry_and_rollback_against_a_server(project, mlflow_server):
    from mlflow import MlflowClient

    use_mlflow(project, tracking_uri=mlflow_server, log_report=True)
    client = MlflowClient(mlflow_server)

    first, stderr = train_json(project, "iris")
    assert first["status"] == "success" and first["version"] == 1
    assert first["mlflow_model_version"] == 1 and "tracking_error" not in first
    assert f"iris v1: MLflow run {first['mlflow_run_id']}; registered iris version 1 as champion" in stderr

    experiment = client.get_experiment_by_name("iris_retraining")
    run = client.get_run(first["mlflow_run_id"])
    assert run.info.experiment_id == experiment.experiment_id
    assert run.info.run_name == "iris-v1-manual" and run.info.status == "FINISHED"
    params = run.data.params
    assert params["estimator"] == "sklearn.tree.DecisionTreeClassifier"
    assert params["estimator.random_state"] == "0"
    assert params["features"] == "SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm"
    meta = metadata(project, "iris", 1)
    assert (params["rows"], params["train_rows"], params["holdout_rows"]) == (
        "150", str(meta["train_rows"]), str(meta["holdout_rows"]))
    assert params["data_hash"] == first["data_hash"]
    assert params["trigger_type"] == "manual" and params["retrainctl_version"] == __version__
    assert run.data.metrics["accuracy"] == pytest.approx(first["score"])
    assert run.data.metrics["training_seconds"] >= 0
    # The whole attempt (fit, gate, save) up to tracking: more than the fit alone.
    assert run.data.metrics["training_time"] > run.data.metrics["training_seconds"]
    assert "champion_accuracy" not in run.data.metrics
    tags = run.data.tags
    assert (tags["trigger"], tags["outcome"], tags["serialization_format"]) == ("manual", "promoted", "skops")

    champion = client.get_model_version_by_alias("iris", "champion")
    assert (champion.version, champion.run_id) == ("1", run.info.run_id)
    assert champion.tags[STORE_VERSION_TAG] == "1"
    assert f"iris: report page attached to MLflow run {run.info.run_id}" in stderr
    page = report_artifact(client, run.info.run_id)
    assert "live version v1, accuracy" in page and page.count("<svg") >= 2  # drawn after the record
    meta = metadata(project, "iris", 1)
    assert (meta["mlflow_run_id"], meta["mlflow_model_version"]) == (run.info.run_id, 1)
    row = status_row(project, "iris")
    assert (row["model_version"], row["mlflow_run_id"], row["mlflow_model_version"]) == (1, run.info.run_id, 1)

    X = features_of(project, "iris")
    with tracking_at(mlflow_server) as mlflow:
        loaded = mlflow.sklearn.load_model("models:/iris@champion")
        signature = mlflow.models.get_model_info("models:/iris@champion").signature
    assert list(loaded.predict(X)) == list(store_model(project, "iris", 1).predict(X))
    assert signature.inputs.input_names() == ["SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]

    # A worse candidate is a run too, with the champion's score on the same rows, but not registered.
    project.set_model("iris", estimator="sklearn.dummy.DummyClassifier", params={"strategy": "most_frequent"})
    rejected, _ = train_json(project, "iris")
    assert rejected["status"] == "rejected" and rejected["version"] == 2
    assert rejected["mlflow_model_version"] is None
    run2 = client.get_run(rejected["mlflow_run_id"])
    assert run2.info.run_name == "iris-v2-manual" and run2.data.tags["outcome"] == "rejected"
    assert run2.data.metrics["champion_accuracy"] == pytest.approx(first["score"])
    assert run2.data.metrics["accuracy"] == pytest.approx(rejected["score"])
    page = report_artifact(client, run2.info.run_id)
    assert "live version v1, accuracy" in page and ">v2<" in page and "rejected" in page
    assert [v.version for v in client.search_model_versions("name='iris'")] == ["1"]

    forced, _ = train_json(project, "iris", "--force")
    assert (forced["version"], forced["mlflow_model_version"]) == (3, 2)
    assert client.get_model_version_by_alias("iris", "champion").version == "2"
    assert status_row(project, "iris")["mlflow_model_version"] == 2

    back = project.cli("rollback", "iris", "--json")
    assert back.exit_code == 0, back.output
    record = json.loads(back.stdout)
    assert (record["version"], record["mlflow_model_version"], record["mlflow_run_id"]) == (1, 1, run.info.run_id)
    assert client.get_model_version_by_alias("iris", "champion").version == "1"
    row = status_row(project, "iris")
    assert (row["mlflow_model_version"], row["registry_champion_version"], row["registry_in_sync"]) == (1, 1, True)
    assert client.get_model_version("iris", "1").tags["retrainctl.rolled_back_from"] == "v3"
    assert client.get_model_version("iris", "2").tags["retrainctl.rolled_back_to"] == "v1"

    # Back to the rejected candidate: it has a run but was never registered, so it is registered now.
    to_rejected = project.cli("rollback", "iris", "--to", "2", "--json")
    assert to_rejected.exit_code == 0, to_rejected.output
    assert "not moved" not in to_rejected.stderr
    record = json.loads(to_rejected.stdout)
    assert (record["version"], record["mlflow_model_version"], record["mlflow_run_id"]) == (2, 3, run2.info.run_id)
    champion = client.get_model_version_by_alias("iris", "champion")
    assert (champion.version, champion.run_id, champion.tags[STORE_VERSION_TAG]) == ("3", run2.info.run_id, "2")
    assert champion.tags["retrainctl.rolled_back_from"] == "v1"
    assert client.get_model_version("iris", "1").tags["retrainctl.rolled_back_to"] == "v2"
    assert metadata(project, "iris", 2)["mlflow_model_version"] == 3
    row = status_row(project, "iris")
    assert (row["model_version"], row["mlflow_model_version"], row["registry_champion_version"],
            row["registry_in_sync"]) == (2, 3, 3, True)
    with tracking_at(mlflow_server) as mlflow:
        loaded = mlflow.sklearn.load_model("models:/iris@champion")
    assert list(loaded.predict(X)) == list(store_model(project, "iris", 2).predict(X))
    assert registry_gauge(project) == "1.0"

    # A failed attempt is a FAILED run carrying its error.
    path = project.data("iris")
    path.write_text(path.read_text().replace("Species", "Kind"))
    failed = project.run("train", "iris", "--json")
    assert failed.returncode == 1, failed.stderr
    event = json.loads(failed.stdout)["event"]
    assert event["status"] == "failure"
    failed_run = client.get_run(event["mlflow_run_id"])
    assert failed_run.info.status == "FAILED" and failed_run.info.run_name == "iris-failed-manual"
    assert failed_run.info.experiment_id == experiment.experiment_id
    assert (failed_run.data.tags["outcome"], failed_run.data.tags["error_type"], failed_run.data.tags["error"]) == (
        "failed", event["error_type"], event["error"])
    assert failed_run.data.params["error_type"] == event["error_type"]
    assert failed_run.data.metrics["training_time"] > 0


def report_artifact(client, run_id):
    """The run's report.html, as text."""
    import tempfile

    assert [a.path for a in client.list_artifacts(run_id) if a.path.endswith(".html")] == ["report.html"]
    with tempfile.TemporaryDirectory() as folder:
        return open(client.download_artifacts(run_id, "report.html", folder), encoding="utf-8").read()


def test_report_page_lost_with_its_process_leaves_the_training_standing(project, embedded):
    """The tracking process is killed while it draws the report page: a warning naming the run,
    the candidate is still promoted and recorded, exit 0. With `log_report: false` no page."""
    from mlflow import MlflowClient

    embedded(project, log_report=True)
    # In-process: the fault point is in the tracking process, which the command starts either way.
    lost = project.cli("train", "iris", "--json", env={"RETRAINCTL_FAULT": "report_attaching"})
    assert lost.exit_code == 0, lost.stderr
    record = json.loads(lost.stdout)["event"]
    assert (record["status"], record["version"], record["mlflow_model_version"]) == ("success", 1, 1)
    assert (f"iris: report page not attached to MLflow run {record['mlflow_run_id']}: "
            f"the tracking process exited with code -9\n") in lost.stderr
    assert project.current_version("iris") == 1
    client = MlflowClient(f"sqlite:///{project.state_dir}/mlflow.db")
    assert [a.path for a in client.list_artifacts(record["mlflow_run_id"])] == ["columns.json"]  # no page

    use_mlflow(project, log_report=False)
    quiet = project.cli("train", "iris", "--force", "--json")  # in-process: no second validation's imports
    assert quiet.exit_code == 0, quiet.stderr
    run_id = json.loads(quiet.stdout)["event"]["mlflow_run_id"]
    assert "report page" not in quiet.stderr
    assert [a.path for a in client.list_artifacts(run_id)] == ["columns.json"]


def registry_gauge(project):
    """The model_registry_in_sync sample of iris in `retrainctl metrics`."""
    done = project.cli("metrics")
    assert done.exit_code == 0, done.stderr
    [line] = [ln for ln in done.stdout.splitlines() if ln.startswith('model_registry_in_sync{model_name="iris"}')]
    return line.rsplit(" ", 1)[1]


def test_embedded_sqlite_default_needs_no_server(project, monkeypatch, tmp_path):
    """No tracking_uri, no MLFLOW_TRACKING_URI: sqlite in the state dir, artifacts beside it, nothing
    in the working directory. A tree model with categorical columns round-trips through skops, and
    a data set of Parquet partitions gets its signature from the rows the fit read."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    use_mlflow(project)
    df = pd.read_csv(project.data("housing"))
    df.loc[::25, "total_bedrooms"] = None  # so the imputer has work to do after the round trip
    df.to_csv(project.data("housing"), index=False)
    parts = project.root / "data" / "housing-set"
    for i, day in enumerate(("2026-11-01", "2026-11-02")):
        (parts / f"date={day}").mkdir(parents=True)
        df.iloc[i::2].to_parquet(parts / f"date={day}" / "part-0.parquet", index=False)
    project.set_model("housing", estimator="sklearn.ensemble.HistGradientBoostingRegressor",
                      params={"max_iter": 20, "random_state": 0}, data_path="data/housing-set")
    cwd = tmp_path / "cron-cwd"
    cwd.mkdir()
    # The tracking process ends with os._exit once it has answered: with MLflow's async logging
    # switched on by the environment, params and metrics must still be committed before it answers.
    proc = project.run("train", "housing", "--json", cwd=str(cwd), env={"MLFLOW_ENABLE_ASYNC_LOGGING": "true"})
    assert proc.returncode == 0, proc.stderr
    event = json.loads(proc.stdout)["event"]
    assert event["mlflow_model_version"] == 1 and "tracking_error" not in event
    assert list(cwd.iterdir()) == []
    assert (project.state_dir / "mlflow.db").is_file()
    assert (project.state_dir / "mlartifacts").is_dir()

    uri = f"sqlite:///{project.state_dir}/mlflow.db"
    with tracking_at(uri) as mlflow:
        client = mlflow.MlflowClient(uri)
        run = client.get_run(event["mlflow_run_id"])
        assert run.info.run_name == "housing-v1-manual"
        assert run.data.tags["serialization_format"] == "skops"
        assert run.data.metrics["r2"] == pytest.approx(event["score"])
        assert run.data.params["estimator.max_iter"] == "20" and run.data.params["trigger_type"] == "manual"
        assert run.data.metrics["training_seconds"] >= 0
        assert str(client.get_model_version_by_alias("housing", "champion").version) == "1"
        loaded = mlflow.sklearn.load_model("models:/housing@champion")
        signature = mlflow.models.get_model_info("models:/housing@champion").signature
    X = features_of(project, "housing")
    assert signature is not None and signature.inputs.input_names() == list(X.columns)
    assert X["total_bedrooms"].isna().any() and not pd.api.types.is_numeric_dtype(X["ocean_proximity"])
    assert list(loaded.predict(X)) == list(store_model(project, "housing", 1).predict(X))


def test_kill_between_registry_and_store_moves_the_alias_back(project, embedded):
    """Registering a promoted candidate moves `champion` just before the store's `current` does;
    a kill -9 between the two must not leave the alias on a version that never went live."""
    import signal

    from mlflow import MlflowClient

    embedded(project)
    project.set_model("iris", retry_backoff_seconds=0)
    first, _ = train_json(project, "iris", installed=False)
    assert (first["version"], first["mlflow_model_version"]) == (1, 1)

    crashed = project.run("train", "iris", "--force", env={"RETRAINCTL_FAULT": "after_track"})
    assert crashed.returncode == -signal.SIGKILL
    uri = f"sqlite:///{project.state_dir}/mlflow.db"
    client = MlflowClient(uri)
    assert str(client.get_model_version_by_alias("iris", "champion").version) == "2"  # ahead of the store
    assert project.current_version("iris") == 1
    assert status_row(project, "iris")["registry_in_sync"] is False

    after = project.run("check", "iris")  # recovers the dead attempt; nothing else is due
    assert after.returncode == 0, after.stderr
    assert "iris: MLflow alias 'champion' now on registered version 1" in after.stderr
    assert str(client.get_model_version_by_alias("iris", "champion").version) == "1"
    record = project.history("iris")[-1]
    assert (record["status"], record["error_type"], record["version"]) == ("failure", "interrupted", 2)
    assert project.current_version("iris") == 1
    interrupted = client.get_run(record["mlflow_run_id"])
    assert (interrupted.info.status, interrupted.data.tags["error_type"]) == ("FAILED", "interrupted")
    assert status_row(project, "iris")["registry_in_sync"] is True

    # MLflow knows store v2 though it never went live: with the model folder lost as well, the
    # next version is still v3, never a second v2 in the registry.
    shutil.rmtree(project.model_dir / "iris")
    retrained, _ = train_json(project, "iris")
    assert (retrained["version"], retrained["mlflow_model_version"]) == (3, 3)
    tags = [v.tags[STORE_VERSION_TAG] for v in client.search_model_versions("name='iris'")]
    assert sorted(tags) == ["1", "2", "3"]


def test_kill_during_the_first_training_removes_the_alias(project, embedded):
    """The same crash on the very first training: nothing is live, so no alias is better than one
    naming a version that never served. The next run trains again and registers it. (The runs
    after the crash are in-process: each follows a config edit, whose validation would cost a
    subprocess the scikit-learn imports.)"""
    import signal

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    embedded(project)
    project.set_model("iris", retry_backoff_seconds=0)
    crashed = project.run("check", "iris", env={"RETRAINCTL_FAULT": "after_track"})
    assert crashed.returncode == -signal.SIGKILL
    client = MlflowClient(f"sqlite:///{project.state_dir}/mlflow.db")
    assert str(client.get_model_version_by_alias("iris", "champion").version) == "1"
    assert project.current_version("iris") is None

    project.set_model("iris", enable_auto_retraining=False)  # recover, but train nothing yet
    after = project.cli("check", "iris")
    assert after.exit_code == 0, after.stderr
    assert ("iris: MLflow alias 'champion' removed: it named a version that never went live, and the live "
            "model does not exist") in after.stderr
    with pytest.raises(MlflowException, match="champion"):
        client.get_model_version_by_alias("iris", "champion")
    [interrupted] = project.history("iris")
    assert (interrupted["error_type"], "tracking_error" in interrupted) == ("interrupted", False)

    project.set_model("iris", enable_auto_retraining=True)
    assert project.cli("check", "iris").exit_code == 0
    retrained = project.history("iris")[-1]
    assert (retrained["status"], retrained["version"], retrained["mlflow_model_version"]) == ("success", 2, 2)
    assert str(client.get_model_version_by_alias("iris", "champion").version) == "2"


def test_mlflow_serves_the_champion(project, embedded):
    """The documented way to serve the champion, with MLflow's own server (its uvicorn is found
    through PATH): it answers as the store's current model does."""
    embedded(project)
    event, _ = train_json(project, "iris", installed=False)
    assert event["mlflow_model_version"] == 1
    port = free_port()
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", MLFLOW_DISABLE_TELEMETRY="true",
               MLFLOW_TRACKING_URI=f"sqlite:///{project.state_dir}/mlflow.db")
    log_path = project.root / "serve.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", "models:/iris@champion",
                                 "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    row = features_of(project, "iris").iloc[[60]]
    body = json.dumps({"dataframe_split": row.to_dict(orient="split", index=False)}).encode()
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=10) as resp:
                    answer = json.loads(resp.read())
                break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.5)
    finally:
        stop_group(proc)
    assert answer == {"predictions": list(store_model(project, "iris", 1).predict(row))}


CREATE_DB = """
import sys
from retrainctl.publish.tracking import _ensure_database
from mlflow import MlflowClient
_ensure_database(sys.argv[1])
MlflowClient(sys.argv[1]).search_experiments()
"""


@pytest.mark.parametrize("delay", [0.0, 0.2, 0.5])
def test_a_kill_while_the_embedded_database_is_created_leaves_none(tmp_path, delay):
    """MLflow builds a new sqlite database migration by migration, outside a transaction; killed
    halfway, the file would be refused by every later open. It is built under a temporary name."""
    from mlflow import MlflowClient

    from conftest import BIN

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    proc = subprocess.Popen([str(BIN / "python"), "-c", CREATE_DB, uri], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not [p for p in tmp_path.iterdir() if p.name.startswith((".mlflow.db.", "mlflow.db"))]:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(delay)  # somewhere in the middle of the migrations
    proc.kill()
    proc.wait()
    if db.exists():  # only ever complete: it must open
        MlflowClient(uri).search_experiments()
    subprocess.run([str(BIN / "python"), "-c", CREATE_DB, uri], cwd=tmp_path, check=True, timeout=120)
    assert [e.name for e in MlflowClient(uri).search_experiments()] == ["Default"]


def test_embedded_database_on_a_file_system_without_hard_links(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from retrainctl.publish import tracking

    def no_link(src, dst):
        raise PermissionError(1, "Operation not permitted", src)

    monkeypatch.setattr(os, "link", no_link)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking._ensure_database(uri)
    assert [p.name for p in tmp_path.iterdir()] == ["mlflow.db"]
    assert [e.name for e in MlflowClient(uri).search_experiments()] == ["Default"]


def test_server_down_keeps_the_model_and_records_the_error(project):
    use_mlflow(project, tracking_uri=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    proc = project.run("train", "iris")
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("iris: promoted v1 (accuracy ")
    assert elapsed < 60
    assert "WARNING: iris v1: MLflow tracking at http://127.0.0.1:" in proc.stderr
    [record] = project.history("iris")
    assert record["status"] == "success" and record["promoted"] is True
    assert "Connection refused" in record["tracking_error"]
    assert record["mlflow_run_id"] is None and record["mlflow_model_version"] is None
    assert project.current_version("iris") == 1
    # The store moved and the registry could not follow: status and the metric say so.
    row = status_row(project, "iris")
    assert (row["model_version"], row["registry_champion_version"], row["registry_in_sync"]) == (1, None, False)
    assert registry_gauge(project) == "0.0"


def test_hanging_server_costs_at_most_the_timeout(project):
    """A server that accepts connections and never answers: the deadline ends the step."""
    with socket.socket() as sink:
        sink.bind(("127.0.0.1", 0))
        sink.listen(16)
        use_mlflow(project, tracking_uri=f"http://127.0.0.1:{sink.getsockname()[1]}", timeout_seconds=3)
        proc = project.run("train", "iris")
    assert proc.returncode == 0, proc.stderr
    [record] = project.history("iris")
    assert record["status"] == "success" and project.current_version("iris") == 1
    # Either the deadline fired, or MLflow's own per-request timeout (set to 1 s here) did first.
    error = record["tracking_error"]
    assert error == "no answer within mlflow.timeout_seconds=3" or "Read timed out" in error, error
    assert record["duration"] < 3 + 30  # the fit's own seconds plus the deadline, not MLflow's 7 x 120 s


def test_required_tracking_failure_fails_and_promotes_nothing(trained):
    project = trained  # iris v1, trained by the first check with tracking disabled
    use_mlflow(project, tracking_uri=f"http://127.0.0.1:{free_port()}", required=True)

    proc = project.cli("train", "iris", "--force")  # in-process: no validation's imports after the edit
    assert proc.exit_code == 1, proc.stderr
    assert "iris: v2 not promoted: MLflow tracking failed and mlflow.required is true:" in proc.stderr
    assert proc.stdout.startswith("iris: failed: MLflow tracking failed and mlflow.required is true:")
    record = project.history("iris")[-1]
    assert (record["status"], record["error_type"], record["version"]) == ("failure", "tracking", 2)
    assert "Connection refused" in record["tracking_error"]
    assert project.current_version("iris") == 1

    forced = project.cli("train", "iris", "--force")
    assert forced.exit_code == 1 and project.current_version("iris") == 1


def test_required_rollback_refuses_without_a_registry_version(trained):
    project = trained  # iris v1 from the first check, without tracking
    assert project.cli("train", "iris", "--force").exit_code == 0  # v2, without tracking too
    use_mlflow(project, tracking_uri=f"http://127.0.0.1:{free_port()}", required=True)
    back = project.cli("rollback", "iris")
    assert back.exit_code == 1
    assert back.stderr.startswith("Error: iris: not rolled back to v1: MLflow alias 'champion' could not be moved "
                                  "and mlflow.required is true: ")
    assert "Connection refused" in back.stderr and back.stderr.count("\n") == 1
    assert project.current_version("iris") == 2

    use_mlflow(project, tracking_uri=f"http://127.0.0.1:{free_port()}")
    back = project.cli("rollback", "iris", "--json")
    assert back.exit_code == 0 and project.current_version("iris") == 1
    assert "MLflow alias 'champion' not moved to v1" in back.stderr
    assert "Connection refused" in json.loads(back.stdout)["tracking_error"]
    assert status_row(project, "iris")["registry_in_sync"] is False


def test_rollback_registers_a_version_trained_without_tracking(trained, embedded):
    """A version that was never tracked is logged as a new run and registered, so `champion`
    still names what the store serves."""
    from mlflow import MlflowClient

    project = trained  # iris v1 from the first check, without tracking
    assert project.cli("train", "iris", "--force").exit_code == 0  # v2, without tracking too
    embedded(project, required=True)
    back = project.cli("rollback", "iris", "--json")
    assert back.exit_code == 0, back.output
    record = json.loads(back.stdout)
    assert (record["version"], record["mlflow_model_version"]) == (1, 1) and "tracking_error" not in record
    client = MlflowClient(f"sqlite:///{project.state_dir}/mlflow.db")
    champion = client.get_model_version_by_alias("iris", "champion")
    assert (champion.tags[STORE_VERSION_TAG], champion.tags["retrainctl.rolled_back_from"]) == ("1", "v2")
    run = client.get_run(champion.run_id)
    assert run.info.run_name == "iris-v1-registered" and "estimator" not in run.data.params
    row = status_row(project, "iris")
    assert (row["mlflow_model_version"], row["registry_champion_version"], row["registry_in_sync"]) == (1, 1, True)


class Doubler:
    """Not a scikit-learn type: skops would refuse to load it, so the model goes cloudpickle."""

    def predict(self, X):
        return [2 * v for v in X]


def test_serialization_format_prefers_skops_and_falls_back():
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    fmt, trusted = serialization_format(LinearRegression().fit(X, [0, 1, 2, 3]), X)
    assert fmt == "skops" and all(t.split(".")[0] in ("sklearn", "numpy", "scipy") for t in trusted)
    assert serialization_format(Doubler(), [1, 2]) == ("cloudpickle", None)


def test_tracking_uri_resolution(tmp_path):
    cfg_path = tmp_path / "etc" / "r.yaml"
    base = {"base_dir": "..", "models": {"m": {"data_path": "d.csv", "target": "y", "task": "regression",
                                               "estimator": "sklearn.linear_model.Ridge"}}}

    def uri(mlflow=None, environ=None):
        return tracking_uri(parse_config(json.dumps(dict(base, mlflow=mlflow or {})), str(cfg_path)), environ or {})

    assert uri() == f"sqlite:///{tmp_path}/var/state/mlflow.db"
    assert uri(environ={"MLFLOW_TRACKING_URI": "http://h:5000"}) == "http://h:5000"
    assert uri({"tracking_uri": "sqlite:///var/m.db"}, {"MLFLOW_TRACKING_URI": "x"}) == f"sqlite:///{tmp_path}/var/m.db"
    assert uri({"tracking_uri": "sqlite:////srv/m.db"}) == "sqlite:////srv/m.db"
    assert uri({"tracking_uri": "http://127.0.0.1:5000"}) == "http://127.0.0.1:5000"
    assert redact("https://bob:s3cret@mlflow.example:8443/x") == "https://mlflow.example:8443/***"


@pytest.mark.parametrize("mlflow, message", [
    ({"timeout_seconds": 0}, "mlflow.timeout_seconds: must be between 1 and 3600, got 0"),
    ({"tracking_url": "http://x"}, "mlflow.tracking_url: unknown key 'tracking_url'; did you mean 'tracking_uri'?"),
    ({"required": "yes"}, "mlflow.required: must be true or false, got 'yes'"),
])
def test_mlflow_config_errors(project, mlflow, message):
    assert project.config_error(mlflow=mlflow) == message


# --- an entry with segment_by: one run per round, one registered model routing rows by segment ----

sys.path.insert(0, str(REPO / "bench"))
from generate import orders  # noqa: E402

SALES = {"data_path": "data/sales/", "segment_by": ["store"], "min_segment_rows": 40, "min_data_size": 20,
         "promotion_tolerance": 1.0, "target": "units", "task": "regression", "features": ["price", "temp"],
         "estimator": "sklearn.linear_model.Ridge"}


def shop_project(root, entry, tracking_uri):
    """Two months of orders of five stores of skewed sizes (about 175, 90, 60, 45 and 35 rows), as
    CSV partitions; the labels of store s003 all missing (its fit fails), s004 too small to train."""
    project = Project(root)
    frames = orders(months=3, rows_per_month=200, stores=5, seed=3)
    for frame in frames:
        frame.loc[frame["store"] == "s003", "units"] = float("nan")
    project.frames = frames
    for month, frame in enumerate(frames[:2], 1):
        shop_month(project, month, frame)
    project.write_config(base_config(**{entry: dict(SALES)}))
    use_mlflow(project, tracking_uri=tracking_uri)
    return project


def shop_month(project, month, frame):
    path = project.root / "data" / "sales" / f"month=2025-{month:02d}" / "part-0.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    os.utime(path, (1_700_000_000 + month, 1_700_000_000 + month))  # not "just written"


def mixed_rows(project, stores):
    """Rows of `stores`, interleaved as a caller would send them (by time, not by store)."""
    frame = pd.concat(project.frames).sort_values("ts")
    return frame[frame["store"].isin(stores)].head(24).drop(columns=["units"]).reset_index(drop=True)


def by_store(project, entry, frame):
    """What each row's own segment's current pipeline in the store predicts for it."""
    out = pd.Series(index=frame.index, dtype=float)
    for store, rows in frame.groupby("store"):
        name = f"{entry}:{store}"
        out[rows.index] = store_model(project, name, project.current_version(name)).predict(rows)
    return list(out)


def checked(project):
    result = project.cli("check", "--json")
    assert result.exit_code in (0, 1), result.output
    return {m["model_name"]: m for m in json.loads(result.stdout)["models"]}


def test_an_entry_is_one_run_per_round_and_one_routing_model(tmp_path, mlflow_server):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    project = shop_project(tmp_path / "proj", "sales", mlflow_server)
    client = MlflowClient(mlflow_server)
    first = checked(project)
    assert {n: m["result"].split(" ")[0] for n, m in first.items()} == {
        "sales:s000": "promoted", "sales:s001": "promoted", "sales:s002": "promoted", "sales:s003": "failed:",
        "sales:s004": "not"}
    assert first["sales:s003"]["result"].endswith("data/sales: every row lacks the target 'units'")
    [run1] = client.search_runs([client.get_experiment_by_name("sales_retraining").experiment_id])
    assert run1.info.run_name == "sales-round-4-segments"
    assert run1.data.metrics == {"segments_trained": 3, "segments_promoted": 3, "segments_rejected": 0,
                                 "segments_failed": 1, "segments_live": 3,
                                 "median_r2": pytest.approx(statistics.median(
                                     first[f"sales:{s}"]["event"]["score"] for s in ("s000", "s001", "s002")))}
    table = json.loads(client.download_artifacts(run1.info.run_id, "round_segments.json", str(tmp_path)) and
                       (tmp_path / "round_segments.json").read_text())
    rows = {r[0]: r for r in table["data"]}
    assert table["columns"] == ["segment", "version", "score", "outcome", "rows"]
    assert rows["sales:s001"][1:4] == [1, first["sales:s001"]["event"]["score"], "promoted"]
    assert rows["sales:s003"][3] == "failed" and sorted(rows) == ["sales:s000", "sales:s001", "sales:s002",
                                                                   "sales:s003"]
    assert uploaded(client, run1) == ["s000/v1.joblib", "s001/v1.joblib", "s002/v1.joblib"]
    assert champion(client, "sales") == ("1", run1.info.run_id)

    # A month with new rows of s001 and a store that opens (s005): only those two train.
    month3 = project.frames[2]
    new_store = month3[month3["store"] == "s000"].assign(store="s005")
    project.frames[2] = pd.concat([month3[month3["store"] == "s001"], new_store])
    shop_month(project, 3, project.frames[2])
    second = checked(project)
    trained = sorted(n for n, m in second.items() if (m["event"] or {}).get("status") == "success")
    assert trained == ["sales:s001", "sales:s005"]
    run2 = client.search_runs([run1.info.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert run2.data.metrics["segments_promoted"] == 2 and run2.data.metrics["segments_live"] == 4
    assert uploaded(client, run2) == ["s001/v2.joblib", "s005/v1.joblib"]  # the other two are not sent again
    assert champion(client, "sales") == ("2", run2.info.run_id)

    # A rollback of one segment: a version whose s001 is its v1 again, from the first round's upload.
    assert project.cli("rollback", "sales:s001").exit_code == 0
    version3 = client.get_model_version_by_alias("sales", "champion")
    assert version3.version == "3"
    manifest = segments_manifest(client, version3, tmp_path / "v3")
    assert manifest["segments"]["sales:s001"] == {"version": 1, "sha256": metadata(project, "sales:s001", 1)["sha256"],
                                                  "run_id": run1.info.run_id, "path": "pipelines/s001/v1.joblib",
                                                  "values": ["s001"]}
    rollback_run = client.get_run(version3.run_id)
    assert rollback_run.info.run_name == "sales-rollback" and uploaded(client, rollback_run) == []
    with tracking_at(mlflow_server) as mlflow:
        model = mlflow.pyfunc.load_model("models:/sales@champion")
        rows4 = mixed_rows(project, ["s000", "s001", "s002", "s005"])
        assert project.current_version("sales:s001") == 1
        assert list(model.predict(rows4)) == by_store(project, "sales", rows4)
        # s003's fit failed and s004 never trained: no model, and no silent answer for their rows
        with pytest.raises(MlflowException, match=r"sales: no model for store='s003'; store='s004' "
                                                  r"\(4 segments known; no segment_fallback is set\)"):
            model.predict(mixed_rows(project, ["s001", "s003", "s004"]))

    # A command that died between a promotion and the registry: the next check puts champion in step.
    registry = project.state_dir / "registry"
    assert json.loads((registry / "sales@segments.json").read_text())["registered_version"] == 3
    assert json.loads((registry / "sales@pending.json").read_text()) == []
    dead = subprocess.Popen(["true"])
    dead.wait()
    (registry / "sales@pending.json").write_text(json.dumps([f"{socket.gethostname()}:{dead.pid}"]))
    os.remove(project.model_dir / "sales:s001" / "current")
    os.symlink("v2", project.model_dir / "sales:s001" / "current")
    result = project.cli("check")
    assert "sales: MLflow alias 'champion' may be behind the store" in result.stderr
    assert client.get_model_version_by_alias("sales", "champion").version == "4"
    assert json.loads((registry / "sales@pending.json").read_text()) == []
    assert json.loads((registry / "sales@segments.json").read_text())["registered_version"] == 4


def uploaded(client, run):
    """The pipeline files a run uploaded, relative to its `pipelines/` folder."""
    def walk(path):
        for item in client.list_artifacts(run.info.run_id, path):
            yield from (walk(item.path) if item.is_dir else [item.path])
    return sorted(p.removeprefix("pipelines/") for p in walk("pipelines"))


def champion(client, name):
    version = client.get_model_version_by_alias(name, "champion")
    return version.version, version.run_id


def segments_manifest(client, version, dest):
    from mlflow.artifacts import download_artifacts

    dest.mkdir()
    with tracking_at(client.tracking_uri):
        folder = download_artifacts(artifact_uri=f"models:/{version.name}/{version.version}", dst_path=str(dest))
    return json.loads((Path(folder) / "data" / "segments.json").read_text())


@pytest.fixture
def served_entry(tmp_path, mlflow_server):
    """(project, URL): an entry `orders` trained once against the real server, its champion served
    by `mlflow models serve --env-manager local` on a free loopback port, ready (/ping answers)."""
    project = shop_project(tmp_path / "proj", "orders", mlflow_server)
    assert project.cli("check").exit_code == 1  # s003's fit fails: its labels are all missing
    port = free_port()
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", MLFLOW_DISABLE_TELEMETRY="true",
               MLFLOW_TRACKING_URI=mlflow_server)
    log_path = project.root / "serve.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", "models:/orders@champion",
                                 "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, url + "/ping", "mlflow models serve", log_path)
        yield project, url
    finally:
        stop_group(proc)


def invoke(url, frame):
    """POST `frame` to the served model: (HTTP status, answer)."""
    body = ('{"dataframe_split": ' + frame.to_json(orient="split", index=False) + "}").encode()
    request = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_mlflow_serves_an_entry_routing_each_row_to_its_segment(served_entry):
    project, url = served_entry
    rows = mixed_rows(project, ["s000", "s001", "s002"])
    assert rows["store"].nunique() == 3 and rows["price"].isna().any()  # interleaved, gaps included
    assert invoke(url, rows) == (200, {"predictions": by_store(project, "orders", rows)})
    status, answer = invoke(url, mixed_rows(project, ["s002", "s003"]))
    assert status == 400
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE", answer
    assert answer["message"].endswith("orders: no model for store='s003' (3 segments known; "
                                      "no segment_fallback is set)"), answer["message"][-300:]


class Constant:
    """A segment's pipeline that answers one number, and says which rows it was asked about."""

    def __init__(self, value):
        self.value, self.seen = value, []

    def predict(self, X):
        self.seen.append(list(X["order_id"]))
        return [self.value] * len(X)


def test_the_router_keeps_row_order_and_uses_the_fallback_only_when_set():
    from mlflow.exceptions import MlflowException

    from retrainctl.publish.router import SegmentRouter

    manifest = {"entry": "sales", "segment_by": ["store", "region"], "fallback": None, "segments": {}}
    pipelines = {"sales:s1:north": Constant(1.0), "sales:s2:~NA": Constant(2.0), "sales:New~20York:north": Constant(3.0)}
    frame = pd.DataFrame({"order_id": [10, 11, 12, 13, 14], "store": ["s2", "s1", "New York", "s1", "s2"],
                          "region": [None, "north", "north", "north", float("nan")]})
    router = SegmentRouter(manifest, pipelines)
    assert list(router.predict(frame)) == [2.0, 1.0, 3.0, 1.0, 2.0]
    assert pipelines["sales:s1:north"].seen == [[11, 13]]  # one call per segment present
    strangers = pd.DataFrame({"order_id": [1, 2], "store": ["s1", "s9"], "region": ["south", "north"]})
    with pytest.raises(MlflowException, match=r"^sales: no model for store='s1', region='south'; store='s9', "
                                              r"region='north' \(3 segments known; no segment_fallback is set\)$"):
        router.predict(strangers)
    with pytest.raises(MlflowException, match=r"^sales: input has no segment_by column 'region' \(columns: "
                                              r"order_id, store\)$"):
        router.predict(strangers.drop(columns="region"))
    fallback = SegmentRouter(dict(manifest, fallback="sales:s1:north"), pipelines)
    assert list(fallback.predict(strangers)) == [1.0, 1.0]
    orphan = SegmentRouter(dict(manifest, fallback="sales:s7:north"), pipelines)
    with pytest.raises(MlflowException, match=r"\(3 segments known; its fallback sales:s7:north has no model\)$"):
        orphan.predict(strangers)


@pytest.mark.parametrize("fallback, message", [
    ("s001", "models.sales.segment_fallback: must name a segment of 'sales' with 1 key value(s), e.g. "
             "'sales:<value>'; got 's001'"),
    ("sales:s001:x", "models.sales.segment_fallback: must name a segment of 'sales' with 1 key value(s), e.g. "
                     "'sales:<value>'; got 'sales:s001:x'"),
    ("other:s001", "models.sales.segment_fallback: must name a segment of 'sales' with 1 key value(s), e.g. "
                   "'sales:<value>'; got 'other:s001'"),
])
def test_segment_fallback_must_name_a_segment_of_its_entry(project, fallback, message):
    assert project.config_error(models={"sales": dict(SALES, segment_fallback=fallback)}) == message


def test_segment_fallback_needs_segment_by(project):
    housing = dict(project.config["models"]["housing"], segment_fallback="housing:x")
    assert project.config_error(models={"housing": housing}) == \
        "models.housing.segment_fallback: applies only with segment_by"


def test_an_entry_whose_registry_is_down_keeps_its_segments_and_stays_pending(tmp_path):
    """MLflow unreachable at the end of a round: the segment is promoted and recorded as ever, a
    warning names MLflow, and the entry stays marked pending for the next command to repair."""
    project = shop_project(tmp_path / "proj", "sales", f"http://127.0.0.1:{free_port()}")
    result = project.cli("train", "sales:s000")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("sales:s000: promoted v1 (r2 ")
    assert "WARNING: sales: MLflow round not logged or registered at http://127.0.0.1:" in result.stderr
    assert project.current_version("sales:s000") == 1
    registry = project.state_dir / "registry"
    assert json.loads((registry / "sales@pending.json").read_text()) == [f"{socket.gethostname()}:{os.getpid()}"]
    side = json.loads((registry / "sales@segments.json").read_text())
    assert "Connection refused" in side["error"] and "registered_version" not in side
