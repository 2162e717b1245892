"""The event log: appends are whole lines, a torn last line is skipped and closed off, the fold is right."""
import json
import logging
import os

from retrainctl.core.fold import fold
from retrainctl.core.records import Record
from retrainctl.state.log import StateLog


def rec(model, status, data_hash="h1", trigger="data_change", t="2026-11-27T12:00:00+00:00", **kw):
    """A state-log record as it would be read back from the log."""
    return Record.from_dict(dict(model_name=model, status=status, data_hash=data_hash, trigger_type=trigger,
                                 trigger_time=t, duration=1.0, **kw))


def test_append_and_read_round_trip(tmp_path):
    log = StateLog(str(tmp_path / "state"))
    log.append(rec("a", "success"), rec("b", "failure"))
    assert [e["model_name"] for e in list(log.iter_events())] == ["a", "b"]
    assert (tmp_path / "state" / "events.jsonl").read_text().count("\n") == 2


def test_torn_last_line_is_skipped_and_next_append_starts_fresh(tmp_path, caplog):
    log = StateLog(str(tmp_path))
    log.append(rec("a", "success"))
    with open(log.path, "a") as fh:
        fh.write('{"model_name": "a", "status": "fail')  # a crash mid-write
    with caplog.at_level(logging.WARNING):
        assert [e["status"] for e in list(log.iter_events())] == ["success"]
    assert "events.jsonl:2: skipped a torn last line" in caplog.text
    with caplog.at_level(logging.WARNING):
        log.append(rec("a", "rejected"))
    assert "events.jsonl: cut off a torn last line (35 bytes) left by an interrupted write" in caplog.text
    lines = open(log.path).read().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["success", "rejected"]


def test_torn_first_line_is_cut_whole(tmp_path):
    log = StateLog(str(tmp_path))
    os.makedirs(tmp_path, exist_ok=True)
    with open(log.path, "w") as fh:
        fh.write('{"model_name": "a"' * 10000)
    log.append(rec("a", "success"))
    assert [e["status"] for e in list(log.iter_events())] == ["success"]
    assert open(log.path).read().count("\n") == 1


def test_garbage_line_in_the_middle_is_skipped(tmp_path, caplog):
    log = StateLog(str(tmp_path))
    log.append(rec("a", "success"))
    with open(log.path, "ab") as fh:
        fh.write(b"\xff\xfe not json\n[1, 2]\n")
    log.append(rec("a", "skipped"))
    with caplog.at_level(logging.WARNING):
        assert [e["status"] for e in list(log.iter_events())] == ["success", "skipped"]
    assert "skipped an unreadable line" in caplog.text


def test_fold():
    events = [
        rec("a", "started", attempt_id="x1"),
        rec("a", "failure", attempt_id="x1", error_type="fit_error"),
        rec("a", "failure", t="2026-11-27T12:10:00+00:00"),
        rec("a", "paused", trigger="operator"),
        rec("b", "success", data_hash="h9"),
        rec("b", "skipped", data_hash="h10"),
        rec("b", "rejected", data_hash="h11"),
        rec("c", "started", attempt_id="x2"),
        rec("a", "failure", trigger="manual"),  # manual failures do not feed the automatic retry policy
    ]
    s = fold(events)
    assert s["a"].failures_in_row == 2 and s["a"].failure_hash == "h1" and s["a"].paused
    assert s["a"].last_event.trigger_type == "manual"
    assert s["b"].skipped_hash == "h10" and "h11" in s["b"].rejected and s["b"].failures_in_row == 0
    assert list(s["c"].open_attempts) == ["x2"] and not s["a"].open_attempts
    s2 = fold(events + [rec("a", "resumed", trigger="operator"), rec("a", "success")])
    assert not s2["a"].paused and s2["a"].failures_in_row == 0


def test_failures_count_per_data_hash():
    s = fold([rec("a", "failure", data_hash="h1"), rec("a", "failure", data_hash="h1"),
              rec("a", "failure", data_hash="h2")])
    assert s["a"].failures_in_row == 1 and s["a"].failure_hash == "h2"
