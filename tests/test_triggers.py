"""The decision core, table-driven: values in, decisions out, no files and no clock."""
import pytest

from retrainctl.config.records import RetrainingConfig
from retrainctl.core.decide import Observation, Reason, decide, degradation, gate, retry_delay, waiting
from retrainctl.core.records import Action

TRAIN, HOLD, NOTHING, WAIT, BACKOFF, GAVE_UP, ERROR = (Action.TRAIN, Action.HOLD, Action.NOTHING, Action.WAIT,
                                                      Action.BACKOFF, Action.GAVE_UP, Action.ERROR)
UNCHANGED = Action.UNCHANGED
SKIP_SMALL = Action.SKIP

NOW = 1_000_000.0
H = 3600.0
POLICY = RetrainingConfig(min_data_size=100, max_model_age_hours=24, max_retries=3, retry_backoff_seconds=300)


def obs(**kw):
    base = dict(now=NOW, data_hash="h1", data_rows=500, data_path="data/x.csv", model_version=1,
                model_data_hash="h1", model_trained_at=NOW - H)
    base.update(kw)
    return Observation(**base)


CASES = [
    # name, policy changes, observation changes, expected action, expected trigger types
    ("fresh model, same data", {}, {}, NOTHING, []),
    ("no model yet", {}, dict(model_version=None, model_data_hash=None, model_trained_at=None), TRAIN, ["initial"]),
    ("data changed", {}, dict(data_hash="h2"), TRAIN, ["data_change"]),
    ("model too old, new data", {}, dict(data_hash="h2", model_trained_at=NOW - 25 * H), TRAIN,
     ["data_change", "model_age"]),
    ("model too old, same data and config: no copy", {}, dict(model_trained_at=NOW - 25 * H), UNCHANGED,
     ["model_age"]),
    ("fractional max age", dict(max_model_age_hours=0.5), dict(model_trained_at=NOW - 0.6 * H), UNCHANGED,
     ["model_age"]),
    ("changed and old", {}, dict(data_hash="h2", model_trained_at=NOW - 30 * H), TRAIN, ["data_change", "model_age"]),
    ("performance on the same training data: nothing to retrain on", {},
     dict(performance=Reason("performance", "accuracy fell 10%")), UNCHANGED, ["performance"]),
    ("performance and new data", {}, dict(data_hash="h2", performance=Reason("performance", "accuracy fell 10%")),
     TRAIN, ["data_change", "performance"]),
    ("drift retrain on the same training data", dict(drift_action="retrain"), dict(drift=Reason("drift", "x")),
     UNCHANGED, ["drift"]),
    ("manual on unchanged data and config", {}, dict(manual=True), UNCHANGED, ["manual"]),
    ("manual --force on unchanged data and config", {}, dict(manual=True, force=True), TRAIN, ["manual"]),
    ("manual while paused", {}, dict(manual=True, paused=True, data_hash="h2"), TRAIN, ["manual", "data_change"]),
    ("manual with auto off", dict(enable_auto_retraining=False), dict(manual=True, data_hash="h2"), TRAIN,
     ["manual", "data_change"]),
    ("config changed", {}, dict(config_hash="c2", model_config_hash="c1", config_changes=("params",)), TRAIN,
     ["config_change"]),
    ("config change rejected: no loop", {}, dict(config_hash="c2", model_config_hash="c1", rejected_at=NOW - 60),
     NOTHING, []),
    ("model from before config hashes: no config_change", {}, dict(config_hash="c2", model_config_hash=None),
     NOTHING, []),
    ("failures under another config: a fixed config retries now", {},
     dict(data_hash="h2", config_hash="c2", failures_in_row=3, failure_hash="h2|c1", last_failure_time=NOW - 1),
     TRAIN, ["data_change"]),
    ("failures under this config: backoff", {},
     dict(data_hash="h2", config_hash="c1", failures_in_row=1, failure_hash="h2|c1", last_failure_time=NOW - 100),
     BACKOFF, ["data_change"]),
    ("manual names the event first", {}, dict(manual=True, data_hash="h2"), TRAIN, ["manual", "data_change"]),
    ("paused holds automatic", {}, dict(paused=True, data_hash="h2"), HOLD, ["data_change"]),
    ("auto retraining disabled", dict(enable_auto_retraining=False), dict(data_hash="h2"), HOLD, ["data_change"]),
    ("too few rows: skip once", {}, dict(data_hash="h2", data_rows=99), SKIP_SMALL, ["data_change"]),
    ("too few rows: already skipped", {}, dict(data_hash="h2", data_rows=99, skipped_hash="h2"), HOLD, ["data_change"]),
    ("too few rows: new hash skips again", {}, dict(data_hash="h3", data_rows=99, skipped_hash="h2"), SKIP_SMALL,
     ["data_change"]),
    ("manual with too few rows", {}, dict(manual=True, data_rows=10), SKIP_SMALL, ["manual"]),
    ("exactly min_data_size trains", {}, dict(data_hash="h2", data_rows=100), TRAIN, ["data_change"]),
    ("data error", {}, dict(data_hash=None, data_rows=None, data_error="x.csv: data file not found"), ERROR, []),
    ("first candidate rejected: no initial loop", {}, dict(model_version=None, model_data_hash=None,
                                                            model_trained_at=None, rejected_at=NOW - 60), NOTHING, []),
    ("rejected for this data: no loop", {}, dict(data_hash="h2", rejected_at=NOW - 60), NOTHING, []),
    ("rejected resets the age clock", {}, dict(model_trained_at=NOW - 30 * H, rejected_at=NOW - 2 * H), NOTHING, []),
    ("failure: waits for backoff", {}, dict(data_hash="h2", failures_in_row=1, failure_hash="h2",
                                            last_failure_time=NOW - 100), BACKOFF, ["data_change"]),
    ("failure: backoff elapsed", {}, dict(data_hash="h2", failures_in_row=1, failure_hash="h2",
                                          last_failure_time=NOW - 301), TRAIN, ["data_change"]),
    ("failure: second backoff doubles", {}, dict(data_hash="h2", failures_in_row=2, failure_hash="h2",
                                                 last_failure_time=NOW - 500), BACKOFF, ["data_change"]),
    ("failure: gave up after max_retries", {}, dict(data_hash="h2", failures_in_row=3, failure_hash="h2",
                                                    last_failure_time=NOW - 10 * H), GAVE_UP, ["data_change"]),
    ("failure on old data: new data retries now", {}, dict(data_hash="h3", failures_in_row=3, failure_hash="h2",
                                                           last_failure_time=NOW - 1), TRAIN, ["data_change"]),
]


