"""The state log at scale: summary.json caches the fold up to an offset and must always agree
with a full fold of every segment; history reads backwards only as far as it needs; rotation
renames whole segments and loses nothing."""
import copy
import dataclasses
import errno
import json
import logging
import os
import tempfile

import filelock
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrainctl.state import log as eventlog

from retrainctl.core import fold as fold_module

from retrainctl.base import locks

from retrainctl.state import segments as logfile
from retrainctl.state import summary as summary_module
from retrainctl.base.errors import LockBusy, RetrainctlError
from retrainctl.state.log import StateLog
from retrainctl.core.records import HISTORY_STATUSES, Record
from retrainctl.core.fold import fold
from retrainctl.base.locks import LockTimeout, training_lock
from retrainctl.core.totals import ENTRY_TOTALS, fold_entry_totals, fold_totals
from retrainctl.state.schedule import ScheduleCache

TIMES = ["2026-11-27T12:00:00+00:00", "2026-11-27T12:05:00+00:00", "2026-11-28T01:00:00+00:00", "not a time"]

records = st.fixed_dictionaries(
    {
        "model_name": st.sampled_from(["a", "b", "c.d", "sales:s1", "sales:s2"]),
        "status": st.sampled_from(list(HISTORY_STATUSES) + ["started"]),
        "trigger_type": st.sampled_from(["data_change", "manual", "operator", "initial"]),
        "trigger_time": st.sampled_from(TIMES),
        "data_hash": st.sampled_from(["h1", "h2", None]),
        "attempt_id": st.sampled_from(["x1", "x2", None]),
    },
    optional={  # the fields the metrics' running totals read too
        "duration": st.sampled_from([0.0, 1.5, 4000.0, None, "n/a", float("inf"), -3.0, 10 ** 400, True]),
        "error_signature": st.sampled_from(["e1", "e2", None]),
        "error_type": st.sampled_from(["timeout", "data_error", None]),
        "executor": st.sampled_from(["local", "dask", None]),
        "executor_seconds": st.sampled_from([0.25, 7.5, None, "x", 10 ** 400]),
        "version": st.integers(1, 5),
    },
)
COMPLETE_WITHOUT_NEWLINE = b'{"model_name": "a", "status": "paused", "trigger_type": "operator"}'
operations = st.lists(st.one_of(
    st.tuples(st.just("append"), st.lists(records, min_size=1, max_size=4)),
    st.tuples(st.just("append elsewhere"), st.lists(records, min_size=1, max_size=4)),
    st.tuples(st.just("torn"), st.sampled_from([b'{"model_name": "a", "sta', COMPLETE_WITHOUT_NEWLINE])),
    st.tuples(st.just("garbage"), st.sampled_from([b"not json\n", b"[1, 2]\n", b"\n"])),
    st.tuples(st.just("rotate"), st.none()),
    st.tuples(st.just("states"), st.none()),
    st.tuples(st.just("drop summary"), st.none()),
), max_size=30)


def rec(model, status, t=TIMES[0], data_hash="h1", **kw):
    """A state-log record as it would be read back from the log."""
    return Record.from_dict(dict(model_name=model, status=status, trigger_type="data_change", trigger_time=t,
                                 data_hash=data_hash, duration=1.0, **kw))


def lines(log):
    """Every line of the log as it was written."""
    return list(log.iter_events())


def naive_history(log, model=None, limit=20):
    events = [e for e in lines(log) if e.get("status") in HISTORY_STATUSES and (model is None or e.get("model_name") == model)]
    events.reverse()
    return events[:limit] if limit else events


def write_raw(log, data):
    os.makedirs(log.state_dir, exist_ok=True)
    with open(log.path, "ab") as fh:
        fh.write(data)


