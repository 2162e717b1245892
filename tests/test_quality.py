"""Performance and drift triggers: the pure PSI / verdict math, and the triggers end to end
(relabelled eval data, a lower-is-better metric, shifted inputs, no retrain loops, caching)."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrainctl import quality
from retrainctl.fold import fold

# --- pure functions -----------------------------------------------------------------------------


def test_psi_of_identical_distributions_is_zero():
    assert quality.psi([0.25, 0.25, 0.5], [0.25, 0.25, 0.5]) == 0.0


def test_psi_known_value():
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert quality.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected)
    assert quality.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.87889, abs=1e-5)


def test_psi_floors_empty_bins_and_rejects_misaligned_bins():
    value = quality.psi([1.0, 0.0], [0.5, 0.5])
    assert math.isfinite(value) and value > 1
    with pytest.raises(ValueError, match="bin counts differ: 2 vs 3"):
        quality.psi([0.5, 0.5], [0.2, 0.3, 0.5])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=2, max_size=12), st.data())
def test_psi_is_never_negative(a_counts, data):
    b_counts = data.draw(st.lists(st.integers(0, 50), min_size=len(a_counts), max_size=len(a_counts)))
    if not sum(a_counts) or not sum(b_counts):
        return
    a = [c / sum(a_counts) for c in a_counts]
    b = [c / sum(b_counts) for c in b_counts]
    assert quality.psi(a, b) >= -1e-12


def test_quantile_matches_numpy():
    values = sorted([3.5, 1.0, 7.25, 2.0, 2.0, 9.0, 4.5])
    for q in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
        assert quality.quantile(values, q) == pytest.approx(float(np.quantile(values, q)))


def test_numeric_reference_deciles_and_missing_bin():
    stats = quality.numeric_reference(list(range(100)) + [None] * 25)
    assert stats["kind"] == "numeric"
    assert stats["edges"] == pytest.approx([9.9 * i for i in range(1, 10)])
    assert len(stats["proportions"]) == 11
    assert stats["proportions"][:10] == pytest.approx([0.08] * 10)
    assert stats["proportions"][-1] == pytest.approx(0.2)   # 25 of 125 missing
    assert sum(stats["proportions"]) == pytest.approx(1.0)


def test_numeric_reference_collapses_duplicate_edges():
    stats = quality.numeric_reference([1.0] * 50 + [2.0] * 50)
    assert stats["edges"] == [1.0, 1.5, 2.0]
    assert quality.histogram(stats, [1.0, 2.0, 5.0, float("nan")]) == [0.0, 0.25, 0.0, 0.5, 0.25]


def test_categorical_reference_lumps_rare_categories_and_unseen_values():
    stats = quality.categorical_reference(["a"] * 6 + ["b"] * 3 + ["c"] + [None], max_categories=2)
    assert stats == {"kind": "categorical", "categories": ["a", "b", "<other>"],
                     "proportions": pytest.approx([6 / 11, 3 / 11, 2 / 11])}
    assert quality.expected(stats) == pytest.approx([6 / 11, 3 / 11, 2 / 11])
    assert quality.histogram(stats, ["a", "zzz", None, "b"]) == [0.25, 0.25, 0.5]

    full = quality.categorical_reference(["x", "y"])
    assert quality.expected(full) == [0.5, 0.5, 0.0]
    assert quality.histogram(full, ["x", "new"]) == [0.5, 0.0, 0.5]


def test_feature_psi_sees_a_shift_and_not_a_resample():
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, 2000).tolist()
    reference = quality.reference_stats({"x": train, "c": ["a", "b"] * 1000}, {"x"})
    same = quality.feature_psi(reference, {"x": rng.normal(0, 1, 500).tolist(), "c": ["a", "b"] * 250})
    shifted = quality.feature_psi(reference, {"x": rng.normal(1.5, 1, 500).tolist(), "c": ["b"] * 500})
    assert same["x"] < 0.1 and same["c"] < 0.01
    assert shifted["x"] > 1.0 and shifted["c"] > 1.0
    assert list(quality.drifted({"a": 0.1, "b": 0.9, "c": 0.3}, 0.2)) == ["b", "c"]


def test_performance_verdict_follows_the_metric_direction():
    v = quality.performance_verdict("accuracy", 0.9, 0.8, 40, True, 0.05, 30, "eval.csv")
    assert v.state == "degraded" and v.degradation == pytest.approx(1 / 9)
    assert v.text == ("performance degraded: accuracy 0.8 on 40 rows of eval.csv vs baseline 0.9 "
                      "(11.1% worse, performance_threshold 0.05)")
    # rmse: lower is better, so a higher value is a degradation and a lower one is not
    worse = quality.performance_verdict("rmse", 10.0, 12.0, 40, False, 0.05, 30, "eval.csv")
    assert worse.state == "degraded" and worse.degradation == pytest.approx(0.2)
    better = quality.performance_verdict("rmse", 10.0, 8.0, 40, False, 0.05, 30, "eval.csv")
    assert better.state == "ok" and better.degradation == pytest.approx(-0.2)
    assert "(20.0% better, performance_threshold 0.05)" in better.text
    within = quality.performance_verdict("rmse", 10.0, 10.4, 40, False, 0.05, 30, "eval.csv")
    assert within.state == "ok"


def test_too_few_rows_is_not_evidence():
    v = quality.performance_verdict("accuracy", 0.9, None, 12, True, 0.05, 30, "eval.csv")
    assert (v.state, v.degradation) == ("insufficient", None)
    assert v.text == "not enough evidence: 12 labelled row(s) in eval.csv, min_eval_rows is 30"
    d = quality.drift_verdict({}, 5, 0.2, 30, "recent.csv")
    assert d.text == "not enough evidence: 5 row(s) in recent.csv, min_eval_rows is 30"


def test_drift_verdict():
    d = quality.drift_verdict({"a": 0.05, "b": 0.61, "c": 0.25}, 100, 0.2, 30, "recent.csv")
    assert d.state == "degraded"
    assert d.text == "input drift in recent.csv: PSI b 0.61, c 0.25 (drift_threshold 0.2)"
    ok = quality.drift_verdict({"a": 0.05}, 100, 0.2, 30, "recent.csv")
    assert (ok.state, ok.text) == ("ok", "no input drift in recent.csv: max PSI 0.05 (drift_threshold 0.2)")


def test_fold_remembers_quality_evidence_of_success_and_rejection_only():
    events = [
        {"model_name": "m", "status": "failure", "quality_keys": {"performance": "d|e1"}},
        {"model_name": "m", "status": "success", "quality_keys": {"performance": "d|e2"}},
        {"model_name": "m", "status": "rejected", "quality_keys": {"drift": "d|x"}},
    ]
    assert fold(events)["m"].quality_handled == {"performance": "d|e2", "drift": "d|x"}


# --- helpers for the end-to-end tests -----------------------------------------------------------

RELABEL = {"Iris-setosa": "Iris-versicolor", "Iris-versicolor": "Iris-virginica", "Iris-virginica": "Iris-setosa"}


def iris_rows(project):
    lines = project.data("iris").read_text().splitlines()
    return lines[0], lines[1:]


def write_eval(project, rows, relabel=False, name="eval.csv"):
    header, _ = iris_rows(project)
    if relabel:
        rows = [",".join(r.split(",")[:-1] + [RELABEL[r.split(",")[-1]]]) for r in rows]
    path = project.root / "data" / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def status_of(project, name):
    out = project.run("status", "--json")
    assert out.returncode == 0, out.stderr
    return next(m for m in json.loads(out.stdout)["models"] if m["model_name"] == name)


def iris_history(project):
    return [(e["trigger_type"], e["status"]) for e in project.history("iris")]


# --- performance trigger ------------------------------------------------------------------------


def test_relabelled_eval_data_triggers_performance_and_correct_data_does_not(project):
    assert project.run("check").returncode == 0
    _, rows = iris_rows(project)
    write_eval(project, rows)
    project.set_model("iris", eval_path="data/eval.csv")

    first = project.run("check", "--json")
    assert first.returncode == 0, first.stderr
    assert [(m["model_name"], m["due"]) for m in json.loads(first.stdout)["models"]] == [
        ("iris", False), ("housing", False)]
    st_ok = status_of(project, "iris")
    assert st_ok["eval_rows"] == 150 and st_ok["eval_score"] > 0.95 and st_ok["degraded"] is False
    assert st_ok["eval_source"] == "data/eval.csv" and st_ok["note"] == ""

    write_eval(project, rows, relabel=True)
    second = project.run("check")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[1].split()[:4] == ["iris", "yes", "performance", "train"]
    record = project.history("iris")[-1]
    assert (record["trigger_type"], record["status"], record["version"]) == ("performance", "success", 2)
    assert record["description"].startswith(
        "performance degraded: accuracy 0 on 150 rows of data/eval.csv vs baseline 0.9524 "
        "(100.0% worse, performance_threshold 0.05)")
    assert record["quality_keys"]["performance"].startswith(record["data_hash"] + "|eval:")

    # No loop: the same data and eval data do not fire again, but status still says degraded.
    for _ in range(2):
        again = project.run("check")
        assert again.returncode == 0 and again.stdout.splitlines()[1].split()[:3] == ["iris", "no", "-"]
    assert iris_history(project) == [("initial", "success"), ("performance", "success")]
    st_bad = status_of(project, "iris")
    assert st_bad["due"] is False and st_bad["degraded"] is True
    assert st_bad["eval_score"] == 0.0 and st_bad["eval_degradation"] == 1.0
    assert st_bad["note"] == ("performance still degraded, but a retrain already ran for this data and "
                              "eval data; waiting for either to change")

    # New evidence (other eval rows) may fire once more.
    write_eval(project, rows[:120], relabel=True)
    assert project.run("check").returncode == 0
    assert iris_history(project)[-1] == ("performance", "success")
    assert project.run("check").returncode == 0
    assert len(project.history("iris")) == 3


def test_too_few_eval_rows_is_only_a_note(project):
    assert project.cli("check").exit_code == 0
    _, rows = iris_rows(project)
    write_eval(project, rows[:12], relabel=True)
    project.set_model("iris", eval_path="data/eval.csv")
    out = project.cli("check", "--json")
    assert out.exit_code == 0
    assert json.loads(out.stdout)["models"][0]["due"] is False
    st = json.loads(project.cli("status", "--json", "iris").stdout)["models"][0]
    assert st["note"] == "performance: not enough evidence: 12 labelled row(s) in data/eval.csv, min_eval_rows is 30"
    assert st["eval_rows"] == 12 and st["eval_score"] is None and st["degraded"] is None

    project.set_model("iris", min_eval_rows=10)
    out = project.cli("check", "--json")
    assert json.loads(out.stdout)["models"][0]["due_reasons"][0]["trigger_type"] == "performance"


def test_appended_rows_are_the_eval_data_without_eval_path(project):
    assert project.cli("check").exit_code == 0
    header, rows = iris_rows(project)
    path = project.data("iris")
    original = path.read_text()

    path.write_text(original + "\n".join(rows[:40]) + "\n")
    dry = json.loads(project.cli("check", "--dry-run", "--json").stdout)["models"][0]
    assert [r["trigger_type"] for r in dry["due_reasons"]] == ["data_change"]

    relabelled = [",".join(r.split(",")[:-1] + [RELABEL[r.split(",")[-1]]]) for r in rows[:40]]
    path.write_text(original + "\n".join(relabelled) + "\n")
    dry = json.loads(project.cli("check", "--dry-run", "--json").stdout)["models"][0]
    assert [r["trigger_type"] for r in dry["due_reasons"]] == ["data_change", "performance"]
    assert dry["due_reasons"][1]["description"].startswith(
        "performance degraded: accuracy 0 on 40 rows of data/raw/iris.csv (appended rows) vs baseline 0.9524")


def test_rmse_direction_on_regression(project):
    project.set_model("housing", metric="rmse")
    assert project.cli("check", "housing").exit_code == 0
    lines = project.data("housing").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    target = header.split(",").index("median_house_value")

    def scaled(factor):
        out = []
        for r in rows[:100]:
            cells = r.split(",")
            cells[target] = str(float(cells[target]) * factor)
            out.append(",".join(cells))
        return out

    eval_path = project.root / "data" / "housing_eval.csv"
    project.set_model("housing", eval_path="data/housing_eval.csv")
    eval_path.write_text("\n".join([header, *scaled(1.0)]) + "\n")
    assert project.cli("check", "housing").exit_code == 0
    st = json.loads(project.cli("status", "--json", "housing").stdout)["models"][0]
    assert st["degraded"] is False and st["due"] is False and st["eval_rows"] == 100
    assert st["eval_score"] < st["eval_baseline"] * 1.05

    eval_path.write_text("\n".join([header, *scaled(3.0)]) + "\n")
    out = json.loads(project.cli("check", "--json", "housing").stdout)["models"][0]
    assert out["due_reasons"][0]["trigger_type"] == "performance"
    assert "rmse" in out["due_reasons"][0]["description"] and "% worse" in out["due_reasons"][0]["description"]
    st = json.loads(project.cli("status", "--json", "housing").stdout)["models"][0]
    assert st["eval_score"] > st["eval_baseline"] and st["eval_degradation"] > 0.05 and st["degraded"] is True


def test_eval_file_problems_are_notes_not_failures(project):
    assert project.cli("check", "iris").exit_code == 0
    project.set_model("iris", eval_path="data/missing.csv")
    out = project.cli("check", "iris")
    assert out.exit_code == 0
    st = json.loads(project.cli("status", "--json", "iris").stdout)["models"][0]
    assert st["quality_notes"] == [f"performance: {project.root}/data/missing.csv: data file not found"]

    (project.root / "data" / "bad.csv").write_text("a,b\n" + "1,2\n" * 40)
    project.set_model("iris", eval_path="data/bad.csv")
    assert project.cli("check", "iris").exit_code == 0
    st = json.loads(project.cli("status", "--json", "iris").stdout)["models"][0]
    assert st["quality_notes"] == [
        f"performance: {project.root}/data/bad.csv: target column 'Species' not found (columns: a, b)"]


def test_model_is_checksummed_before_it_is_scored(project):
    assert project.cli("check", "iris").exit_code == 0
    _, rows = iris_rows(project)
    write_eval(project, rows, relabel=True)
    model_file = project.model_dir / "iris" / "v1" / "model.joblib"
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    project.set_model("iris", eval_path="data/eval.csv")
    st = json.loads(project.cli("status", "--json", "iris").stdout)["models"][0]
    assert st["due"] is False and st["eval_score"] is None
    assert len(st["quality_notes"]) == 1
    assert st["quality_notes"][0].startswith(f"performance: {model_file}: checksum does not match metadata.json")


# --- drift trigger ------------------------------------------------------------------------------


def write_inputs(project, shift=0.0, name="recent.csv"):
    header, rows = iris_rows(project)
    cols = header.split(",")
    petal = cols.index("PetalLengthCm")
    out = []
    for r in rows:
        cells = r.split(",")
        cells[petal] = f"{float(cells[petal]) + shift:.2f}"
        out.append(",".join(cells[:-1]))        # unlabelled: no Species column
    path = project.root / "data" / name
    path.write_text("\n".join([",".join(cols[:-1]), *out]) + "\n")
    return path


def test_shifted_inputs_trigger_drift_and_unshifted_do_not(project):
    assert project.run("check").returncode == 0
    meta = json.loads((project.model_dir / "iris" / "v1" / "metadata.json").read_text())
    assert set(meta["reference"]) == {"SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"}
    assert meta["reference"]["PetalLengthCm"]["kind"] == "numeric" and meta["data_lines"] == 150

    write_inputs(project)
    project.set_model("iris", drift_path="data/recent.csv")
    out = project.run("check", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["models"][0]["due"] is False
    st = status_of(project, "iris")
    assert st["drifted"] is False and st["drifted_features"] == {} and st["drift_rows"] == 150
    assert max(st["drift_psi"].values()) < 0.05

    write_inputs(project, shift=3.0)
    out = project.run("check")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1].split()[:4] == ["iris", "yes", "drift", "train"]
    record = project.history("iris")[-1]
    assert (record["trigger_type"], record["status"]) == ("drift", "success")
    assert record["description"].startswith("input drift in data/recent.csv: PSI PetalLengthCm ")
    assert record["quality_keys"]["drift"].startswith(record["data_hash"] + "|drift:")

    for _ in range(2):
        assert project.run("check").returncode == 0
    assert iris_history(project) == [("initial", "success"), ("drift", "success")]
    st = status_of(project, "iris")
    assert st["due"] is False and st["drifted"] is True
    assert list(st["drifted_features"]) == ["PetalLengthCm"] and st["drifted_features"]["PetalLengthCm"] > 0.2
    assert st["note"] == ("drift still degraded, but a retrain already ran for this data and drift inputs; "
                          "waiting for either to change")


def test_categorical_drift_and_threshold(project):
    assert project.cli("check", "housing").exit_code == 0
    lines = project.data("housing").read_text().splitlines()
    header = lines[0]
    ocean = header.split(",").index("ocean_proximity")
    rows = []
    for r in lines[1:]:
        cells = r.split(",")
        cells[ocean] = "ISLAND"
        rows.append(",".join(cells))
    (project.root / "data" / "housing_recent.csv").write_text("\n".join([header, *rows]) + "\n")
    project.set_model("housing", drift_path="data/housing_recent.csv")
    out = json.loads(project.cli("check", "--dry-run", "--json", "housing").stdout)["models"][0]
    assert [r["trigger_type"] for r in out["due_reasons"]] == ["drift"]
    assert out["due_reasons"][0]["description"].startswith("input drift in data/housing_recent.csv: PSI ocean_proximity ")
    st = json.loads(project.cli("status", "--json", "housing").stdout)["models"][0]
    assert list(st["drifted_features"]) == ["ocean_proximity"] and st["drift_psi"]["median_income"] < 0.01

    project.set_model("housing", drift_threshold=50.0)
    out = json.loads(project.cli("check", "--dry-run", "--json", "housing").stdout)["models"][0]
    assert out["due"] is False


def test_drift_inputs_missing_a_feature(project):
    assert project.cli("check", "iris").exit_code == 0
    (project.root / "data" / "recent.csv").write_text("SepalLengthCm\n" + "5.0\n" * 40)
    project.set_model("iris", drift_path="data/recent.csv")
    assert project.cli("check", "iris").exit_code == 0
    st = json.loads(project.cli("status", "--json", "iris").stdout)["models"][0]
    assert st["quality_notes"] == [f"drift: {project.root}/data/recent.csv: feature column(s) not found: "
                                   "SepalWidthCm, PetalLengthCm, PetalWidthCm"]



def test_malformed_drift_file_is_a_note_not_a_crash(project):
    assert project.cli("check").exit_code == 0
    header = "SepalLengthCm,SepalWidthCm,PetalLengthCm,PetalWidthCm\n"
    (project.root / "data" / "recent.csv").write_text(header + "1,2,3," + "x" * 200_000 + "\n" + "5,3,1,0\n" * 40)
    project.set_model("iris", drift_path="data/recent.csv")
    project.append_rows("housing", 5)
    r = project.run("check")  # a fresh process: csv's default field size limit applies
    assert r.returncode == 0, r.stderr  # housing still retrained; iris just carries a note
    assert [(e["model_name"], e["status"]) for e in project.history()][-1] == ("housing", "success")
    st = json.loads(project.run("status", "--json", "iris").stdout)["models"][0]
    assert st["quality_notes"][0].startswith(f"drift: {project.root}/data/recent.csv: cannot parse CSV at row 1: field larger than field limit")


# --- cost of a no-op check ----------------------------------------------------------------------

NOOP_CHECK = """
import json, sys
from retrainctl import load_config, check
report = check(load_config(sys.argv[1]))
print(json.dumps({"exit": report.exit_code, "results": [o.result for o in report.outcomes],
                  "heavy": sorted(m for m in ("pandas", "sklearn", "numpy", "joblib", "mlflow") if m in sys.modules)}))
