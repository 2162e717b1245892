"""Data sets (issue 16): a directory or glob of CSV, gzip CSV and Parquet partitions: fingerprints,
training, new files in `status`, schema checks and bad input. The command runs in-process (a
subprocess would only add its imports and a config validation, ~2 s of CPU a run) except where
another process matters: the templates' first `check`, a file growing under a reader, Dask."""
import gzip
import json
import os
import threading

import pandas as pd
import yaml
import pytest

from retrainctl.data import datasets
from retrainctl.base.errors import DataError, TrainingError
from retrainctl.data.fingerprint import FingerprintCache
from retrainctl.config.records import CsvOptions, TrainingSpec
from retrainctl.fit.task import run_task
from conftest import Project, copy_project, made_once

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]


def partitions(project, fmt="parquet", days=DAYS, folder="events"):
    """The small housing data split into one partition per day, Hive style, with the marker and
    temporary files Spark leaves beside them; returns the set's folder."""
    df = pd.read_csv(project.data("housing"))
    root = project.root / "data" / folder
    for i, day in enumerate(days):
        write_partition(root, day, df.iloc[i::len(days)], fmt)
    (root / "_SUCCESS").write_text("")
    (root / f"date={days[0]}" / ".part-0001.parquet.tmp").write_bytes(b"half written")
    (root / "_temporary").mkdir()
    (root / "_temporary" / "part-9.csv").write_text("not,data\n")
    return root


def write_partition(root, day, df, fmt="parquet"):
    folder = root / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        path = folder / "part-0000.parquet"
        df.to_parquet(path, index=False)
    elif fmt == "csv.gz":
        path = folder / "part-0000.csv.gz"
        path.write_bytes(gzip.compress(df.to_csv(index=False).encode()))
    else:
        path = folder / "part-0000.csv"
        df.to_csv(path, index=False)
    return path


def housing_only(project, **changes):
    project.config["models"] = {"housing": dict(project.config["models"]["housing"], **changes)}
    project.write_config()


def status(project):
    done = project.cli("status", "--json")
    assert done.exit_code == 0, done.stderr
    return json.loads(done.stdout)["models"][0]


def metadata(project, name="housing"):
    return json.loads((project.model_dir / name / f"v{project.current_version(name)}" / "metadata.json").read_text())


# A housing-only project trained (v1) on the partitions of partitions(), by the installed
# command, is the starting point of several tests. It is made once per `make test` per format
# (conftest.made_once), and each test gets a copy: the same files, config, state and models a
# `check` of its own would have left.
def set_template(tmp_path_factory, fmt):
    def make(folder):
        template = Project(folder / "proj")
        partitions(template, fmt)
        housing_only(template, data_path="data/events")
        done = template.run("check")
        assert done.returncode == 0, done.stderr
        assert template.current_version("housing") == 1

    folder = made_once(tmp_path_factory, f"set-{fmt}", make)
    template = Project.__new__(Project)
    template.root, template.config_path = folder / "proj", folder / "proj" / "etc" / "retrainctl.yaml"
    template.config = yaml.safe_load(template.config_path.read_text())
    return template


@pytest.fixture(scope="session")
def _parquet_set(tmp_path_factory):
    return set_template(tmp_path_factory, "parquet")


@pytest.fixture(scope="session")
def _csv_set(tmp_path_factory):
    return set_template(tmp_path_factory, "csv")


@pytest.fixture
def parquet_set(tmp_path, _parquet_set):
    """A copy of the project after `check` trained housing v1 on the Parquet partitions of partitions()."""
    return copy_project(_parquet_set, tmp_path / "proj")


@pytest.fixture
def csv_set(tmp_path, _csv_set):
    """A copy of the project after `check` trained housing v1 on the CSV partitions of partitions()."""
    return copy_project(_csv_set, tmp_path / "proj")




