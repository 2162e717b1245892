"""The orchestration (observe -> decide -> claim -> fit -> gate -> save -> promote -> record)
with a fake executor returning typed fit results: milliseconds per case instead of real fits.
The real fits are tested end to end in test_e2e.py, test_gate.py and test_faults.py."""
import pytest

from retrainctl.commands.check import check as run_check
from retrainctl.commands.train import train as run_train

from retrainctl.observe import evaluation

from retrainctl.publish import metrics
from retrainctl.config.load import load_config
from retrainctl.fit.executors import FakeExecutor
from retrainctl.base.errors import TrainingError
from retrainctl.core.records import FitResult, Record
from retrainctl.state.log import StateLog


def fake_executor(**fits):
    """A FakeExecutor answering each model's fits with `fits[model](request)`."""
    return FakeExecutor(fits)


def fitted(score, champion_score=None, data_hash=None, sanity_problem=None):
    """A fit answer: a FitResult for the requested data (or `data_hash`), scoring `score`."""
    def answer(request):
        h = data_hash or request.data_hash
        return FitResult(model_bytes=f"model {score}".encode(), score=score, data_hash=h,
                         metadata={"rows": 150, "data_hash": h, "metric": "accuracy", "score": score},
                         champion_score=champion_score, sanity_problem=sanity_problem)
    return answer


def failing(error_type):
    return lambda request: TrainingError(f"{error_type} happened", error_type=error_type)


@pytest.fixture
def iris_only(project):
    project.config["models"].pop("housing")
    project.write_config()
    return project


def check(project, executor, **kwargs):
    return run_check(load_config(str(project.config_path)), open_executor=executor, **kwargs)


def statuses(project):
    return [(e["model_name"], e["trigger_type"], e["status"], e.get("error_type")) for e in project.history()]


def test_first_fit_is_promoted_then_a_worse_one_is_rejected(iris_only):
    report = check(iris_only, fake_executor(iris=fitted(0.9)))
    assert report.exit_code == 0
    out = report.outcomes[0]
    assert (out.action, out.result, out.failed) == ("train", "promoted v1 (accuracy 0.9)", False)
    assert iris_only.current_version("iris") == 1
    record = iris_only.history()[-1]
    assert (record["status"], record["version"], record["promoted"], record["executor"], record["worker"]) == (
        "success", 1, True, "fake", "fakehost")

    iris_only.append_rows("iris", 5)
    report = check(iris_only, fake_executor(iris=fitted(0.5, champion_score=0.9)))
    assert report.exit_code == 0
    assert report.outcomes[0].result.startswith("rejected v2: worse than the current model: candidate 0.5 vs current 0.9")
    assert iris_only.current_version("iris") == 1
    assert statuses(iris_only) == [("iris", "initial", "success", None), ("iris", "data_change", "rejected", None)]
    # The rejected data is not retried: nothing is submitted.
    idle = fake_executor()
    assert check(iris_only, idle).outcomes[0].action == "none" and idle.sessions == []


def test_sanity_problem_keeps_the_candidate_out(iris_only):
    report = check(iris_only, fake_executor(iris=fitted(0.9, sanity_problem="predicted 3 values for 4 rows")))
    assert report.outcomes[0].result == "rejected v1: sanity check failed: predicted 3 values for 4 rows"
    assert iris_only.current_version("iris") is None


def test_a_failed_fit_is_recorded_and_backs_off(iris_only):
    report = check(iris_only, fake_executor(iris=failing("timeout")))
    assert report.exit_code == 1 and report.outcomes[0].result == "failed: timeout happened"
    assert statuses(iris_only) == [("iris", "initial", "failure", "timeout")]
    assert StateLog(str(iris_only.state_dir)).states()["iris"].open_attempts == {}
    idle = fake_executor()
    assert check(iris_only, idle).outcomes[0].action == "backoff" and idle.sessions == []


def test_data_changed_during_the_fit_is_a_skip_not_a_failure(iris_only):
    report = check(iris_only, fake_executor(iris=fitted(0.9, data_hash="f" * 64)))
    out = report.outcomes[0]
    assert report.exit_code == 0 and not out.failed and out.result.startswith("skipped: ")
    assert statuses(iris_only) == [("iris", "initial", "skipped", "data_changed")]
    assert iris_only.current_version("iris") is None


