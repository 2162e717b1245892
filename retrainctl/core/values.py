"""Small values every record holds: times as the log writes them, numbers read from records that
may be hand-edited or garbled, attempt ids and where an attempt runs."""
import math
import os
from datetime import datetime, timezone
from typing import Any


def utcnow_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def finite_number(value: Any) -> float | None:
    """A finite float, or None for anything a hand-edited or garbled record might hold."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)  # an int too big for a float raises OverflowError
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def newer_version(a: str | None, b: Any) -> str | None:
    """The newer of two release versions (PEP 440), ignoring what is not one (a hand-edited
    record); None when neither is."""
    from packaging.version import InvalidVersion, Version

    def parsed(v: Any) -> Version | None:
        try:
            return Version(v) if isinstance(v, str) else None
        except InvalidVersion:
            return None

    pa, pb = parsed(a), parsed(b)
    if pb is None:
        return a if pa is not None else None
    return b if pa is None or pb > pa else a


def new_attempt_id() -> str:
    import uuid  # imported here: a no-op check records no attempt

    return uuid.uuid4().hex[:16]


def host_info() -> dict[str, Any]:
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid()}