def test_a_directory_of_parquet_partitions_is_one_data_set(parquet_set):
    project = parquet_set  # partitions(), housing only, data_path data/events; its `check` exited 0
    root = project.root / "data" / "events"
    expected = [f"date={day}/part-0000.parquet" for day in DAYS]
    meta = metadata(project)
    assert meta["data_files"] == expected  # markers, temporary and hidden files ignored
    assert meta["rows"] == len(pd.read_csv(project.data("housing")))
    row = status(project)
    assert (row["data_files"], row["new_files"], row["data_changed"]) == (4, [], False)
    assert row["data_rows"] == meta["rows"]

    # a new partition: the set changes, status names it, a dry run finds work
    write_partition(root, "2026-11-05", pd.read_csv(project.data("housing")).head(30))
    row = status(project)
    assert (row["data_files"], row["new_files"], row["data_changed"]) == (5, ["date=2026-11-05/part-0000.parquet"], True)
    assert project.cli("status").stdout.splitlines()[-1] == (
        "housing: 1 of 5 files new since v1: date=2026-11-05/part-0000.parquet")
    assert project.cli("check", "--dry-run").exit_code == 3
    assert project.cli("check").exit_code == 0
    record = project.history()[-1]
    assert record["status"] == "success"
    assert "data file changed: data/events (5 files)" in record["description"]
    assert len(metadata(project)["data_files"]) == 5
    assert project.cli("check", "--dry-run").exit_code == 0


def test_a_glob_of_mixed_formats_trains_on_every_row(project):
    df = pd.read_csv(project.data("housing"))
    root = project.root / "data" / "events"
    write_partition(root, DAYS[0], df.iloc[0::3], "parquet")
    write_partition(root, DAYS[1], df.iloc[1::3], "csv.gz")
    # columns in another order are the same schema
    write_partition(root, DAYS[2], df.iloc[2::3][list(reversed(df.columns))], "csv")
    housing_only(project, data_path="data/events/date=*/part-*")
    row = status(project)
    assert (row["data_files"], row["data_rows"]) == (3, len(df))
    done = project.cli("check")
    assert done.exit_code == 0, done.stderr
    meta = metadata(project)
    assert meta["rows"] == len(df)
    assert meta["data_files"] == ["date=2026-11-01/part-0000.parquet", "date=2026-11-02/part-0000.csv.gz",
                                  "date=2026-11-03/part-0000.csv"]


def test_an_id_column_parquet_holds_as_numbers_and_csv_as_text_trains_every_segment(project):
    """An order id declared `id` is read as text from CSV but is an integer in Parquet. The model
    never uses it, so the files may disagree on it: every segment trains, without a note per
    segment (before, each failed: "feature_types names column(s) not in the file: order_id")."""
    df = pd.read_csv(project.data("housing")).assign(
        order_id=lambda d: range(len(d)),  # and an ISO time, which pandas warns about when asked day first
        ts=lambda d: pd.date_range("2026-01-13", periods=len(d), freq="h").strftime("%Y-%m-%dT%H:%M:%SZ"))
    root = project.root / "data" / "events"
    write_partition(root, DAYS[0], df.iloc[0::2], "parquet")
    write_partition(root, DAYS[1], df.iloc[1::2], "csv.gz")
    housing_only(project, data_path="data/events/", segment_by=["ocean_proximity"], min_segment_rows=20,
                 min_data_size=20, feature_types={"order_id": "id"})
    done = project.run("check")  # the fit processes' own stderr included
    assert done.returncode == 0, done.stderr
    segments = sorted(n for n in os.listdir(project.model_dir) if n.startswith("housing:"))
    assert len(segments) >= 3 and all(project.current_version(n) == 1 for n in segments), segments
    assert "left out" not in done.stderr and "not in the file" not in done.stderr
    assert "Warning" not in done.stderr, done.stderr


def test_csv_partitions_are_read_and_counted_with_the_models_csv_options(project):
    df = pd.read_csv(project.data("housing"))
    df["ocean_proximity"] = df["ocean_proximity"].astype(object)
    df.loc[df.index[0], "ocean_proximity"] = "NEAR\nBAY"  # a quoted line break is not a row
    root = project.root / "data" / "events"
    for i, day in enumerate(DAYS[:2]):
        path = root / f"date={day}" / "part-0000.csv"
        path.parent.mkdir(parents=True)
        df.iloc[i::2].to_csv(path, index=False, sep=";")
    housing_only(project, data_path="data/events", csv={"delimiter": ";"})
    row = status(project)
    assert (row["data_files"], row["data_rows"]) == (2, len(df))
    done = project.cli("check")
    assert done.exit_code == 0, done.stderr
    assert metadata(project)["rows"] == len(df)


