"""What a record of the event log holds: its statuses, its time format, attempt ids, host info,
and reading a number from a record that may be hand-edited or garbled."""
import math
import os
from datetime import datetime, timezone

RETRAIN_STATUSES = ("success", "failure", "rejected", "skipped")
# Outcomes of an attempt to fit; `skipped` never fitted, so it has no duration worth a bucket.
TIMED_STATUSES = ("success", "failure", "rejected")
OPERATOR_STATUSES = ("paused", "resumed", "rolled_back")
HISTORY_STATUSES = RETRAIN_STATUSES + OPERATOR_STATUSES


def utcnow_iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def parse_iso(text):
    return datetime.fromisoformat(text).timestamp()


def end_time(ev):
    """When the event's attempt ended (trigger time plus duration), or None if unreadable."""
    try:
        return parse_iso(ev["trigger_time"]) + float(ev.get("duration") or 0)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def finite_number(value):
    """A finite float, or None for anything a hand-edited or garbled record might hold."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)  # an int too big for a float raises OverflowError
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def new_attempt_id():
    import uuid  # imported here: a no-op check records no attempt

    return uuid.uuid4().hex[:16]


def host_info():
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid()}