"""


def noop_check(project):
    out = subprocess.run([sys.executable, "-c", NOOP_CHECK, str(project.config_path)], cwd="/",
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_noop_check_with_quality_triggers_imports_nothing_heavy(project):
    _, rows = iris_rows(project)
    write_eval(project, rows)
    write_inputs(project)
    project.set_model("iris", eval_path="data/eval.csv", drift_path="data/recent.csv")
    assert project.run("check").returncode == 0         # trains, then evaluates and caches
    assert project.run("status").returncode == 0
    cache = json.loads((project.state_dir / "quality.json").read_text())
    assert set(cache["iris"]) == {"performance", "drift"}

    assert noop_check(project) == {"exit": 0, "results": ["up to date", "up to date"], "heavy": []}

    # New (still correct) eval data: the model is scored again, which needs the ML stack.
    write_eval(project, rows[:100])
    changed = noop_check(project)
    assert changed["results"] == ["up to date", "up to date"] and "sklearn" in changed["heavy"]
    assert noop_check(project)["heavy"] == []


# --- config -------------------------------------------------------------------------------------


def test_quality_config_keys(project):
    project.set_model("iris", eval_pth="data/eval.csv")
    out = project.cli("config")
    assert out.exit_code == 2
    assert out.stderr == (f"Error: {project.config_path}: models.iris.eval_pth: unknown key 'eval_pth'; "
                          "did you mean 'eval_path'?\n")
    del project.config["models"]["iris"]["eval_pth"]
    project.config["defaults"]["drift_threshold"] = 0
    project.write_config()
    out = project.cli("config")
    assert out.exit_code == 2 and out.stderr.endswith("defaults.drift_threshold: must be > 0, got 0\n")
    project.config["defaults"]["drift_threshold"] = 0.3
    project.set_model("iris", eval_path="data/eval.csv", drift_path="data/recent.csv", min_eval_rows=50)
    out = project.cli("config", "--model", "iris")
    assert out.exit_code == 0, out.stderr
    import yaml

    iris = yaml.safe_load(out.stdout)["models"]["iris"]
    assert iris["eval_path"] == str(project.root / "data" / "eval.csv")
    assert iris["drift_path"] == str(project.root / "data" / "recent.csv")
    assert (iris["min_eval_rows"], iris["drift_threshold"]) == (50, 0.3)
    assert yaml.safe_load(project.cli("config", "--model", "housing").stdout)["models"]["housing"]["min_eval_rows"] == 30


def test_a_drift_file_with_a_column_named_twice_is_an_error_naming_it(tmp_path):
    from retrainctl.evaluation import _sample_psi
    from retrainctl.fingerprint import hash_bytes

    path = tmp_path / "drift.csv"
    raw = b"a,b,a\n1,2,3\n4,5,6\n"
    path.write_bytes(raw)
    reference = {"a": {"kind": "numeric", "edges": [2.0], "shares": [0.5, 0.5, 0.0]}}
    assert _sample_psi(str(path), hash_bytes(raw), reference) == {
        "error": f"{path}: column(s) named more than once in the header: a"}