def test_a_single_parquet_file_keeps_its_own_hash(project):
    df = pd.read_csv(project.data("housing"))
    path = project.root / "data" / "raw" / "housing.parquet"
    df.to_parquet(path, index=False)
    housing_only(project, data_path="data/raw/housing.parquet")
    assert project.cli("check").exit_code == 0
    from retrainctl.data.fingerprint import hash_bytes

    meta = metadata(project)
    assert meta["data_hash"] == hash_bytes(path.read_bytes()) and meta["rows"] == len(df)
    assert status(project)["data_files"] is None


def test_the_single_csv_file_of_today_is_unchanged(trained):
    project = trained  # housing v1 trained on the single CSV file by the first `check`
    housing_only(project)
    from retrainctl.data.fingerprint import hash_bytes

    meta = metadata(project)
    assert meta["data_hash"] == hash_bytes(project.data("housing").read_bytes())
    assert "data_files" not in meta and meta["data_lines"] == meta["rows"]
    row = status(project)
    assert (row["data_files"], row["new_files"]) == (None, None)


def bad_check(project, expect_code=1, installed=False):
    """Run check (in-process, or the installed command); it must fail with one error line; returns
    that line and the history records."""
    done = project.run("check") if installed else project.cli("check")
    code = done.returncode if installed else done.exit_code
    assert code == expect_code, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line or line.startswith("Error")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    return errors[0], project.history()


def test_a_csv_partition_with_another_header_is_a_data_error_naming_file_and_column(csv_set):
    project = csv_set
    root = project.root / "data" / "events"
    df = pd.read_csv(project.data("housing")).head(40).rename(columns={"households": "homes"})
    bad = write_partition(root, "2026-11-05", df, "csv")
    line, history = bad_check(project)
    assert str(bad) in line and "column 'households' is missing" in line
    assert [e["status"] for e in history] == ["success", "failure"]
    assert history[-1]["error_type"] == "data_error" and str(bad) in history[-1]["error"]
    assert project.current_version("housing") == 1


def test_a_partition_with_another_column_type_is_a_data_error(parquet_set):
    project = parquet_set
    root = project.root / "data" / "events"
    df = pd.read_csv(project.data("housing")).head(40)
    df["total_rooms"] = "many"
    bad = write_partition(root, "2026-11-05", df)
    line, history = bad_check(project)
    assert line.endswith(f"{bad}: column 'total_rooms' holds text values, but number in "
                         f"{root / 'date=2026-11-01' / 'part-0000.parquet'}")
    assert history[-1]["status"] == "failure" and project.current_version("housing") == 1


def test_a_truncated_parquet_file_is_a_data_error_naming_it(parquet_set):
    project = parquet_set
    root = project.root / "data" / "events"
    bad = write_partition(root, "2026-11-05", pd.read_csv(project.data("housing")).head(40))
    bad.write_bytes(bad.read_bytes()[:-100])
    line, history = bad_check(project)
    assert f"{bad}: not a readable Parquet file" in line
    assert [e["status"] for e in history] == ["success", "failure"]
    assert project.current_version("housing") == 1
    # the same error is recorded once, however many runs meet it
    bad_check(project)
    assert len(project.history()) == 2


def test_an_unreadable_partition_is_a_data_error_naming_it(parquet_set):
    project = parquet_set
    root = project.root / "data" / "events"
    bad = root / "date=2026-11-05" / "part-0000.csv"
    bad.parent.mkdir()
    os.mkfifo(bad)  # unreadable even for root, who reads a chmod 0 file
    line, history = bad_check(project)
    assert line.endswith(f"{bad}: not a regular file")
    assert history[-1]["status"] == "failure" and project.current_version("housing") == 1


def test_a_symlink_loop_in_the_directory_is_a_data_error_naming_it(parquet_set):
    project = parquet_set
    root = project.root / "data" / "events"
    loop = root / "date=2026-11-02" / "again"
    os.symlink("..", loop)
    line, history = bad_check(project)
    assert f"{loop}: symlink loop in the data directory" in line
    assert history[-1]["status"] == "failure" and project.current_version("housing") == 1


def test_an_empty_match_is_a_data_error_naming_the_pattern(project):
    partitions(project)
    housing_only(project, data_path="data/events/*/part-*.orc")
    line, history = bad_check(project)
    assert f"{project.root / 'data/events/*/part-*.orc'}: no data files match this pattern" in line
    assert len(history) == 1 and history[0]["status"] == "failure"


