"""The state directory: an append-only JSON-lines event log under a file lock, the per-model
fold over it, the per-model training locks and the small scheduling cache.

filelock, uuid and socket are imported where they are used: a `check` with nothing to do takes
no lock on the event log and should not pay for them."""
import json
import logging
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone

from . import faults
from .errors import LockBusy, RetrainctlError
from . import logfile
from .fsutil import atomic_write, atomic_write_json, fsync_dir, read_json

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
CHECKS_FILE = "checks.json"
SUMMARY_FILE = "summary.json"
# The fold remembers the data hashes of this many most recent rejected candidates per model
# (only the current data's matters to a decision; data reverted to a hash rejected longer ago
# than that is simply tried again).
REJECTED_KEPT = 1000
# Bump when fold() changes what it computes from the same records: summaries written by the old
# code are then rebuilt. (A field added to ModelState changes the format by itself.)
FOLD_VERSION = 4
# The summary is rewritten once the tail a reader had to fold exceeds this many bytes.
SUMMARY_REFRESH = 64 << 10
LOCK_TIMEOUT = 60.0

RETRAIN_STATUSES = ("success", "failure", "rejected", "skipped")
# Outcomes of an attempt to fit; `skipped` never fitted, so it has no duration worth a bucket.
TIMED_STATUSES = ("success", "failure", "rejected")
# Buckets of the duration histograms (metrics.py). Training takes seconds to hours: one bucket
# per step an operator would name.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
OPERATOR_STATUSES = ("paused", "resumed", "rolled_back")
HISTORY_STATUSES = RETRAIN_STATUSES + OPERATOR_STATUSES


def utcnow_iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def parse_iso(text):
    return datetime.fromisoformat(text).timestamp()


def new_attempt_id():
    import uuid

    return uuid.uuid4().hex[:16]


def host_info():
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid()}


@dataclass
class ModelState:
    """What the log says about one model: the result of folding its events in order."""

    paused: bool = False
    last_event: dict = None          # newest history record
    failures_in_row: int = 0         # automatic failures since the last success/rejection/new data
    failure_hash: str = None         # data hash those failures were for
    last_failure_time: float = None
    skipped_hash: str = None         # data hash that already got its `skipped` event
    error_signature: str = None      # last recorded data/config error, recorded once until it changes
    rejected: dict = field(default_factory=dict)  # data hash -> time of a rejected candidate
    last_success_time: float = None
    open_attempts: dict = field(default_factory=dict)  # attempt_id -> started record
    # (trigger, evidence key) pairs a performance/drift-triggered retrain already ran for
    quality_handled: dict = field(default_factory=dict)  # trigger -> evidence key of the last retrain it caused
    # Running totals behind the Prometheus counters and histograms (metrics.py), folded like the
    # rest, so that exporting metrics after every run never re-reads years of log.
    triggered: dict = field(default_factory=dict)       # trigger_type -> retraining events
    successes: int = 0
    rejections: int = 0
    failures: dict = field(default_factory=dict)        # error_type -> failures
    durations: dict = field(default_factory=dict)       # status -> [count, sum, count per bucket]
    executor_times: dict = field(default_factory=dict)  # executor -> [count, sum, count per bucket]


