"""The promotion gate (worse or insane candidates are kept but not promoted; --force overrides)
and rollback (previous or given version, clear errors, the next check keeps it until new data)."""
import json
import os

import pytest

from retrainctl.core import decide as triggers
from retrainctl.fit.task import sanity_problem

# --- pure gate ----------------------------------------------------------------------------------


def test_gate_tolerance_and_direction():
    ok = triggers.gate(0.95, 0.96, True, 0.02)
    assert ok.promote and ok.reason == "candidate 0.95 vs current 0.96 on the same holdout (tolerance 0.02)"
    bad = triggers.gate(0.90, 0.96, True, 0.02)
    assert not bad.promote and bad.reason.startswith("worse than the current model: candidate 0.9 vs current 0.96")
    # rmse: lower is better; a 10% higher rmse is worse, a lower one is fine
    assert not triggers.gate(11.0, 10.0, False, 0.02).promote
    assert triggers.gate(9.0, 10.0, False, 0.02).promote
    assert triggers.gate(10.15, 10.0, False, 0.02).promote


def test_gate_sanity_force_and_no_champion():
    assert triggers.gate(0.99, 0.5, True, 0.02, sanity_problem="x").reason == "sanity check failed: x"
    forced = triggers.gate(0.1, 0.9, True, 0.02, sanity_problem="x", force=True)
    assert forced.promote and forced.reason == "forced by operator (--force) despite failed sanity check: x"
    assert triggers.gate(0.1, None, True, 0.02, has_champion=False).reason == "nothing to compare with"


def test_sanity_problem_unknown_class_and_nan():
    import numpy as np
    import pandas as pd

    class Model:
        classes_ = np.array(["a", "b"])

    y = pd.Series(["a", "b", "c"])
    X = pd.DataFrame({"x": [1, 2, 3]})
    assert sanity_problem("classification", Model(), np.array(["a", "a", "b"]), y, X) == (
        "classifier does not know class(es) c seen in the holdout")
    assert sanity_problem("regression", None, np.array([1.0, np.nan, 2.0]), y, X) == (
        "predictions contain NaN or infinite values")
    assert sanity_problem("regression", None, np.array([1.0, 2.0]), y, X) == "predicted 2 values for 3 rows"


# --- through the installed command --------------------------------------------------------------


def last(project, name="iris"):
    return project.history(name)[-1]