def test_a_partition_being_written_is_skipped_this_run(csv_set):
    """A file that grows while it is hashed is read again, then left for the next run."""
    project = csv_set
    root = project.root / "data" / "events"
    growing = root / "date=2026-11-05" / "part-0000.csv"
    growing.parent.mkdir()
    row = project.data("housing").read_text().splitlines()[1] + "\n"
    growing.write_text(project.data("housing").read_text().splitlines()[0] + "\n" + row * 400_000)
    stop = threading.Event()

    def writer():
        with open(growing, "a") as fh:
            while not stop.is_set():
                fh.write(row)
                fh.flush()
                stop.wait(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    try:  # read by another process than the writer's, as an ETL job's file would be
        line, history = bad_check(project, installed=True)
    finally:
        stop.set()
        thread.join()
    assert f"{growing}: data file keeps changing while it is read; skipped this run" in line
    assert history[-1]["status"] == "failure" and project.current_version("housing") == 1


def test_a_partition_gone_between_decision_and_fit_is_skipped_naming_it(project):
    from test_faults import decided

    root = partitions(project)
    housing_only(project, data_path="data/events")
    r, model, decision, obs = decided(project, "housing")
    gone = root / "date=2026-11-02" / "part-0000.parquet"
    gone.unlink()  # the ETL job compacts partitions after the decision
    out = r.attempts.run_one(model, decision, obs)
    assert out.record["status"] == "skipped" and out.record["error_type"] == "data_changed"
    assert out.record["error"] == f"{gone}: disappeared after the decision to train; will retry on the next check"
    assert project.current_version("housing") is None
    assert project.cli("check").exit_code == 0
    assert metadata(project)["data_files"] == [f"date={d}/part-0000.parquet" for d in DAYS if d != "2026-11-02"]


def test_the_fit_reads_exactly_the_decided_files(project):
    """A partition added after the decision is not trained on under the decided hash."""
    root = partitions(project)
    cache = FingerprintCache(str(project.state_dir))
    ds = datasets.fingerprint(cache, str(root))
    write_partition(root, "2026-11-05", pd.read_csv(project.data("housing")).head(30))
    spec = TrainingSpec(name="housing", target="median_house_value", task="regression", features=None,
                        estimator="sklearn.linear_model.Ridge", trainer=None, params={}, metric="r2", test_size=0.2,
                        random_state=0, csv=CsvOptions(), feature_types={})
    result = run_task(spec, str(root), ds.hash, data_files=ds.fit_files)
    assert result.data_hash == ds.hash and len(result.metadata["data_files"]) == 4
    changed = root / "date=2026-11-01" / "part-0000.parquet"
    pd.read_csv(project.data("housing")).head(50).to_parquet(changed, index=False)
    with pytest.raises(TrainingError, match=f"^{changed}: changed after the decision to train"):
        run_task(spec, str(root), ds.hash, data_files=ds.fit_files)


def test_set_hash_depends_on_names_and_contents_not_order(project):
    root = partitions(project)
    cache = FingerprintCache(str(project.state_dir))
    first = datasets.fingerprint(cache, str(root))
    assert datasets.fingerprint(cache, str(root) + "/*/*.parquet").hash == first.hash
    os.rename(root / "date=2026-11-04", root / "date=2026-11-09")
    assert datasets.fingerprint(cache, str(root)).hash != first.hash
    (root / "empty" / "_SUCCESS").mkdir(parents=True)
    with pytest.raises(DataError, match="no data files in this directory"):
        datasets.fingerprint(cache, str(root / "empty"))


RELABEL = {"Iris-setosa": "Iris-versicolor", "Iris-versicolor": "Iris-virginica", "Iris-virginica": "Iris-setosa"}


def iris_set_project(folder):
    """An iris-only project whose data is three Parquet partitions, after its first `check`."""
    project = Project(folder / "proj")
    df = pd.read_csv(project.data("iris"))
    root = project.root / "data" / "iris"
    for i, day in enumerate(DAYS[:3]):
        write_partition(root, day, df.iloc[i::3])
    project.config["models"] = {"iris": dict(project.config["models"]["iris"], data_path="data/iris")}
    project.write_config()
    done = project.run("check")
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="session")
def _iris_set(tmp_path_factory):
    """iris_set_project, made once per `make test` (conftest.made_once)."""
    folder = made_once(tmp_path_factory, "iris-set", iris_set_project)
    project = Project.__new__(Project)
    project.root, project.config_path = folder / "proj", folder / "proj" / "etc" / "retrainctl.yaml"
    project.config = yaml.safe_load(project.config_path.read_text())
    return project