@settings(max_examples=150, deadline=None)
@given(operations, st.sampled_from([0, 300, 1 << 16]), st.sampled_from([0, 40]))
def test_summary_always_agrees_with_a_full_fold(ops, refresh, block):
    """After appends (by this StateLog, which keeps its folds in memory, or by another process's),
    torn and garbled lines, rotations and lost summaries, the folded state (summary + tail)
    equals the fold of every record of every segment, what an earlier call returned is never
    changed by a later one, and history equals the newest-first filter of all records."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(eventlog, "SUMMARY_REFRESH", refresh)
        if block:  # tiny blocks: every line straddles a block boundary somewhere
            mp.setattr(logfile, "BLOCK", block)
            mp.setattr(logfile, "BACK_BLOCK", block)
        log = StateLog(os.path.join(tmp, "state"))
        given_before, totals_before = log.states(), log.totals()
        kept, kept_totals = copy.deepcopy(given_before), copy.deepcopy(totals_before)
        for op, arg in ops:
            if op == "append":
                log.append(*[Record.from_dict(d) for d in arg])
            elif op == "append elsewhere":
                StateLog(log.state_dir).append(*[Record.from_dict(d) for d in arg])
            elif op in ("torn", "garbage"):
                write_raw(log, arg)
            elif op == "rotate":
                log.rotate()
            elif op == "states":  # folds what was appended since into the records callers hold
                log.states()
                log.totals()
            elif op == "drop summary" and os.path.exists(log.summary_path):
                os.unlink(log.summary_path)
            full, totals = fold(log.records()), fold_totals(log.records())
            assert given_before == kept  # what a caller holds does not change under it
            assert totals_before == kept_totals
            given_before, totals_before = log.states(), log.totals()
            kept, kept_totals = copy.deepcopy(given_before), copy.deepcopy(totals_before)
            assert given_before == full
            assert log.states() == full  # and again, from whatever summary the first call left
            assert log.totals() == totals
            assert log.folds()["entry_totals"] == fold_entry_totals(log.records())
            assert log.fold_of(ENTRY_TOTALS, ["sales"]) == {k: v for k, v in fold_entry_totals(log.records()).items()}
            for model in (None, "a", "c.d"):
                for limit in (1, 3, 0):
                    assert [r.to_dict() for r in log.history(model, limit)] == naive_history(log, model, limit)


def parse_counter(monkeypatch):
    calls = []
    real = logfile.parse

    def counting(line):
        calls.append(line)
        return real(line)

    monkeypatch.setattr(logfile, "parse", counting)
    return calls


def test_only_the_tail_after_the_summary_is_parsed(tmp_path, monkeypatch):
    monkeypatch.setattr(eventlog, "SUMMARY_REFRESH", 0)
    log = StateLog(str(tmp_path))
    log.append(*[rec("a", "failure", error_signature=f"e{i}") for i in range(50)])
    assert log.states()["a"].failures_in_row == 50  # writes the summary
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["log"]["offset"] == os.path.getsize(log.path) and summary["log"]["lines"] == 50
    log.append(rec("a", "success"), rec("b", "paused"))
    calls = parse_counter(monkeypatch)
    states = log.states()
    assert len(calls) == 2
    assert states["a"].failures_in_row == 0 and states["b"].paused
    assert states == fold(log.records())


def stale_by(how, log):
    if how == "missing":
        os.unlink(log.summary_path)
    elif how == "damaged":
        with open(log.summary_path, "w") as fh:
            fh.write('{"format": [1')
    elif how == "log shorter":  # not something retrainctl does, but an operator might
        with open(log.path, "rb+") as fh:
            lines = fh.read().splitlines(keepends=True)
            fh.seek(0)
            fh.truncate()
            fh.writelines(lines[:3])
    elif how == "inode changed":
        tmp = log.path + ".new"
        with open(log.path, "rb") as src, open(tmp, "wb") as dst:
            dst.write(src.read().replace(b'"status": "failure"', b'"status": "skipped"'))
        os.replace(tmp, log.path)
    elif how == "bytes before the offset differ":  # the last line rewritten in place: same size and inode
        with open(log.path, "rb+") as fh:
            data = fh.read()
            fh.seek(0)
            fh.write(data.replace(b'"model_name": "b", "status": "success"', b'"model_name": "b", "status": "skipped"'))
    elif how in CHANGED_FOLD:
        eventlog.FOLDS = tuple(bumped(f) if f.name == CHANGED_FOLD[how] else f for f in eventlog.FOLDS)


CHANGED_FOLD = {"decision fold changed": "decision", "totals fold changed": "metrics_totals"}


def bumped(f):
    return dataclasses.replace(f, version=f.version + 1)


@pytest.mark.parametrize("how", ["missing", "damaged", "log shorter", "inode changed",
                                 "bytes before the offset differ", "decision fold changed", "totals fold changed"])
def test_stale_summary_is_rebuilt_from_the_log(tmp_path, monkeypatch, how):
    monkeypatch.setattr(eventlog, "SUMMARY_REFRESH", 0)
    monkeypatch.setattr(eventlog, "FOLDS", eventlog.FOLDS)
    log = StateLog(str(tmp_path))
    log.append(*[rec("a", "failure") for _ in range(6)], rec("b", "success"))
    assert log.states()["a"].failures_in_row == 6
    stale_by(how, log)
    calls = parse_counter(monkeypatch)
    assert log.states() == fold(log.records()) and log.totals() == fold_totals(log.records())
    assert len(calls) >= 2 * 3  # the whole log (at least three lines) was read again, twice over
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["log"]["inode"] == os.stat(log.path).st_ino
    assert summary["log"]["offset"] == os.path.getsize(log.path)


def test_a_changed_fold_rebuilds_only_its_own_section(tmp_path, monkeypatch):
    """A metrics change (another totals fold version) refolds the totals from the start, while the
    decision fold carries on from its cached section: it folds only the tail."""
    monkeypatch.setattr(eventlog, "SUMMARY_REFRESH", 0)
    log = StateLog(str(tmp_path))
    log.append(*[rec("a", "failure", error_type="timeout") for _ in range(5)], rec("a", "paused"))
    log.states()
    log.append(rec("b", "success"))
    decided = []
    decision, totals, summed = eventlog.FOLDS

    def counting(events, states=None):
        events = list(events)
        decided.extend(events)
        return decision.fold(events, states)

    monkeypatch.setattr(eventlog, "FOLDS", (dataclasses.replace(decision, fold=counting), bumped(totals), summed))
    assert log.totals() == fold_totals(log.records()) and log.totals()["a"].failures == {"timeout": 5}
    assert [e.model_name for e in decided] == ["b"]  # the tail, once: the section was still valid
    assert log.states() == fold(log.records()) and log.states()["a"].paused
    sections = json.loads((tmp_path / "summary.json").read_text())["folds"]
    assert sections["metrics_totals"]["format"][0] == totals.version + 1
    assert sections["decision"]["format"][0] == decision.version


def test_states_decode_only_the_decision_section_and_a_damaged_one_is_folded_again(tmp_path, monkeypatch, caplog):
    """A check wants the decision fold alone: the metrics' section of summary.json stays an
    undecoded text. A section that does not decode is folded again from the log, with a warning."""
    monkeypatch.setattr(eventlog, "SUMMARY_REFRESH", 0)
    log = StateLog(str(tmp_path))
    log.append(*[rec("a", "failure", error_type="timeout") for _ in range(3)], rec("b", "success"))
    log.states()  # writes the summary
    monkeypatch.setattr(eventlog, "SUMMARY_REFRESH", 64 << 10)  # not rewritten for a short tail
    decoded = []
    real = summary_module.Section.decode

    def counting(section):
        decoded.append(section.fold.name)
        return real(section)

    monkeypatch.setattr(summary_module.Section, "decode", counting)
    eventlog._MEMOS.clear()  # another process
    log.append(rec("b", "paused"))
    assert log.states() == fold(log.records()) and decoded == ["decision"]
    assert log.totals() == fold_totals(log.records()) and decoded == ["decision", "metrics_totals"]
    body = json.loads((tmp_path / "summary.json").read_text())
    body["folds"]["metrics_totals"]["models"]["a"] = '{"no such field": 1}'
    (tmp_path / "summary.json").write_text(json.dumps(body))
    eventlog._MEMOS.clear()
    log.append(rec("a", "failure", error_type="oom"))
    with caplog.at_level(logging.WARNING):
        assert log.totals() == fold_totals(log.records()) and log.totals()["a"].failures == {"timeout": 3, "oom": 1}
    assert "the metrics_totals fold does not decode; folding the log again" in caplog.text
    assert log.states() == fold(log.records())


def test_the_states_of_a_few_of_many_models_decode_only_theirs(tmp_path, monkeypatch):
    monkeypatch.setattr(eventlog, "SUMMARY_REFRESH", 0)
    log = StateLog(str(tmp_path))
    log.append(*[rec(f"m{i:03d}", "failure", error_signature=f"e{i}") for i in range(100)])
    log.states()  # writes the summary
    monkeypatch.setattr(eventlog, "SUMMARY_REFRESH", 64 << 10)
    eventlog._MEMOS.clear()  # another process
    log.append(rec("m007", "success"), rec("m008", "paused"), rec("new", "failure"))

    def whole(section):
        raise AssertionError("decoded the whole section")

    monkeypatch.setattr(summary_module.Section, "decode", whole)
    few = log.states_of(["m007", "m008", "m009", "new", "unknown"])
    monkeypatch.undo()
    full = fold(log.records())
    assert few == {name: full[name] for name in ("m007", "m008", "m009", "new")}
    assert few["m007"].failures_in_row == 0 and few["m008"].paused and few["m009"].failures_in_row == 1
    assert log.states_of([f"m{i:03d}" for i in range(50)]) == {f"m{i:03d}": full[f"m{i:03d}"] for i in range(50)}


def test_a_torn_last_line_is_folded_but_never_cached(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(eventlog, "SUMMARY_REFRESH", 0)
    log = StateLog(str(tmp_path))
    log.append(rec("a", "success"))
    write_raw(log, COMPLETE_WITHOUT_NEWLINE)  # a record whose newline never made it
    assert log.states()["a"].paused  # seen, like iter_events() sees it
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["log"]["offset"] == os.path.getsize(log.path) - len(COMPLETE_WITHOUT_NEWLINE)
    with caplog.at_level(logging.WARNING):
        log.append(rec("a", "failure"))  # cuts the unterminated line first
    assert "cut off a torn last line" in caplog.text
    states = log.states()
    assert not states["a"].paused and states["a"].failures_in_row == 1
    assert states == fold(log.records())


def test_garbled_line_warns_with_its_line_number_in_the_tail(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(eventlog, "SUMMARY_REFRESH", 0)
    log = StateLog(str(tmp_path))
    log.append(rec("a", "success"), rec("a", "skipped"))
    log.states()
    write_raw(log, b"garbage\n")
    with caplog.at_level(logging.WARNING):
        log.states()
    assert "events.jsonl:3: skipped an unreadable line" in caplog.text


def test_rotation_renames_whole_segments_and_keeps_everything(tmp_path, monkeypatch):
    log = StateLog(str(tmp_path))
    first = [rec("a", "failure"), rec("a", "paused")]
    log.append(*first)
    before = open(log.path, "rb").read()
    name = log.rotate()
    assert name is not None and logfile.rotated(str(tmp_path)) == [name]
    assert open(tmp_path / name, "rb").read() == before  # renamed, not rewritten
    assert os.path.getsize(log.path) == 0
    log.append(rec("b", "success"), rec("a", "resumed"))
    assert [e["status"] for e in lines(log)] == ["failure", "paused", "success", "resumed"]
    states = log.states()
    assert states == fold(log.records()) and states["a"].failures_in_row == 1 and not states["a"].paused
    assert [e.status for e in log.history(limit=3)] == ["resumed", "success", "paused"]
    os.unlink(log.summary_path)  # lost: rebuilt from the rotated segment and the current one
    assert log.states() == states
    assert log.rotate() is not None
    assert log.rotate() is None  # an empty current segment is not rotated
    assert log.states() == states and len(logfile.rotated(str(tmp_path))) == 2


def test_append_rotates_once_the_segment_is_full(tmp_path):
    log = StateLog(str(tmp_path), rotate_bytes=600)
    records = [rec("a", "failure" if i % 3 else "success", error_signature=f"e{i}") for i in range(20)]
    for r in records:
        log.append(r)
    segments = logfile.rotated(str(tmp_path))
    assert len(segments) >= 3
    assert all(os.path.getsize(tmp_path / s) >= 600 for s in segments)
    assert lines(log) == [r.to_dict() for r in records]
    assert log.states() == fold(records)
    assert log.history(limit=0) == [r for r in reversed(records)]


def test_rotated_names_sort_in_rotation_order(tmp_path):
    names = [logfile.free_rotated_name(str(tmp_path), 1_800_000_000.25)]
    (tmp_path / names[0]).write_text("")
    names.append(logfile.free_rotated_name(str(tmp_path), 1_800_000_000.25))  # same microsecond
    (tmp_path / names[1]).write_text("")
    names.append(logfile.free_rotated_name(str(tmp_path), 1_800_000_001.0))
    (tmp_path / names[2]).write_text("")
    names.append(logfile.free_rotated_name(str(tmp_path), 1_700_000_000.0))  # the clock stepped back
    (tmp_path / names[3]).write_text("")
    names.append(logfile.free_rotated_name(str(tmp_path), 1_700_000_000.0))
    (tmp_path / names[4]).write_text("")
    assert names == ["events.20270115T080000.250000Z.jsonl", "events.20270115T080000.250000Z.1.jsonl",
                     "events.20270115T080001.000000Z.jsonl", "events.20270115T080001.000000Z.1.jsonl",
                     "events.20270115T080001.000000Z.2.jsonl"]
    assert logfile.rotated(str(tmp_path)) == names
    assert logfile.free_rotated_name(str(tmp_path), 1_900_000_000.0) == "events.20300317T174640.000000Z.jsonl"


def test_history_reads_only_the_end_of_a_long_log(tmp_path, monkeypatch, caplog):
    """A garbled line at the start of the log is never reached by `history --limit 2`."""
    monkeypatch.setattr(logfile, "BACK_BLOCK", 4096)
    log = StateLog(str(tmp_path))
    write_raw(log, b"garbage at the start\n")
    log.append(*[rec("a", "success", version=i) for i in range(2000)])
    calls = parse_counter(monkeypatch)
    with caplog.at_level(logging.WARNING):
        assert [e.version for e in log.history(limit=2)] == [1999, 1998]
    assert "garbage" not in caplog.text and len(calls) <= 40
    with caplog.at_level(logging.WARNING):
        assert len(log.history(limit=0)) == 2000
    assert "skipped an unreadable line" in caplog.text


def test_history_of_one_model_parses_only_its_lines(tmp_path, monkeypatch):
    log = StateLog(str(tmp_path))
    log.append(*[rec("a" if i % 10 else "b", "success", version=i) for i in range(100)])
    calls = parse_counter(monkeypatch)
    assert [e.version for e in log.history("b", limit=0)] == list(range(90, -1, -10))
    assert len(calls) == 10


def test_schedule_cache_lock_is_the_same_lock_filelock_takes(tmp_path, monkeypatch):
    monkeypatch.setattr("retrainctl.state.schedule.LOCK_TIMEOUT", 0.2)
    cache = ScheduleCache(str(tmp_path))
    cache.record({"a": 1.0})
    with filelock.FileLock(str(tmp_path / "checks.lock")):
        with pytest.raises(LockBusy, match=r"checks.lock: lock still held after 0s"):
            cache.record({"b": 2.0})
    cache.record({"b": 2.0})
    assert cache.load() == {"a": 1.0, "b": 2.0}


def test_an_append_the_disk_fails_midway_leaves_nothing_of_it(tmp_path, monkeypatch):
    """Records are written whole or not at all: a short write (one record and a half) followed by
    an I/O error is cut back under the lock and reported naming the log and the cause.
    (tests/test_full_disk.py proves the same with a real full file system.)"""
    log = StateLog(str(tmp_path))
    log.append(rec("a", "paused"))
    before = open(log.path, "rb").read()
    real, calls = os.write, []

    def failing(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(data[: len(data) * 3 // 4]))
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "write", failing)
    with pytest.raises(RetrainctlError, match=rf"^{log.path}: cannot append to the state log: Input/output error$"):
        log.append(rec("a", "resumed"), rec("a", "success"))
    monkeypatch.undo()
    assert len(calls) == 2 and open(log.path, "rb").read() == before
    log.append(rec("b", "success"))
    assert [(e["model_name"], e["status"]) for e in lines(log)] == [("a", "paused"), ("b", "success")]
    assert log.states()["a"].paused


def test_lock_timeout_is_also_a_filelock_timeout(tmp_path):
    held = training_lock(str(tmp_path), "a")
    held.acquire()
    try:
        with pytest.raises(LockTimeout) as info:
            training_lock(str(tmp_path), "a").acquire(timeout=0)
        assert isinstance(info.value, filelock.Timeout)
        assert locks.lock_is_held(str(tmp_path), "a")
    finally:
        held.release()
    assert not locks.lock_is_held(str(tmp_path), "a")


IRIS = {"data_path": "iris.csv", "target": "Species", "task": "classification",
        "estimator": "sklearn.tree.DecisionTreeClassifier"}


@pytest.mark.parametrize("value,expected", [(None, None), (0.5, 1 << 19), ("absent", 256 << 20)])
def test_state_log_rotate_mb(value, expected):
    import yaml

    from retrainctl.config.load import parse_config

    top = {"models": {"iris": IRIS}} if value == "absent" else {"state_log_rotate_mb": value, "models": {"iris": IRIS}}
    assert parse_config(yaml.safe_dump(top), "c.yaml").state_log_rotate_bytes == expected


def test_state_log_rotate_mb_must_be_positive():
    from retrainctl.base.errors import ConfigError
    from retrainctl.config.load import parse_config

    with pytest.raises(ConfigError, match=r"^c.yaml: state_log_rotate_mb: must be > 0, got 0$"):
        parse_config("state_log_rotate_mb: 0\nmodels: {iris: {data_path: a.csv, target: t, task: regression, "
                     "estimator: sklearn.linear_model.Ridge}}\n", "c.yaml")


def test_commands_rotate_the_log_and_keep_their_history(project):
    """With a tiny rotate size every append rotates; status, history and the next check still see
    everything, because the summary carries the fold across segments."""
    project.config["state_log_rotate_mb"] = 0.0001
    project.write_config()
    assert project.cli("check").exit_code == 0
    assert project.cli("pause", "iris").exit_code == 0
    segments = logfile.rotated(str(project.state_dir))
    assert len(segments) >= 3
    history = json.loads(project.cli("history", "--json", "--limit", "0").stdout)["history"]
    assert [(e["model_name"], e["status"]) for e in history] == [
        ("iris", "paused"), ("housing", "success"), ("iris", "success")]
    status = {r["model_name"]: r for r in json.loads(project.cli("status", "--json").stdout)["models"]}
    assert status["iris"]["paused"] and not status["housing"]["paused"]
    assert status["iris"]["last_event"]["status"] == "paused"
    r = project.cli("check")
    assert r.exit_code == 0 and "hold" not in r.stdout  # nothing due: a pause holds nothing


def test_fold_keeps_only_the_most_recent_rejected_hashes(monkeypatch):
    """Years of rejections must not make every read slower: the newest REJECTED_KEPT are kept,
    and a hash rejected again counts as new."""
    monkeypatch.setattr(fold_module, "REJECTED_KEPT", 3)
    events = [rec("a", "rejected", data_hash=h) for h in ("h1", "h2", "h3", "h1", "h4")]
    assert list(fold(events)["a"].rejected) == ["h3", "h1", "h4"]


def test_a_training_round_rewrites_the_summary_once_at_its_end(tmp_path, monkeypatch):
    """While a batch of models records its attempts (StateLog.summary_held) the summary is not
    rewritten as the tail grows, however often the log is read; it is once the round ends, and
    what a reader folds meanwhile is the whole log all the same."""
    monkeypatch.setattr(eventlog, "SUMMARY_REFRESH", 0)
    log = StateLog(str(tmp_path))
    log.append(rec("a", "success"))
    log.states()
    summary = tmp_path / "summary.json"

    def covered():
        return json.loads(summary.read_text())["log"]["offset"]

    before = covered()
    with log.summary_held():
        for model in ("b", "c", "d"):
            log.append(rec(model, "success"))
            assert log.states() == fold(log.records())
            assert covered() == before
    assert covered() == os.path.getsize(tmp_path / "events.jsonl") > before
    with pytest.raises(KeyboardInterrupt), log.summary_held():  # an interrupted round leaves it to the next reader
        log.append(rec("e", "success"))
        raise KeyboardInterrupt
    assert covered() < os.path.getsize(tmp_path / "events.jsonl")
    log.states()
    assert covered() == os.path.getsize(tmp_path / "events.jsonl")


def test_the_totals_a_caller_holds_do_not_change_under_it(tmp_path):
    """The metrics' running totals (per model and per entry) a caller got stay as they were when
    records of the same models are folded in later: the log copies them first (their histograms
    too), as it does the decision states."""
    log = StateLog(str(tmp_path / "state"))
    success = dict(status="success", trigger_type="manual", trigger_time=TIMES[0], duration=2.0, executor_seconds=1.0)
    log.append(*[Record.from_dict(dict(success, model_name=m)) for m in ("a", "sales:s1")])
    held = (log.states(), log.totals(), log.folds()["entry_totals"])
    kept = copy.deepcopy(held)
    log.append(*[Record.from_dict(dict(success, model_name=m)) for m in ("a", "sales:s1")])
    assert log.totals()["a"].durations["success"][0] == log.folds()["entry_totals"]["sales"].successes == 2
    assert held == kept
