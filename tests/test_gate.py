"""The promotion gate (worse or insane candidates are kept but not promoted; --force overrides)
and rollback (previous or given version, clear errors, the next check keeps it until new data)."""
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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

    out = project.cli("train", "iris")
    assert out.exit_code == 0, out.stderr
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
    again = project.cli("check", "iris", "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["models"][0]["due"] is False
    assert project.current_version("iris") == 1

    forced = project.cli("train", "iris", "--force", "--reason", "accept the baseline model")
    assert forced.exit_code == 0, forced.stderr
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
    assert project.cli("train", "--force", "iris").exit_code == 0
    assert project.current_version("iris") == 2
    project.set_model("iris", estimator="sklearn.dummy.DummyClassifier", params={})
    assert project.cli("train", "iris").exit_code == 0          # v3 rejected
    assert project.current_version("iris") == 2

    out = project.cli("rollback", "iris")
    assert out.exit_code == 0, out.stderr
    assert out.stdout.startswith("iris: rolled back from v2 to v1 by ")
    assert project.current_version("iris") == 1
    record = last(project)
    assert (record["trigger_type"], record["status"], record["version"], record["previous_version"]) == (
        "operator", "rolled_back", 1, 2)

    # --to may name any version on disk, even the rejected candidate, kept for inspection.
    to = project.cli("rollback", "iris", "--to", "3", "--json")
    assert to.exit_code == 0, to.stderr
    assert json.loads(to.stdout)["description"].startswith("rolled back from v1 to v3 by ")
    assert project.current_version("iris") == 3

    before = project.events()
    missing = project.cli("rollback", "iris", "--to", "9")
    assert missing.exit_code == 2
    assert missing.stderr.strip().splitlines()[-1] == "Error: iris: version 9 does not exist (available: v1, v2, v3)"
    same = project.cli("rollback", "iris", "--to", "v3")  # as the tables write it
    assert same.exit_code == 2 and same.stderr.strip().endswith("Error: iris: v3 is already current")
    for bad in ("v", "x3", "0", "-1", "v1.5"):
        wrong = project.cli("rollback", "iris", "--to", bad)
        assert wrong.exit_code == 2
        assert wrong.stderr.splitlines()[-1] == (f"Error: Invalid value for '--to': expected a version such as 3 "
                                                 f"or v3, got {bad!r}")
    unknown = project.cli("rollback", "irs")
    assert unknown.exit_code == 2 and "model 'irs' is not configured" in unknown.stderr
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
    assert project.cli("check", "iris").exit_code == 0
    assert project.current_version("iris") == 2

    # v1 was trained on older data, but the data v2 was trained on counts as rolled back from:
    # the next check does not undo the rollback.
    assert project.cli("rollback", "iris").exit_code == 0
    after = project.cli("check", "iris", "--json")
    assert after.exit_code == 0
    model = json.loads(after.stdout)["models"][0]
    assert (model["due"], model["action"]) == (False, "none")
    assert model["note"] == "candidate for this data was rejected or rolled back; waiting for new data"
    assert project.current_version("iris") == 1

    project.append_rows("iris", 5)  # new data: retrained and gated against the rolled-back model
    assert project.cli("check", "iris").exit_code == 0
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


# --- skill: a candidate no better than a constant prediction ----------------------------------------


def test_skill_is_the_share_of_a_constant_predictions_loss_removed():
    assert triggers.skill(0.9, 0.5, True) == pytest.approx(0.8)  # accuracy: loss 0.1 against 0.5
    assert triggers.skill(0.6, 0.0, True) == pytest.approx(0.6)  # r2
    assert triggers.skill(2.0, 4.0, False) == pytest.approx(0.5)  # mae
    assert triggers.skill(5.0, 4.0, False) == pytest.approx(-0.25)
    assert triggers.skill(1.0, 1.0, True) is None and triggers.skill(0.9, None, True) is None  # constant target
    live = (0.61, 0.0, 1e-9)
    assert triggers.skill_problem((0.01, 0.0, 0.3), live, True, "r2", 3) == (
        "no better than a constant prediction: candidate r2 0.01 vs 0 for predicting the same value for every "
        "row, where v3 scored 0.61 vs 0 at its training (are the labels shuffled or misaligned?)")
    assert triggers.skill_problem((0.3, 0.0, 0.2), live, True, "r2", 3) is not None  # large, but by chance
    assert triggers.skill_problem((0.01, 0.0, 1e-6), live, True, "r2", 3) is not None  # real, but negligible
    assert triggers.skill_problem((0.2, 0.0, 1e-6), live, True, "r2", 3) is None  # has some skill
    assert triggers.skill_problem((0.01, 0.0, 0.3), (0.1, 0.0, 1e-9), True, "r2", 3) is None  # the live one had little
    assert triggers.skill_problem((0.01, 0.0, 0.3), (0.61, 0.0, 0.05), True, "r2", 3) is None  # ... or by chance
    assert triggers.skill_problem((0.01, 0.0, 0.3), (0.61, None, None), True, "r2", 3) is None  # stored before 0.3
    assert triggers.skill_problem((0.01, 0.0, 0.3), None, True, "r2") is None  # nothing live
    no_skill = triggers.skill_problem((0.01, 0.0, 0.3), live, True, "r2", 3)
    assert not triggers.gate(0.01, 0.0, True, 0.02, no_skill=no_skill).promote
    assert triggers.gate(0.01, 0.0, True, 0.02, no_skill=no_skill, force=True).reason == "forced by operator (--force)"
    assert triggers.gate(0.01, None, True, 0.02, has_champion=False, no_skill=None).promote


def shuffle_labels(path, column, seed=0):
    import numpy as np
    import pandas as pd

    df = pd.read_csv(path)
    df[column] = df[column].to_numpy()[np.random.default_rng(seed).permutation(len(df))]
    df.to_csv(path, index=False)


@pytest.mark.parametrize("name,target", [("housing", "median_house_value"), ("iris", "Species")])
def test_a_model_trained_on_shuffled_labels_is_not_promoted_over_one_that_learnt(trained, name, target):
    """An export that shuffles the labels: the candidate and the live model are both near a
    constant prediction on the new holdout, so neither is "worse"; the candidate is rejected
    because it learnt nothing where the live model had. --force still promotes it."""
    project = trained
    shuffle_labels(project.data(name), target)
    out = project.cli("check", name, "--json")
    assert out.exit_code == 0, out.stderr
    record = last(project, name)
    assert (record["trigger_type"], record["status"], record["version"]) == ("data_change", "rejected", 2)
    assert "no better than a constant prediction: candidate " in record["description"], record["description"]
    assert "where v1 scored " in record["description"] and "(are the labels shuffled or misaligned?)" in record["description"]
    assert project.current_version(name) == 1
    meta = json.loads((project.model_dir / name / "v2" / "metadata.json").read_text())
    assert triggers.has_skill((meta["score"], meta["constant_score"], meta["constant_p"]), True,
                              triggers.NO_SKILL) is False

    forced = project.cli("train", name, "--force")
    assert forced.exit_code == 0 and forced.stdout.startswith(f"{name}: promoted v3"), forced.stdout + forced.stderr


def test_the_first_model_has_nothing_to_lose_to_a_constant(project):
    """No live model: a model trained on shuffled labels is promoted as before (nothing to
    compare with), and its skill is recorded."""
    shuffle_labels(project.data("iris"), "Species")
    assert project.cli("train", "iris").exit_code == 0
    assert project.current_version("iris") == 1
    meta = json.loads((project.model_dir / "iris" / "v1" / "metadata.json").read_text())
    assert 0.25 < meta["constant_score"] < 0.45 and meta["constant_p"] > triggers.SKILL_ALPHA


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), min_size=2, max_size=60),
       st.sampled_from(["r2", "rmse", "mae"]), st.booleans())