def iris_set(template, dest):
    """A copy of the _iris_set project at `dest`: (project, its partitions' folder, the iris data)."""
    project = copy_project(template, dest)
    return project, project.root / "data" / "iris", pd.read_csv(project.data("iris"))


def test_new_partitions_are_the_performance_triggers_eval_data(_iris_set, tmp_path):
    project, root, df = iris_set(_iris_set, tmp_path / "proj")
    write_partition(root, DAYS[3], df.head(40))
    dry = json.loads(project.cli("check", "--dry-run", "--json").stdout)["models"][0]
    assert [r["trigger_type"] for r in dry["due_reasons"]] == ["data_change"]

    relabelled = df.head(40).assign(Species=df.head(40)["Species"].map(RELABEL))
    write_partition(root, DAYS[3], relabelled)
    dry = json.loads(project.cli("check", "--dry-run", "--json").stdout)["models"][0]
    assert [r["trigger_type"] for r in dry["due_reasons"]] == ["data_change", "performance"]
    assert dry["due_reasons"][1]["description"].startswith(
        "performance degraded: accuracy 0 (98% CI 0..0.1087) on 40 rows of data/iris (4 files): 1 new file(s) "
        "vs baseline")


def test_a_drift_set_of_parquet_inputs(_iris_set, tmp_path):
    project, root, df = iris_set(_iris_set, tmp_path / "proj")
    recent = project.root / "data" / "recent"
    shifted = df.drop(columns=["Species"]).assign(PetalLengthCm=df["PetalLengthCm"] + 5)
    write_partition(recent, DAYS[0], shifted.iloc[::2])
    write_partition(recent, DAYS[1], shifted.iloc[1::2])
    project.config["models"]["iris"].update(drift_path="data/recent", min_eval_rows=30)
    project.write_config()
    st = json.loads(project.cli("status", "--json").stdout)["models"][0]
    assert (st["drift_source"], st["drift_rows"], st["drifted"]) == ("data/recent", 150, True)
    assert set(st["drifted_features"]) == {"PetalLengthCm:range", "PetalLengthCm"}


def test_dask_workers_read_the_same_set(_iris_set, tmp_path):
    from test_dask import Cluster, use_dask

    project, root, df = iris_set(_iris_set, tmp_path / "proj")
    write_partition(root, DAYS[3], df.head(30), "csv.gz")
    logs = tmp_path / "dask"
    logs.mkdir()
    cluster = Cluster(logs, workers=1)
    try:
        use_dask(project, cluster.address)
        [worker_pid] = cluster.worker_pids().values()
        done = project.run("check")
        assert done.returncode == 0, done.stderr
    finally:
        cluster.stop()
    record = project.history()[-1]
    assert (record["status"], record["executor"], record["version"]) == ("success", "dask", 2)
    meta = json.loads((project.model_dir / "iris" / "v2" / "metadata.json").read_text())
    assert meta["fit_pid"] == worker_pid and meta["rows"] == 180
    assert meta["data_files"][-1] == "date=2026-11-04/part-0000.csv.gz"


def test_a_no_op_check_on_an_unchanged_parquet_set_imports_nothing_heavy(project):
    import subprocess
    import sys
    import time

    root = partitions(project)
    hour_ago = time.time() - 3600
    for path in root.rglob("*"):
        os.utime(path, (hour_ago, hour_ago))  # old enough for the fingerprint cache to trust
    housing_only(project, data_path="data/events")
    assert project.cli("check").exit_code == 0
    code = ("import sys\nfrom retrainctl.cli import main\n"
            "try:\n    main(['--config', sys.argv[1], 'check'])\nexcept SystemExit as e:\n    code = e.code\n"
            "heavy = [m for m in ('pandas', 'numpy', 'pyarrow', 'sklearn') if m in sys.modules]\n"
            "print(code, heavy)\n")
    done = subprocess.run([sys.executable, "-c", code, str(project.config_path)], capture_output=True, text=True,
                          cwd="/")
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