def fold(events, states=None):
    """Fold the event log into {model_name: ModelState}. Pure: values in, values out.
    `states` continues an earlier fold (it is updated in place): fold(a + b) == fold(b, fold(a))."""
    states = {} if states is None else states
    for ev in events:
        name = ev.get("model_name")
        if not isinstance(name, str):
            continue
        st = states.setdefault(name, ModelState())
        status = ev.get("status")
        if status == "started":
            st.open_attempts[ev.get("attempt_id")] = ev
            continue
        st.open_attempts.pop(ev.get("attempt_id"), None)
        if status not in HISTORY_STATUSES:
            continue
        st.last_event = ev
        if status in RETRAIN_STATUSES:
            _count(st, ev, status)
        when = _event_time(ev)
        data_hash = ev.get("data_hash")
        if status in ("success", "rejected"):
            st.quality_handled.update(ev.get("quality_keys") or {})
        if status == "rolled_back" and ev.get("abandoned_data_hash"):
            # The data of the version an operator rolled back from counts as rejected: the rollback
            # sticks until new data arrives, instead of being undone by the next check.
            _remember_rejected(st, ev["abandoned_data_hash"], when)
        if status == "paused":
            st.paused = True
        elif status == "resumed":
            st.paused = False
        elif status == "success":
            st.failures_in_row = 0
            st.failure_hash = None
            st.error_signature = None
            st.last_success_time = when
        elif status == "rejected":
            st.failures_in_row = 0
            st.failure_hash = None
            _remember_rejected(st, data_hash, when)
        elif status == "failure":
            if ev.get("error_signature"):
                st.error_signature = ev["error_signature"]
            if ev.get("trigger_type") != "manual":
                if st.failure_hash != data_hash:
                    st.failures_in_row = 0
                st.failures_in_row += 1
                st.failure_hash = data_hash
                st.last_failure_time = when
        elif status == "skipped":
            st.skipped_hash = data_hash
    return states


def _count(st, ev, status):
    trigger = str(ev.get("trigger_type") or "unknown")
    st.triggered[trigger] = st.triggered.get(trigger, 0) + 1
    if status == "success":
        st.successes += 1
    elif status == "rejected":
        st.rejections += 1
    elif status == "failure":
        kind = str(ev.get("error_type") or "unknown")
        st.failures[kind] = st.failures.get(kind, 0) + 1
    if status in TIMED_STATUSES:
        _observe(st.durations, status, max(0.0, finite_number(ev.get("duration")) or 0.0))
        ran = finite_number(ev.get("executor_seconds"))
        if ran is not None:  # records from before executors were recorded have no such field
            _observe(st.executor_times, str(ev.get("executor") or "local"), max(0.0, ran))


def _observe(histograms, key, value):
    hist = histograms.get(key)
    if hist is None:
        hist = histograms[key] = [0, 0.0, [0] * len(DURATION_BUCKETS)]
    hist[0] += 1
    hist[1] += value
    for i, bound in enumerate(DURATION_BUCKETS):
        if value <= bound:
            hist[2][i] += 1


