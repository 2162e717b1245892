"""The mechanics of reading a JSON-lines log fast, in blocks, without loading it: forward from a
byte offset (to fold a tail), backward from the end (newest first, for `history`), and the names
of rotated segments (`events.<UTC time>.jsonl`, renamed whole from `events.jsonl`)."""
import json
import logging
import os
import re
from collections.abc import Iterator
from typing import IO, Any

log = logging.getLogger(__name__)

BLOCK = 1 << 20        # forward reads
BACK_BLOCK = 1 << 16   # backward reads: `history --limit 20` touches one or two of these
_ROTATED = re.compile(r"^events\.(\d{8}T\d{6}\.\d{6}Z)(?:\.(\d+))?\.jsonl$")


def parse(line: bytes) -> dict[str, Any] | None:
    """One record, or None for a line that is not a JSON object."""
    try:
        ev = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return ev if isinstance(ev, dict) else None


def scan(fh: IO[bytes], path: str, start: int = 0,
         lineno: int = 0) -> Iterator[tuple[dict[str, Any] | None, int, int, bytes, bool]]:
    """Yield (record or None, line number, end offset, line bytes, terminated) for every
    non-blank line from byte `start` (which begins line `lineno` + 1). Unreadable lines are
    warned about and yielded as None, so a caller can still account for the bytes they cover."""
    fh.seek(start)
    pos = start
    rest = b""
    while True:
        block = fh.read(BLOCK)
        if not block:
            break
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        for line in lines:
            pos += len(line) + 1
            lineno += 1
            if line.strip():
                yield _checked(line, path, lineno, False), lineno, pos, line, True
    if rest.strip():
        yield _checked(rest, path, lineno + 1, True), lineno + 1, pos + len(rest), rest, False


def _checked(line: bytes, path: str, lineno: int, torn: bool) -> dict[str, Any] | None:
    ev = parse(line)
    if ev is None:
        log.warning("%s:%d: skipped %s line", path, lineno, "a torn last" if torn else "an unreadable")
    return ev


def backward(fh: IO[bytes], path: str, needle: bytes | None = None) -> Iterator[dict[str, Any]]:
    """Yield the records of an open log newest first, reading fixed blocks from the end.
    With `needle`, lines that do not contain it are passed over without being parsed."""
    end = os.fstat(fh.fileno()).st_size
    rest = b""
    last = True  # the piece after the final newline: a torn line if it does not parse
    while end > 0:
        start = max(0, end - BACK_BLOCK)
        fh.seek(start)
        lines = (fh.read(end - start) + rest).split(b"\n")
        end = start
        rest = lines.pop(0) if start > 0 else b""
        for line in reversed(lines):
            if line.strip() and (needle is None or needle in line):
                ev = parse(line)
                if ev is not None:
                    yield ev
                else:
                    log.warning("%s: skipped %s line", path, "a torn last" if last else "an unreadable")
            last = False


def rotated_name(when: float) -> str:
    """events.<UTC time to the microsecond>.jsonl (see free_rotated_name for the counter)."""
    from datetime import datetime, timezone

    return "events." + datetime.fromtimestamp(when, timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ") + ".jsonl"


def rotated(state_dir: str) -> list[str]:
    """Rotated segment names in `state_dir`, oldest first."""
    return [n for _, _, n in _rotated_sorted(state_dir)]


def _rotated_sorted(state_dir: str) -> list[tuple[str, int, str]]:
    try:
        names = os.listdir(state_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    # The state dir also holds a lock file per model (thousands with segments): only names
    # starting like a segment's go through the pattern.
    names = [n for n in names if n.startswith("events.")]
    return sorted((m.group(1), int(m.group(2) or 0), n) for n, m in ((n, _ROTATED.match(n)) for n in names) if m)


def free_rotated_name(state_dir: str, when: float) -> str:
    """A rotated name that sorts after every existing one: the UTC time `when`, or, when that is
    not later than the newest segment's (two rotations in one microsecond, or a clock stepped
    back), the newest segment's time with the next counter. Readers rely on the name order."""
    name = rotated_name(when)
    found = _rotated_sorted(state_dir)
    stamp = name[len("events."):-len(".jsonl")]
    if not found or (stamp, 0) > found[-1][:2]:
        return name
    stamp, counter, _ = found[-1]
    return f"events.{stamp}.{counter + 1}.jsonl"