def test_manual_train_of_changed_data_fails(iris_only):
    cfg = load_config(str(iris_only.config_path))
    fake = fake_executor(iris=fitted(0.9, data_hash="f" * 64))
    out = run_train(cfg, "iris", reason="operator asked", open_executor=fake)
    assert out.failed and out.record["error_type"] == "data_changed"
    assert (out.record["trigger_type"], out.record["description"]) == ("manual", "operator asked; no current model")


def test_two_models_are_fitted_in_one_executor_session(project):
    fake = fake_executor(iris=fitted(0.9), housing=fitted(0.7))
    report = check(project, fake)
    assert [len(s) for s in fake.sessions] == [2]
    assert [(o.model_name, o.result) for o in report.outcomes] == [
        ("iris", "promoted v1 (accuracy 0.9)"), ("housing", "promoted v1 (r2 0.7)")]
    assert not list((project.state_dir / "running").iterdir())  # sidecars cleared


def test_a_dead_attempt_is_closed_before_the_retry(iris_only):
    iris_only.set_model("iris", retry_backoff_seconds=0)
    StateLog(str(iris_only.state_dir)).append(Record.from_dict({
        "model_name": "iris", "trigger_type": "initial", "status": "started", "attempt_id": "dead",
        "trigger_time": "2026-01-01T00:00:00+00:00", "pid": 1, "host": "gone", "data_hash": None}))
    report = check(iris_only, fake_executor(iris=fitted(0.9)))
    assert report.exit_code == 0
    assert statuses(iris_only) == [("iris", "initial", "failure", "interrupted"), ("iris", "initial", "success", None)]
    closed = iris_only.history()[0]
    assert closed["description"] == "attempt dead started at 2026-01-01T00:00:00+00:00 by pid 1 on gone never finished"


def test_a_check_observes_each_model_once(project, monkeypatch):
    """The pass observes (and evaluates) each model once; the claim and the metrics export
    bring that observation up to date instead of observing again."""
    textfile = project.root / "metrics.prom"
    project.config["textfile_path"] = str(textfile)
    project.write_config()
    seen = []
    real = evaluation.assess
    monkeypatch.setattr(evaluation, "assess", lambda config, store, model, *a: seen.append(model.name) or
                        real(config, store, model, *a))
    cfg = load_config(str(project.config_path))
    report = run_check(cfg, open_executor=fake_executor(iris=fitted(0.9), housing=failing("memory")))
    metrics.export_after_run(cfg, observed=report.observed)
    assert sorted(seen) == ["housing", "iris"]
    text = textfile.read_text()
    assert 'model_retraining_due{model_name="iris"} 0.0' in text  # promoted: no longer due
    assert 'model_retraining_due{model_name="housing"} 1.0' in text  # failed: still due
    assert 'model_retraining_consecutive_failures{model_name="housing"} 1.0' in text
    assert 'model_score{metric="accuracy",model_name="iris"} 0.9' in text

    seen.clear()  # and through the command line: nothing due now but housing's backoff
    assert project.cli("check").exit_code == 0
    assert sorted(seen) == ["housing", "iris"]


def test_started_records_the_log_refuses_fail_their_models_without_a_fit(project):
    """The `started` records of a command's due models are appended in one write (one fsync for
    a batch): when the state log refuses it (as a full disk does), every one of those models
    fails without a fit, and nothing is left open for the next run to call dead."""
    from retrainctl.base.errors import RetrainctlError

    class Refusing(StateLog):
        def append(self, *records, unless=None):
            if any(r.model_name == "housing" and r.status == "started" for r in records):
                raise RetrainctlError(f"{self.path}: cannot append to the state log: No space left on device")
            return super().append(*records, unless=unless)

    fake = fake_executor(iris=fitted(0.9), housing=fitted(0.8))
    report = check(project, fake, log=Refusing(str(project.state_dir)))
    assert report.exit_code == 1
    refused = (f"failed: {project.state_dir / 'events.jsonl'}: cannot append to the state log: "
               "No space left on device")
    assert [(o.model_name, o.result, o.failed) for o in report.outcomes] == [
        ("iris", refused, True), ("housing", refused, True)]
    assert fake.sessions == [[]]
    assert statuses(project) == []
    assert {m: s.open_attempts for m, s in StateLog(str(project.state_dir)).states().items()} == {}
