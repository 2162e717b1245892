"""The state directory: an append-only JSON-lines event log under a file lock, the per-model
fold over it, the per-model training locks and the small scheduling cache."""
import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from filelock import FileLock, Timeout

from . import faults
from .errors import LockBusy, RetrainctlError
from .fsutil import atomic_write_json, read_json

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
CHECKS_FILE = "checks.json"
LOCK_TIMEOUT = 60.0

RETRAIN_STATUSES = ("success", "failure", "rejected", "skipped")
OPERATOR_STATUSES = ("paused", "resumed", "rolled_back")
HISTORY_STATUSES = RETRAIN_STATUSES + OPERATOR_STATUSES


def utcnow_iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def parse_iso(text):
    return datetime.fromisoformat(text).timestamp()


def new_attempt_id():
    return uuid.uuid4().hex[:16]


def host_info():
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
    quality_handled: set = field(default_factory=set)


def fold(events):
    """Fold the event log into {model_name: ModelState}. Pure: values in, values out."""
    states = {}
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
        when = _event_time(ev)
        data_hash = ev.get("data_hash")
        if status in ("success", "rejected"):
            st.quality_handled.update((ev.get("quality_keys") or {}).items())
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
            st.rejected[data_hash] = when
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


def _event_time(ev):
    try:
        return parse_iso(ev["trigger_time"]) + float(ev.get("duration") or 0)
    except (KeyError, TypeError, ValueError):
        return None


class StateLog:
    """events.jsonl: appended under `events.lock` with flush + fsync; read without the lock
    (a reader sees whole lines plus, at worst, a torn last line, which it skips)."""

    def __init__(self, state_dir, lock_timeout=LOCK_TIMEOUT):
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, EVENTS_FILE)
        self.lock = FileLock(os.path.join(state_dir, "events.lock"), timeout=lock_timeout)

    def ensure_dir(self):
        try:
            os.makedirs(self.state_dir, exist_ok=True)
        except OSError as exc:
            raise RetrainctlError(f"{self.state_dir}: cannot create the state directory: {exc.strerror}") from None
        if not os.access(self.state_dir, os.W_OK | os.X_OK):
            raise RetrainctlError(f"{self.state_dir}: state directory is not writable")

    def read(self):
        """Every complete record, oldest first. A torn or garbled line is skipped with a warning."""
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return []
        except PermissionError:
            raise RetrainctlError(f"{self.path}: permission denied reading the state log") from None
        events = []
        lines = data.split(b"\n")
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
                if not isinstance(ev, dict):
                    raise ValueError("not an object")
            except (ValueError, UnicodeDecodeError):
                torn = lineno == len(lines)
                log.warning("%s:%d: skipped %s line", self.path, lineno, "a torn last" if torn else "an unreadable")
                continue
            events.append(ev)
        return events

    def append(self, *records):
        """Append records as whole lines, durably. A torn last line left by a crash is cut
        off first (under the lock), so the new record starts on a fresh line and every line
        of the log parses."""
        if not records:
            return
        self.ensure_dir()
        payload = b"".join(json.dumps(r, sort_keys=True, default=str).encode() + b"\n" for r in records)
        try:
            with self.lock:
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
                try:
                    self._cut_torn_tail(fd)
                    if os.environ.get(faults.ENV) == "mid_append" and records[0].get("status") != "started":
                        os.write(fd, payload[: len(payload) // 2])
                        faults.point("mid_append")
                    os.write(fd, payload)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except Timeout:
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
        self.lock = FileLock(os.path.join(state_dir, "checks.lock"), timeout=LOCK_TIMEOUT)

    def load(self):
        data = read_json(self.path, default={}) or {}
        return data if isinstance(data, dict) else {}

    def record(self, evaluated):
        """Merge {model: time} into the cache (read-modify-write under its lock)."""
        if not evaluated:
            return
        with self.lock:
            data = self.load()
            data.update(evaluated)
            atomic_write_json(self.path, data)


def training_lock(state_dir, model_name):
    """The per-model lock a fit holds from decision to record; an OS lock, freed by the
    kernel when its process dies, so a killed run never blocks the next."""
    return FileLock(os.path.join(state_dir, f"train-{model_name}.lock"), timeout=0)


def lock_is_held(state_dir, model_name):
    lock = training_lock(state_dir, model_name)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False
