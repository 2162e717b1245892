"""Small values every record holds: times as the log writes them, numbers read from records that
may be hand-edited or garbled, free text made one line, attempt ids and where an attempt runs."""
import math
import os
import re
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


# Line breaks and other white-space controls (a `\r` would send the rest of a `history` row back
# over its start), and the controls that are never text: C0 and C1 (an ESC starts a terminal
# sequence), DEL, and the bidirectional overrides that make a line show other than it reads.
_BREAKS = re.compile(r"[\t\n\v\f\r\x1c-\x1f\x85\u2028\u2029]+")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u202a-\u202e\u2066-\u2069]")


def one_line(text: str) -> str:
    """Free text an operator gives (a `--reason`, the user name) as it is recorded: one printable
    line. A run of line breaks or tabs becomes one space, any other control character its visible
    escape (`\\x1b`, `\\u202e`), and the ends are stripped."""
    text = _BREAKS.sub(" ", text)
    text = _CONTROLS.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)
    return text.strip()


def new_attempt_id() -> str:
    import uuid  # imported here: a no-op check records no attempt

    return uuid.uuid4().hex[:16]


def host_info() -> dict[str, Any]:
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid()}