def test_regression_scores_and_the_constant_baseline_are_scikit_learns(pairs, metric, constant_truth):
    """The fit computes r2, rmse and mae, and the constant prediction the skill bar is measured
    against, in numpy (scikit-learn's input checks cost more than the sums on a segment's few
    hundred rows): exactly scikit-learn's values, the edge cases of r2 included (constant labels,
    perfect predictions)."""
    import numpy as np
    import pandas as pd
    from sklearn import metrics
    from sklearn.dummy import DummyRegressor

    from retrainctl.fit.task import constant_prediction, score

    truth = pd.Series([3.0 if constant_truth else a for a, _ in pairs])
    pred = np.array([b for _, b in pairs]) if len(pairs) % 3 else truth.to_numpy()
    expected = {"r2": metrics.r2_score, "rmse": metrics.root_mean_squared_error,
                "mae": metrics.mean_absolute_error}[metric](truth, pred)
    assert score(metric, truth, pred) == float(expected)
    spec = type("Spec", (), {"task": "regression", "metric": metric})()
    dummy = DummyRegressor(strategy="median" if metric == "mae" else "mean").fit(np.zeros((len(truth), 1)), truth)
    assert constant_prediction(spec, truth, 7).tolist() == dummy.predict(np.zeros((7, 1))).tolist()