@pytest.mark.parametrize("name,policy,observed,action,kinds", CASES, ids=[c[0] for c in CASES])
def test_decide(name, policy, observed, action, kinds):
    import dataclasses

    d = decide(dataclasses.replace(POLICY, **policy), obs(**observed))
    assert d.action == action
    assert [r.trigger_type for r in d.reasons] == kinds
    assert d.due == (action == TRAIN)


def test_a_config_change_names_the_keys_that_changed():
    d = decide(POLICY, obs(config_hash="c2", model_config_hash="c1", config_changes=("estimator", "params")))
    assert d.describe() == "config changed since v1: estimator, params"
    unchanged = decide(POLICY, obs(model_trained_at=NOW - 25 * H))
    assert unchanged.note == "the training data and config have not changed since v1: a retrain would only copy it"
    assert unchanged.held == "unchanged" and not unchanged.due


def test_descriptions_name_the_file_and_age():
    d = decide(POLICY, obs(data_hash="h2", model_trained_at=NOW - 30 * H))
    assert d.describe() == "data file changed: data/x.csv; model is 30.0h old (max_model_age_hours 24)"
    small = decide(POLICY, obs(data_hash="h2", data_rows=7))
    assert small.note == "data/x.csv has only 7 rows, min_data_size is 100"


def test_backoff_reports_next_retry():
    d = decide(POLICY, obs(data_hash="h2", failures_in_row=2, failure_hash="h2", last_failure_time=NOW - 500))
    assert d.next_retry == NOW - 500 + 600


@pytest.mark.parametrize("failures,delay", [(0, 0), (1, 300), (2, 600), (3, 1200), (10, 24 * H)])
def test_retry_delay_doubles_and_is_capped_at_max_model_age(failures, delay):
    assert retry_delay(POLICY, failures) == delay


@pytest.mark.parametrize("interval,last,expect_wait", [
    (300, None, False), (300, NOW - 10, True), (300, NOW - 300, False), (0, NOW - 1, False),
    (300, NOW + 50, False),  # a clock that went backwards never blocks evaluation forever
])
def test_check_interval(interval, last, expect_wait):
    import dataclasses

    w = waiting(dataclasses.replace(POLICY, check_interval=interval), NOW, last)
    assert (w is not None and w.action == WAIT) == expect_wait


@pytest.mark.parametrize("baseline,current,higher,expected", [
    (0.9, 0.81, True, 0.1), (0.9, 0.99, True, -0.1), (10.0, 12.0, False, 0.2), (10.0, 8.0, False, -0.2),
    (0.0, -0.5, True, 0.5),
])
def test_degradation_follows_metric_direction(baseline, current, higher, expected):
    assert degradation(baseline, current, higher) == pytest.approx(expected)


def test_gate():
    assert gate(0.95, 0.96, True, 0.02).promote
    assert not gate(0.50, 0.96, True, 0.02).promote
    assert gate(0.50, 0.96, True, 0.02, force=True).promote
    assert not gate(0.99, 0.5, True, 0.02, sanity_problem="NaN").promote
    assert gate(0.1, None, True, 0.02, has_champion=False).promote
    assert not gate(12.0, 10.0, False, 0.02).promote  # rmse up 20%
    assert "worse than the current model" in gate(0.5, 0.96, True, 0.02).reason