def test_dummy_candidate_is_rejected_and_force_promotes(trained):
    project = trained
    assert project.current_version("iris") == 1
    project.set_model("iris", estimator="sklearn.dummy.DummyClassifier", params={})

    out = project.run("train", "iris")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("iris: rejected v2: worse than the current model: candidate 0.2857 vs current 0.9524")
    record = last(project)
    assert (record["trigger_type"], record["status"], record["version"], record["promoted"]) == (
        "manual", "rejected", 2, False)
    assert record["score"] == pytest.approx(0.2857, abs=1e-4) and record["champion_score"] == pytest.approx(0.9524, abs=1e-4)
    assert record["champion_version"] == 1
    assert project.current_version("iris") == 1
    kept = project.model_dir / "iris" / "v2"
    assert (kept / "model.joblib").is_file()
    assert json.loads((kept / "metadata.json").read_text())["estimator"] == "sklearn.dummy.DummyClassifier"

    # The rejection is not a failure, and the same data is not retried by check.
    again = project.run("check", "iris", "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["models"][0]["due"] is False
    assert project.current_version("iris") == 1

    forced = project.run("train", "iris", "--force", "--reason", "accept the baseline model")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith("iris: promoted v3")
    record = last(project)
    assert (record["status"], record["version"], record["forced"], record["promoted"]) == ("success", 3, True, True)
    assert record["description"] == "accept the baseline model; forced by operator (--force)"
    assert project.current_version("iris") == 3


def one_class_short(X, y, params):
    """A trainer whose model never learned one of the classes: fails the sanity check."""
    from sklearn.tree import DecisionTreeClassifier

    keep = y != "Iris-virginica"
    return DecisionTreeClassifier(random_state=0).fit(X[keep], y[keep])


def test_insane_candidate_is_rejected(trained):
    project = trained
    project.set_model("iris", estimator=None, trainer="test_gate:one_class_short")
    out = project.cli("train", "iris")
    assert out.exit_code == 0
    assert out.stdout == ("iris: rejected v2: sanity check failed: classifier does not know class(es) "
                          "Iris-virginica seen in the holdout\n")
    assert last(project)["status"] == "rejected" and project.current_version("iris") == 1


def test_rollback_previous_to_and_errors(trained):
    project = trained  # iris v1 from the first check
    assert project.run("train", "--force", "iris").returncode == 0
    assert project.current_version("iris") == 2
    project.set_model("iris", estimator="sklearn.dummy.DummyClassifier", params={})
    assert project.run("train", "iris").returncode == 0          # v3 rejected
    assert project.current_version("iris") == 2

    out = project.run("rollback", "iris")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("iris: rolled back from v2 to v1 by ")
    assert project.current_version("iris") == 1
    record = last(project)
    assert (record["trigger_type"], record["status"], record["version"], record["previous_version"]) == (
        "operator", "rolled_back", 1, 2)

    # --to may name any version on disk, even the rejected candidate, kept for inspection.
    to = project.run("rollback", "iris", "--to", "3", "--json")
    assert to.returncode == 0, to.stderr
    assert json.loads(to.stdout)["description"].startswith("rolled back from v1 to v3 by ")
    assert project.current_version("iris") == 3

    before = project.events()
    missing = project.run("rollback", "iris", "--to", "9")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == "Error: iris: version 9 does not exist (available: v1, v2, v3)"
    same = project.run("rollback", "iris", "--to", "v3")  # as the tables write it
    assert same.returncode == 2 and same.stderr.strip().endswith("Error: iris: v3 is already current")
    for bad in ("v", "x3", "0", "-1", "v1.5"):
        wrong = project.cli("rollback", "iris", "--to", bad)
        assert wrong.exit_code == 2
        assert wrong.stderr.splitlines()[-1] == (f"Error: Invalid value for '--to': expected a version such as 3 "
                                                 f"or v3, got {bad!r}")
    unknown = project.run("rollback", "irs")
    assert unknown.returncode == 2 and "model 'irs' is not configured" in unknown.stderr
    assert "did you mean 'iris'?" in unknown.stderr
    assert project.events() == before and project.current_version("iris") == 3


def test_rollback_refuses_a_tampered_version_and_a_model_without_history(project):
    assert project.cli("check", "iris").exit_code == 0
    none_earlier = project.cli("rollback", "iris")
    assert none_earlier.exit_code == 2
    assert none_earlier.stderr.endswith("Error: iris: no earlier promoted version on disk to roll back to (current is v1)\n")
    never = project.cli("rollback", "housing")
    assert never.exit_code == 2 and never.stderr.endswith("Error: housing: no current model to roll back\n")

    assert project.cli("train", "--force", "iris").exit_code == 0
    model_file = project.model_dir / "iris" / "v1" / "model.joblib"
    model_file.write_bytes(model_file.read_bytes()[:-10])
    before = project.events()
    bad = project.cli("rollback", "iris")
    assert bad.exit_code == 1 and "checksum does not match metadata.json" in bad.stderr
    assert project.current_version("iris") == 2 and project.events() == before


def test_rollback_sticks_until_new_data(trained):
    project = trained  # iris v1 from the first check (its `initial` record starts the history below)
    # The appended rows copy training rows; a wide tolerance keeps this test about rollback, not the gate.
    project.set_model("iris", promotion_tolerance=0.5)
    project.append_rows("iris", 20)
    assert project.run("check", "iris").returncode == 0
    assert project.current_version("iris") == 2

    # v1 was trained on older data, but the data v2 was trained on counts as rolled back from:
    # the next check does not undo the rollback.
    assert project.run("rollback", "iris").returncode == 0
    after = project.run("check", "iris", "--json")
    assert after.returncode == 0
    model = json.loads(after.stdout)["models"][0]
    assert (model["due"], model["action"]) == (False, "none")
    assert model["note"] == "candidate for this data was rejected or rolled back; waiting for new data"
    assert project.current_version("iris") == 1

    project.append_rows("iris", 5)  # new data: retrained and gated against the rolled-back model
    assert project.run("check", "iris").returncode == 0
    assert project.current_version("iris") == 3
    assert [(e["trigger_type"], e["status"]) for e in project.history("iris")] == [
        ("initial", "success"), ("data_change", "success"), ("operator", "rolled_back"),
        ("data_change", "success")]
    assert project.history("iris")[2]["abandoned_data_hash"] == project.history("iris")[1]["data_hash"]
    assert os.readlink(project.model_dir / "iris" / "current") == "v3"


def test_rollback_reads_the_log_backwards_only_as_far_as_it_needs(project, monkeypatch):
    """The rollback target is the newest promoted version before `current`: found reading the
    log from its end, not by parsing years of records."""
    from retrainctl.state import segments as logfile
    from retrainctl.core.records import Record
    from retrainctl.state.log import StateLog

    StateLog(str(project.state_dir)).append(*[Record.from_dict(
        {"model_name": "iris", "trigger_type": "data_change", "status": "skipped", "data_hash": f"h{i}",
         "trigger_time": "2026-01-01T00:00:00+00:00", "error_type": "too_few_rows"}) for i in range(500)])
    assert project.cli("check", "iris").exit_code == 0
    StateLog(str(project.state_dir)).append(Record.from_dict({  # hand-edited: `true` is no version
        "model_name": "iris", "trigger_type": "manual", "status": "success", "version": True,
        "trigger_time": "2026-01-01T00:00:00+00:00"}))
    assert project.cli("train", "--force", "iris").exit_code == 0
    parsed = []
    real = logfile.parse
    monkeypatch.setattr(logfile, "parse", lambda line: parsed.append(line) or real(line))
    out = project.cli("rollback", "iris")
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("iris: rolled back from v2 to v1 by ")
    assert parsed and not [line for line in parsed if b'"skipped"' in line]  # stopped at v1's success record
