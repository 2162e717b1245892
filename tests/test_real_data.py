"""What a real year of data brings, each finding on a small generated file, the command run
in-process (tests/test_e2e.py runs the installed one; here a subprocess would only add its imports
and, after each config edit, a validation that imports scikit-learn: ~2 s of CPU a run): labels keep
their type, the drift reference counts every input row and sees outside the training range, retrains
on unchanged data make no copies, config edits are a trigger, drift alerts show in the tables, the
schema is checked on the columns the model uses, and row numbers are not features by accident."""
import io
import json
import sys

import joblib
import numpy as np
import pandas as pd
import pytest

from retrainctl.config.records import CsvOptions, TrainingSpec
from retrainctl.fit.task import run_task
from tests.conftest import REPO, base_config

sys.path.insert(0, str(REPO / "bench"))
from generate import orders, write_month  # noqa: E402


def classification_frame(labels, n=240, seed=0):
    """Two informative numeric features and `label` drawn from `labels` by them (so a model can
    learn it), with some rows missing their label."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, n), rng.normal(0, 1, n)
    which = ((x1 > 0).astype(int) + (x2 > 0.5).astype(int)) % len(labels)
    frame = pd.DataFrame({"x1": x1.round(3), "x2": x2.round(3),
                          "label": pd.Series([labels[i] for i in which], dtype=object)})
    frame.loc[rng.random(n) < 0.05, "label"] = None
    return frame


SPEC = TrainingSpec(name="m", target="label", task="classification", metric="accuracy", features=None,
                    estimator="sklearn.tree.DecisionTreeClassifier", trainer=None, params={"random_state": 0},
                    test_size=0.25, random_state=0, csv=CsvOptions(), feature_types={})


def fitted(path, files=None):
    result = run_task(SPEC, str(path), None, data_files=files)
    return joblib.load(io.BytesIO(result.model_bytes)), result.metadata


def write(frame, path, fmt, kind):
    """`frame` as `fmt`, its label column typed as `kind` (as each format can hold it)."""
    out = frame.copy()
    if fmt == "parquet":
        dtype = {"int": "Int8", "float": "Float64", "bool": "boolean", "str": "string", "category": "category"}[kind]
        out["label"] = out["label"].astype(dtype)
        out.to_parquet(path, index=False)
    else:
        out.to_csv(path, index=False, compression="gzip" if fmt == "csv.gz" else None)
    return path


LABELS = {"int": [0, 1, 2], "float": [0.5, 1.5, 2.5], "bool": [False, True], "str": ["low", "mid", "high"],
          "category": ["low", "mid", "high"]}
KINDS = {"int": "iu", "float": "f", "bool": "b", "str": "OU", "category": "OU"}


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet", "mixed"])
@pytest.mark.parametrize("kind", sorted(LABELS))
def test_labels_keep_their_type_in_every_format(tmp_path, kind, fmt):
    """Numeric classes stay numbers (integers where they are whole, a gap of missing labels
    included), booleans stay booleans, text and categories stay text, whatever the files are."""
    frame = classification_frame(LABELS[kind])
    if fmt == "mixed":  # a Parquet partition beside a CSV partition: the same classes from both
        (tmp_path / "set").mkdir()
        write(frame.iloc[::2], tmp_path / "set" / "a.parquet", "parquet", kind)
        write(frame.iloc[1::2], tmp_path / "set" / "b.csv", "csv", kind)
        from retrainctl.data import datasets
        from retrainctl.data.fingerprint import FingerprintCache

        ds = datasets.fingerprint(FingerprintCache(str(tmp_path / "state")), str(tmp_path / "set"))
        model, meta = fitted(tmp_path / "set", ds.fit_files)
    else:
        model, meta = _fitted_file(write(frame, tmp_path / f"data.{fmt}", fmt, kind))
    pred = model.predict(frame[["x1", "x2"]])
    assert np.asarray(pred).dtype.kind in KINDS[kind], (kind, fmt, np.asarray(pred).dtype)
    assert sorted(map(str, set(pred))) == sorted(map(str, LABELS[kind]))
    assert meta["classes"] == sorted(map(str, LABELS[kind]))


def _fitted_file(path):
    from retrainctl.data import datasets
    from retrainctl.data.fingerprint import FingerprintCache

    ds = datasets.fingerprint(FingerprintCache(str(path.parent / "state")), str(path))
    return fitted(path, ds.fit_files)


def int_label_project(project):
    """A model of 0/1 labels with one empty cell (it reads as floats), and an eval file of the same."""
    frame = classification_frame([0, 1], n=400, seed=3)
    frame.iloc[:320].to_csv(project.root / "data" / "raw" / "labels.csv", index=False)
    frame.iloc[320:].to_csv(project.root / "data" / "raw" / "labels-eval.csv", index=False)
    project.write_config(base_config(labels={
        "data_path": "data/raw/labels.csv", "eval_path": "data/raw/labels-eval.csv", "target": "label",
        "task": "classification", "estimator": "sklearn.tree.DecisionTreeClassifier",
        "params": {"random_state": 0, "max_depth": 3}, "min_eval_rows": 30}))
    return frame


def test_numeric_labels_with_a_gap_predict_integers_and_score_right(project):
    frame = int_label_project(project)
    done = project.cli("check")
    assert done.exit_code == 0, done.stderr
    model = joblib.load(project.model_dir / "labels" / "v1" / "model.joblib")
    pred = model.predict(frame[["x1", "x2"]].head(5))
    assert pred.dtype.kind == "i" and set(pred) <= {0, 1}
    row = json.loads(project.cli("status", "--json").stdout)["models"][0]
    assert row["eval_score"] > 0.8 and row["degraded"] is False, row["eval_note"]
    again = project.cli("check", "--json")
    assert json.loads(again.stdout)["models"][0]["action"] == "none"
    assert [e["status"] for e in project.history()] == ["success"]


def test_a_model_stored_with_text_classes_keeps_working_and_its_next_version_is_right(project):
    """A model saved by retrainctl 0.1 predicts '0.0'/'1.0': it is still scored right on integer
    labels (no bogus degradation), and the next version predicts integers."""
    from sklearn.pipeline import make_pipeline
    from sklearn.tree import DecisionTreeClassifier

    from retrainctl.core.quality import metric_sample
    from retrainctl.state.store import ModelStore

    frame = int_label_project(project)
    train = frame.iloc[:320].dropna()
    old = make_pipeline(DecisionTreeClassifier(max_depth=3, random_state=0))
    old.fit(train[["x1", "x2"]], train["label"].astype(str))  # what 0.1 did: '0.0' and '1.0'
    buf = io.BytesIO()
    joblib.dump(old, buf)
    data_hash = __import__("blake3").blake3((project.root / "data/raw/labels.csv").read_bytes()).hexdigest()
    holdout = train.iloc[::5]
    store = ModelStore(str(project.model_dir))
    mv = store.save("labels", buf.getvalue(), {
        "data_hash": data_hash, "rows": len(train), "holdout_rows": len(holdout), "metric": "accuracy",
        "score": 0.9, "features": ["x1", "x2"], "trained_at_ts": 1.0e9, "promoted": True, "classes": ["0.0", "1.0"],
        "baseline": metric_sample("accuracy", holdout["label"].astype(str), old.predict(holdout[["x1", "x2"]]))})
    store.promote("labels", mv.version)
    row = json.loads(project.cli("status", "--json").stdout)["models"][0]
    assert row["eval_score"] > 0.8 and row["degraded"] is False, row["eval_note"]
    same = project.cli("train", "labels")  # the same data: nothing to train on without --force
    assert same.exit_code == 0 and same.stdout.startswith("labels: unchanged: ")
    done = project.cli("train", "labels", "--force")
    assert done.exit_code == 0, done.stderr
    new = joblib.load(project.model_dir / "labels" / "v2" / "model.joblib")
    assert new.predict(frame[["x1", "x2"]].head(3)).dtype.kind == "i"


def year_project(project, months=3, **model):
    """The generated year of orders as a data set of monthly partitions (mixed formats)."""
    frames = orders(months=12, rows_per_month=500, seed=7)
    for m in range(1, months + 1):
        write_month(frames[m - 1], project.root / "data" / "orders", m)
    project.write_config(base_config(orders={
        "data_path": "data/orders", "target": "units", "task": "regression", "metric": "mae",
        "estimator": "sklearn.linear_model.Ridge", "features": ["store", "promo", "price", "temp"],
        "min_eval_rows": 30, **model}))
    return frames


def test_the_drift_reference_counts_rows_without_a_label(project):
    """Cancelled orders never get a label, and their price is missing more often: a month's inputs
    compared with the reference of that same month are not drifted."""
    frames = year_project(project, months=1, drift_path="data/recent.csv")
    month = frames[0].copy()
    cancelled = month["units"].isna()
    month.loc[cancelled, "price"] = np.nan  # the inputs of cancelled orders: no price
    write_month(month, project.root / "data" / "orders", 1)
    month.drop(columns=["units"]).to_csv(project.root / "data" / "recent.csv", index=False)
    assert project.cli("check").exit_code == 0
    row = json.loads(project.cli("status", "--json").stdout)["models"][0]
    assert row["drifted"] is False, row["drift_note"]
    assert max(row["drift_psi"].values()) < 0.05
    assert "price:missing" in row["drift_psi"]


def test_drift_sees_values_outside_the_training_range_and_a_missing_rate(project):
    frames = year_project(project, months=1, drift_path="data/recent.csv",
                          features=["store", "price", "temp", "level", "year"], feature_types={"year": "calendar"})
    month = frames[0].assign(level=2013.0)
    write_month(month, project.root / "data" / "orders", 1)
    assert project.cli("check").exit_code == 0
    recent = month.assign(level=2099.0, year=2099)  # the same month's inputs, but for these
    recent.loc[::2, "temp"] = np.nan  # half the thermometers stopped reporting
    recent.drop(columns=["units"]).to_csv(project.root / "data" / "recent.csv", index=False)
    row = json.loads(project.cli("status", "--json").stdout)["models"][0]
    assert row["drifted"] is True
    assert set(row["drifted_features"]) == {"level:range", "temp:missing"}, row["drift_note"]
    assert "year" not in row["drift_psi"]  # a calendar number moves on by design
    below = month.assign(level=1900.0)
    below.drop(columns=["units"]).to_csv(project.root / "data" / "recent.csv", index=False)
    row = json.loads(project.cli("status", "--json").stdout)["models"][0]
    assert list(row["drifted_features"]) == ["level:range"]


def test_retrains_on_unchanged_data_make_no_copies(project):
    """drift_action retrain and the age trigger on training data that has not changed: recorded
    once each, no new version; with new data the age trigger trains again."""
    frames = year_project(project, months=1, drift_path="data/recent.csv", drift_action="retrain")
    assert project.cli("check").exit_code == 0
    shifted = frames[0].assign(price=frames[0]["price"] * 3)  # production prices tripled
    shifted.drop(columns=["units"]).to_csv(project.root / "data" / "recent.csv", index=False)
    first = project.cli("check", "--json")
    assert first.exit_code == 0, first.stderr
    row = json.loads(first.stdout)["models"][0]
    assert (row["action"], row["held"], row["due_reasons"][0]["trigger_type"]) == ("unchanged", "unchanged", "drift")
    skipped = project.history()[-1]
    assert (skipped["status"], skipped["error_type"], skipped["trigger_type"]) == ("skipped", "unchanged", "drift")
    assert "drift in production inputs; the training data has not changed" in skipped["description"]
    assert project.cli("check").exit_code == 0  # the same evidence: not recorded again
    assert [e["status"] for e in project.history()] == ["success", "skipped"]

    project.set_model("orders", max_model_age_hours=0.000001, drift_path=None)  # 3.6 ms: aged by now
    aged = project.cli("check", "--json")
    assert json.loads(aged.stdout)["models"][0]["result"].startswith("unchanged: the training data and config")
    assert sorted(p.name for p in (project.model_dir / "orders").iterdir()) == ["current", "v1"]
    write_month(frames[1], project.root / "data" / "orders", 2)  # new data: the age trigger trains
    assert project.cli("check").exit_code == 0
    assert [(e["trigger_type"], e["status"]) for e in project.history()][-1] == ("data_change", "success")
    forced = project.cli("train", "orders", "--force")
    assert forced.exit_code == 0 and forced.stdout.startswith("orders: promoted v3")


def test_pruning_never_removes_the_version_before_the_live_one(project):
    frames = year_project(project, months=1, keep_versions=1, promotion_tolerance=1.0)
    assert project.cli("check").exit_code == 0
    for m in (2, 3, 4):
        write_month(frames[m - 1], project.root / "data" / "orders", m)
        assert project.cli("check").exit_code == 0
    assert project.current_version("orders") == 4
    assert sorted(p.name for p in (project.model_dir / "orders").iterdir()) == ["current", "v3", "v4"]
    back = project.cli("rollback", "orders")
    assert back.exit_code == 0 and "to v3" in back.stdout


def test_a_config_edit_is_a_trigger_and_a_fixed_config_clears_its_backoff(project):
    year_project(project, months=1, promotion_tolerance=1.0)
    assert project.cli("check").exit_code == 0
    project.set_model("orders", params={"alpha": 5.0})
    dry = project.cli("check", "--dry-run")
    assert dry.exit_code == 3 and "config_change" in dry.stdout
    status = json.loads(project.cli("status", "--json").stdout)["models"][0]
    assert status["due_reasons"] == [{"trigger_type": "config_change", "description": "config changed since v1: params"}]
    assert project.cli("check").exit_code == 0
    assert project.history()[-1]["trigger_type"] == "config_change" and project.current_version("orders") == 2
    assert json.loads(project.cli("check", "--json").stdout)["models"][0]["action"] == "none"  # no loop

    project.set_model("orders", features=["store", "price", "no_such_column"])  # fails at every fit
    broken = project.cli("check")
    assert broken.exit_code == 1 and "no_such_column" in broken.stdout
    held = json.loads(project.cli("check", "--json").stdout)["models"][0]
    assert held["held"] == "backoff"
    project.set_model("orders", features=["store", "price"])  # fixed: tried again at once
    fixed = project.cli("check", "--json")
    row = json.loads(fixed.stdout)["models"][0]
    assert (row["action"], row["event"]["status"]) == ("train", "success"), row


def test_drift_alerts_show_in_the_check_and_status_tables(project):
    frames = year_project(project, months=1, drift_path="data/recent.csv")
    assert project.cli("check").exit_code == 0
    frames[0].assign(price=frames[0]["price"] * 3, temp=frames[0]["temp"] + 30).drop(columns=["units"]).to_csv(
        project.root / "data" / "recent.csv", index=False)
    check = project.cli("check")
    line = check.stdout.splitlines()[1]
    assert line == "orders  no   drift alert: temp:range, price:range  none    up to date"
    status = project.cli("status").stdout.splitlines()[1]
    assert "  no   drift alert: temp:range, price:range  " in status


def test_the_schema_is_checked_on_the_columns_the_model_uses(project):
    """A nullable bool survives Parquet but is text in a CSV: a column the model never reads may
    differ between files, with a note; one it reads may not."""
    frames = year_project(project, months=1)
    month = frames[1].assign(late=frames[1]["late"].map({True: "yes", False: "no"}))
    write_month(month, project.root / "data" / "orders", 2)  # an export that spells booleans out
    done = project.cli("check")
    assert done.exit_code == 0, done.stderr
    assert ("column 'late' left out: text values in " in done.stderr
            and ", bool in " in done.stderr and "; the model does not use it" in done.stderr)
    project.set_model("orders", features=["store", "price", "late"])
    broken = project.cli("check")
    assert broken.exit_code == 1
    assert "column 'late' holds text values, but bool in" in broken.stdout


def test_a_row_number_is_not_a_feature_by_accident(project):
    """Iris' `Id` is a row number: without `features` it would give accuracy 1.0 on a sorted file."""
    project.set_model("iris", features=None)
    done = project.cli("check", "iris")
    assert done.exit_code == 0, done.stderr
    assert "column 'Id' dropped: id-like (unique, increasing whole numbers" in done.stderr
    meta = json.loads((project.model_dir / "iris" / "v1" / "metadata.json").read_text())
    assert meta["features"] == ["Id", "SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]
    assert meta["columns"]["Id"]["used"] is False
    status = project.cli("status", "iris")
    assert "iris: v1: column 'Id' dropped: id-like" in status.stdout


def test_holdout_latest_holds_out_the_newest_rows():
    """By time_column, else the newest files of a set, else the last rows of a file."""
    from retrainctl.fit.task import holdout_split

    X = pd.DataFrame({"x": np.arange(40.0)})  # a holdout has at least 10 rows: 0.25 of 40
    y = pd.Series(np.arange(40.0) * 2)
    spec = TrainingSpec(name="m", target="y", task="regression", metric="r2", features=None, estimator="e",
                        trainer=None, params={}, test_size=0.25, random_state=0, csv=CsvOptions(), feature_types={},
                        holdout="latest")
    when = np.random.default_rng(0).permutation(40).astype(float)
    _, X_test, _, y_test, _, order = holdout_split(spec, X, y, "d.csv", when)
    newest = list(np.arange(30.0, 40.0))
    assert sorted(X_test["x"]) == sorted(np.flatnonzero(when >= 30).astype(float)) and sorted(order) == newest
    _, X_test, *_ = holdout_split(spec, X, y, "d.csv")
    assert list(X_test["x"]) == newest


def test_random_state_salts_the_random_holdout_of_numbers_too():
    """pandas salts only text when it hashes rows: an all-numeric frame split alike for every
    random_state. random_state 0 (the default) and frames with text keep the split they had."""
    from retrainctl.fit.task import holdout_split

    rng = np.random.default_rng(3)
    X = pd.DataFrame({"x": rng.normal(size=400), "z": rng.normal(size=400)})
    y = pd.Series(rng.normal(size=400))

    def held(frame, random_state):
        spec = TrainingSpec(name="m", target="y", task="regression", metric="r2", features=None, estimator="e",
                            trainer=None, params={}, test_size=0.25, random_state=random_state, csv=CsvOptions(),
                            feature_types={})
        return set(holdout_split(spec, frame, y, "d.csv")[1].index)

    def unsalted(frame, random_state):  # 0.2's split: the salted hash of the row's content alone
        hashes = pd.util.hash_pandas_object(pd.concat([frame, y], axis=1), index=False,
                                            hash_key=f"{random_state:016d}").to_numpy()
        return set(np.flatnonzero(hashes < np.uint64(int(0.25 * 2**64))))

    splits = [held(X, r) for r in (0, 1, 2)]
    assert splits[0] != splits[1] != splits[2] != splits[0]
    assert all(80 <= len(s) <= 120 for s in splits)
    assert splits[0] == unsalted(X, 0)
    text = X.assign(store=[f"s{i % 7}" for i in range(400)])
    assert held(text, 1) == unsalted(text, 1) != held(text, 2)


def test_a_seasonal_year_alarms_only_on_the_broken_month(project):
    """A year of monthly partitions in mixed formats, with seasonal noise, cancelled orders and a
    real break in month 9 (prices jump and the price effect flips). Inputs arrive before their
    labels, as in production, and a check runs after each step. With `holdout: latest` no
    performance or drift alarm is raised in a month without the break, month 9 raises both, and
    every version is trained on data of its own."""
    frames = orders(months=12, rows_per_month=500, seed=11, break_months=(9,))
    for m in (1, 2, 3):
        write_month(frames[m - 1], project.root / "data" / "orders", m)
    project.write_config(base_config(orders={
        "data_path": "data/orders", "eval_path": "data/eval.csv", "drift_path": "data/recent.csv",
        "target": "units", "task": "regression", "metric": "mae", "estimator": "sklearn.linear_model.Ridge",
        "features": ["store", "promo", "price", "temp"], "holdout": "latest", "time_column": "ts",
        "min_eval_rows": 30, "keep_versions": 20}))
    assert project.cli("check").exit_code == 0
    alarms = {}
    for m in range(4, 13):
        month = frames[m - 1]
        month.drop(columns=["units"]).to_csv(project.root / "data" / "recent.csv", index=False)
        inputs = project.cli("check", "--json")  # the month's inputs: no labels yet
        drifted = json.loads(project.cli("status", "--json").stdout)["models"][0]["drifted"]
        month.dropna(subset=["units"]).to_csv(project.root / "data" / "eval.csv", index=False)
        labelled = json.loads(project.cli("check", "--json").stdout)["models"][0]
        degraded = json.loads(project.cli("status", "--json").stdout)["models"][0]["degraded"]
        alarms[m] = (bool(drifted), bool(degraded) or labelled["due_reasons"][:1] == [
            {"trigger_type": "performance", "description": labelled["due_reasons"][0]["description"]}]
            if labelled["due_reasons"] else bool(degraded))
        assert inputs.exit_code == 0
        write_month(month, project.root / "data" / "orders", m)
        assert project.cli("check").exit_code == 0
    assert {m for m, (drift, _) in alarms.items() if drift} == {9}, alarms
    assert {m for m, (_, perf) in alarms.items() if perf} == {9}, alarms
    hashes = [json.loads(p.read_text())["data_hash"] for p in (project.model_dir / "orders").glob("v*/metadata.json")]
    assert len(hashes) == len(set(hashes)) >= 10


def test_a_flag_column_alone_is_a_feature_in_every_format(project):
    """A bool column with no gap (CSV True/False, Parquet bool) failed every fit: SimpleImputer
    refuses a bool array. With pandas' nullable boolean and gaps it trained."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"promo": rng.random(300) < 0.3, "x": rng.normal(size=300)})
    frame["units"] = 3 * frame["promo"] + frame["x"] + rng.normal(size=300)
    gaps = frame.assign(promo=frame["promo"].astype("boolean").mask(frame.index < 10))
    frame.to_csv(project.root / "data" / "flag.csv", index=False)
    frame.to_parquet(project.root / "data" / "flag.parquet", index=False)
    gaps.to_parquet(project.root / "data" / "gaps.parquet", index=False)
    model = {"target": "units", "task": "regression", "estimator": "sklearn.linear_model.Ridge", "features": ["promo"]}
    project.write_config(base_config(**{name: dict(model, data_path=f"data/{name.replace('_', '.')}")
                                        for name in ("flag_csv", "flag_parquet", "gaps_parquet")}))
    done = project.cli("check")
    assert done.exit_code == 0, done.stdout
    for name in ("flag_csv", "flag_parquet", "gaps_parquet"):
        pipeline = joblib.load(project.model_dir / name / "current" / "model.joblib")
        for promo in ([True, False], pd.array([True, False], dtype="boolean")):  # with or without gaps
            with_promo, without = pipeline.predict(pd.DataFrame({"promo": promo}))
            assert 2.5 < with_promo - without < 3.5, name
        assert len(pipeline.predict(pd.DataFrame({"promo": pd.array([None, True], dtype="boolean")}))) == 2
    from retrainctl.publish.tracking import serialization_format  # plain scikit-learn parts only

    assert serialization_format(pipeline, pd.DataFrame({"promo": [True, False]}))[0] == "skops"