def finite_number(value):
    """A finite float, or None for anything a hand-edited or garbled record might hold."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)  # an int too big for a float raises OverflowError
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _remember_rejected(st, data_hash, when):
    st.rejected.pop(data_hash, None)
    st.rejected[data_hash] = when
    if len(st.rejected) > REJECTED_KEPT:  # years of rejections must not grow every read
        del st.rejected[next(iter(st.rejected))]


def _event_time(ev):
    try:
        return parse_iso(ev["trigger_time"]) + float(ev.get("duration") or 0)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


class StateLog:
    """events.jsonl: appended under `events.lock` with flush + fsync; read without the lock
    (a reader sees whole lines plus, at worst, a torn last line, which it skips).

    The log is never rewritten: a torn last line is the only thing ever cut, and old segments
    are rotated by renaming the whole file to events.<UTC time>.jsonl. Beside it, summary.json
    caches the fold up to a byte offset, so a reader folds only the tail (see states())."""

    def __init__(self, state_dir, lock_timeout=LOCK_TIMEOUT, rotate_bytes=None):
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, EVENTS_FILE)
        self.summary_path = os.path.join(state_dir, SUMMARY_FILE)
        self.lock_timeout = lock_timeout
        self.rotate_bytes = rotate_bytes
        self._lock = None

    @property
    def lock(self):
        if self._lock is None:
            self._lock = file_lock(os.path.join(self.state_dir, "events.lock"), self.lock_timeout)
        return self._lock

    def ensure_dir(self):
        try:
            os.makedirs(self.state_dir, exist_ok=True)
        except OSError as exc:
            raise RetrainctlError(f"{self.state_dir}: cannot create the state directory: {exc.strerror}") from None
        if not os.access(self.state_dir, os.W_OK | os.X_OK):
            raise RetrainctlError(f"{self.state_dir}: state directory is not writable")

    def _open(self):
        """The current segment, open, and its stat; (None, None) when there is none yet."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return None, None
        except PermissionError:
            raise RetrainctlError(f"{self.path}: permission denied reading the state log") from None
        return fh, os.fstat(fh.fileno())

    def _rotated(self, current):
        """Rotated segment paths, oldest first, minus the one we hold open as current (it may
        have been rotated after we opened it)."""
        paths = [os.path.join(self.state_dir, n) for n in logfile.rotated(self.state_dir)]
        if current is None:
            return paths
        return [p for p in paths if not _same_file(p, current)]

    def iter_events(self):
        """Every complete record of every segment, oldest first, streamed. A torn or garbled
        line is skipped with a warning."""
        fh, st = self._open()
        try:
            for path in self._rotated(st):
                yield from self._records(path)
            if fh is not None:
                for ev, *_ in logfile.scan(fh, self.path):
                    if ev is not None:
                        yield ev
        finally:
            if fh is not None:
                fh.close()

    def _records(self, path):
        try:
            with open(path, "rb") as fh:
                for ev, *_ in logfile.scan(fh, path):
                    if ev is not None:
                        yield ev
        except FileNotFoundError:
            return

    def read(self):
        """Every complete record, oldest first (all of them in memory: prefer iter_events or states)."""
        return list(self.iter_events())

    def newest_first(self, needle=None):
        """Records newest first, read backwards in blocks from the end of the current segment
        and on into rotated segments only as far as the caller iterates. With `needle` (bytes),
        only lines containing it are parsed."""
        fh, st = self._open()
        try:
            if fh is not None:
                yield from logfile.backward(fh, self.path, needle)
        finally:
            if fh is not None:
                fh.close()
        for path in reversed(self._rotated(st)):
            try:
                with open(path, "rb") as seg:
                    yield from logfile.backward(seg, path, needle)
            except FileNotFoundError:
                continue

    def events(self, model=None, statuses=HISTORY_STATUSES):
        """Records with one of `statuses` (optionally one model's), newest first, read backwards
        only as far as the caller iterates."""
        # Model names are plain tokens, so a record of `model` always contains its JSON string:
        # lines without it are not even parsed. (Only an optimisation: matches are checked.)
        needle = json.dumps(model).encode() if model is not None else None
        for ev in self.newest_first(needle):
            if ev.get("status") in statuses and (model is None or ev.get("model_name") == model):
                yield ev

    def history(self, model=None, limit=20, statuses=HISTORY_STATUSES):
        """History records (optionally one model's), newest first; `limit` 0 or None means all."""
        import itertools

        return list(itertools.islice(self.events(model, statuses), limit or None))

    # --- the summary: the fold up to an offset, so a reader folds only the tail ------------------

    def states(self):
        """{model: ModelState}, the fold of every record of every segment: read from summary.json
        plus the tail after the offset it covers. The summary is rebuilt from the segments when it
        is missing or stale (another log file, log shorter than its offset, or the bytes before
        its offset differ) and rewritten when the tail has grown past SUMMARY_REFRESH bytes."""
        fh, st = self._open()
        try:
            summary = self._valid_summary(fh, st)
            if summary is None:
                states, segments = {}, []
                for path in self._rotated(st):
                    fold(self._records(path), states)
                    segments.append(os.path.basename(path))
                start, lineno, last = 0, 0, None
            else:
                states = summary["states"]
                segments = summary["segments"]
                start, lineno, last = summary["log"]["offset"], summary["log"]["lines"], None
            end, torn = start, None
            if fh is not None:
                for ev, n, pos, line, terminated in logfile.scan(fh, self.path, start, lineno):
                    if not terminated:
                        torn = ev
                        break
                    if ev is not None:
                        fold((ev,), states)
                    end, lineno, last = pos, n, line
            if st is not None and (summary is None or end - start >= SUMMARY_REFRESH):
                self._write_summary(st, end, lineno, last, segments, states)
            if torn is not None:  # seen, like any complete record, but never cached: it may be cut
                fold((torn,), states)
            return states
        finally:
            if fh is not None:
                fh.close()

    def _valid_summary(self, fh, st):
        if fh is None:
            return None
        try:
            with open(self.summary_path, "rb") as sfh:
                summary = json.load(sfh, object_hook=_decode)
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        try:
            if summary["format"] != _summary_format():
                return None
            where = summary["log"]
            if [where["dev"], where["inode"]] != [st.st_dev, st.st_ino] or where["offset"] > st.st_size:
                return None
            if where["offset"]:
                size = where["last_line_bytes"] + 1
                tail = os.pread(fh.fileno(), size, where["offset"] - size)
                if not tail.endswith(b"\n") or _digest(tail[:-1]) != where["last_line_sha256"]:
                    return None
            if not isinstance(summary["segments"], list):
                return None
            summary["states"] = _decode_states(summary["models"])
        except (KeyError, TypeError, ValueError, AttributeError, OSError):
            return None
        return summary

    def _write_summary(self, st, offset, lines, last_line, segments, states):
        """Best effort: a reader without write access, or a full disk, just folds more next time.
        Not written when the file we read is no longer the current segment (rotated meanwhile)."""
        summary = {
            "format": _summary_format(),
            "log": {"dev": st.st_dev, "inode": st.st_ino, "offset": offset, "lines": lines,
                    "last_line_bytes": len(last_line) if last_line is not None else 0,
                    "last_line_sha256": _digest(last_line) if last_line is not None else None},
            "segments": segments,
            "models": _encode_states(states),
        }
        try:
            if not _same_file(self.path, st):
                return
            atomic_write(self.summary_path, json.dumps(summary, separators=(",", ":")), durable=False)
        except OSError as exc:
            log.debug("%s: not updated: %s", self.summary_path, exc)

    # --- rotation -----------------------------------------------------------------------------

    def rotate(self):
        """Rename the current segment to events.<UTC time>.jsonl and start an empty one, under the
        lock; the summary carries the fold over. Returns the rotated file's name, or None."""
        self.ensure_dir()
        with self.lock:
            return self._rotate_locked()

    def _rotate_locked(self):
        import time

        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            self._cut_torn_tail(fd)
            if os.fstat(fd).st_size == 0:
                return None
        finally:
            os.close(fd)
        states = self.states()
        segments = [os.path.basename(p) for p in self._rotated(None)]
        name = logfile.free_rotated_name(self.state_dir, time.time())
        os.rename(self.path, os.path.join(self.state_dir, name))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        fsync_dir(self.state_dir)
        self._write_summary(st, 0, 0, None, segments + [name], states)
        log.info("%s: rotated to %s", self.path, name)
        return name

    def append(self, *records, unless=None):
        """Append records as whole lines, durably. A torn last line left by a crash is cut
        off first (under the lock), so the new record starts on a fresh line and every line
        of the log parses. `unless(states)`, when given, is asked under the lock with the fold
        as it is then: if it is true nothing is appended (a record that must be written once,
        whatever other processes do at the same time). Returns whether the records were written."""
        if not records:
            return False
        self.ensure_dir()
        payload = b"".join(json.dumps(r, sort_keys=True, default=str).encode() + b"\n" for r in records)
        try:
            with self.lock:
                if unless is not None and unless(self.states()):
                    return False
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
                try:
                    self._cut_torn_tail(fd)
                    if os.environ.get(faults.ENV) == "mid_append" and records[0].get("status") != "started":
                        os.write(fd, payload[: len(payload) // 2])
                        faults.point("mid_append")
                    os.write(fd, payload)
                    os.fsync(fd)
                    full = self.rotate_bytes and os.fstat(fd).st_size >= self.rotate_bytes
                finally:
                    os.close(fd)
                if full:
                    self._rotate_locked()
            return True
        except LockTimeout:
            raise LockBusy(f"{self.lock.lock_file}: state lock still held after {self.lock.timeout:.0f}s") from None
        except PermissionError:
            raise RetrainctlError(f"{self.path}: permission denied writing the state log") from None

    def _cut_torn_tail(self, fd):
        size = os.fstat(fd).st_size
        if size == 0:
            return
        end = size
        while end > 0:
            start = max(0, end - (1 << 16))
            chunk = os.pread(fd, end - start, start)
            if end == size and chunk.endswith(b"\n"):
                return
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                end = start + cut + 1
                break
            end = start
        log.warning("%s: cut off a torn last line (%d bytes) left by an interrupted write", self.path, size - end)
        os.ftruncate(fd, end)
        os.fsync(fd)


class ScheduleCache:
    """When each model was last evaluated, so check_interval holds across stateless runs.
    A cache, not history: losing it only means models are evaluated once more."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, CHECKS_FILE)
        self.lock_path = os.path.join(state_dir, "checks.lock")

    def load(self):
        data = read_json(self.path, default={}) or {}
        return data if isinstance(data, dict) else {}

    def record(self, evaluated):
        """Merge {model: time} into the cache (read-modify-write under its lock)."""
        if not evaluated:
            return
        with _flocked(self.lock_path, LOCK_TIMEOUT):
            data = self.load()
            data.update(evaluated)
            atomic_write_json(self.path, data, durable=False)


@contextmanager
def _flocked(path, timeout):
    """flock(2) on `path`, the same kernel lock filelock takes on Unix, so both interoperate;
    used directly for the one lock a no-op check takes, which should not import filelock."""
    import fcntl
    import time

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockBusy(f"{path}: lock still held after {timeout:.0f}s") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


class LockTimeout(TimeoutError):
    """A file lock is held by another process: what the locks from file_lock() raise when their
    timeout runs out (also a filelock.Timeout, for callers that catch that)."""


_lock_class = None


def file_lock(path, timeout):
    """A filelock.FileLock raising LockTimeout. filelock costs ~20 ms to import, most of a no-op
    check, so it is imported when the first lock is made, not with this module."""
    global _lock_class
    if _lock_class is None:
        from filelock import FileLock, Timeout

        class Busy(LockTimeout, Timeout):
            pass

        class Lock(FileLock):
            def acquire(self, *args, **kwargs):
                try:
                    return super().acquire(*args, **kwargs)
                except Timeout:
                    raise Busy(self.lock_file) from None

        _lock_class = Lock
    return _lock_class(path, timeout=timeout)


# How long a run waits for a model's training lock: long enough to ride out a `status` or a
# metrics export probing it, far shorter than any fit.
CLAIM_WAIT = 2.0


def training_lock(state_dir, model_name):
    """The per-model lock a fit holds from decision to record; an OS lock, freed by the
    kernel when its process dies, so a killed run never blocks the next."""
    return file_lock(os.path.join(state_dir, f"train-{model_name}.lock"), CLAIM_WAIT)


def lock_is_held(state_dir, model_name):
    """Whether a process holds the model's training lock now. Probed on a read-only descriptor
    (flock needs no write access), so `status` and `metrics` work on a read-only state dir and
    never create a lock file; no lock file means no holder."""
    import fcntl

    try:
        fd = os.open(os.path.join(state_dir, f"train-{model_name}.lock"), os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError, PermissionError):  # unreadable: unknown, say no
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor drops the probe's lock
    return False


def _same_file(path, st):
    try:
        other = os.stat(path)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def _digest(line):
    import hashlib

    return hashlib.sha256(line).hexdigest()


def _summary_format():
    from . import __version__

    return [FOLD_VERSION, __version__, [f.name for f in fields(ModelState)]]


# The fold holds only what JSON records hold, except dict keys that are not strings (a rejected
# data hash of None): such dicts, and any dict whose one key starts with "$", are written as
# tagged pairs so they come back identical.
def _encode(value):
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not (len(value) == 1 and next(iter(value)).startswith("$")):
            return {k: _encode(v) for k, v in value.items()}
        return {"$pairs": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(obj):
    if len(obj) == 1:
        tag, value = next(iter(obj.items()))
        if tag == "$pairs":
            return {k: v for k, v in value}
    return obj


def _encode_states(states):
    return {name: {f.name: _encode(getattr(st, f.name)) for f in fields(ModelState)} for name, st in states.items()}


def _decode_states(models):
    return {name: ModelState(**values) for name, values in models.items()}
