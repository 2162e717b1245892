"""summary.json: the folds of the event log (fold.Fold) cached up to a byte offset of its current
segment, one section per fold, so a reader folds only the tail and a changed fold rebuilds only
its own section. Each model's record in a section is a JSON text inside the file, decoded only
when its fold (or that model) is wanted (Section): a check needs the decision fold, not the
metrics' totals, and a check of a few segments only theirs."""
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import IO, Any

from ..base.fsutil import atomic_write
from ..core.fold import Fold
from ..core.records import Record

SUMMARY_FILE = "summary.json"
# The layout of the file; up to 4 it held one fold, under a format list of its own; up to 5 each
# section's models were JSON objects, not JSON texts.
LAYOUT = 6


@dataclass
class Cached:
    """A summary that still describes the log: where it ends, the rotated segments it covers and
    the folds whose section is still valid (a fold missing here must be rebuilt from the start)."""

    offset: int
    lines: int
    segments: list[str]
    folds: dict[str, "Section"]  # fold name -> its {model: record}, not decoded yet
    fresh: bool = field(default=False)  # no summary: the rotated segments are to be listed


def load(path: str, fh: IO[bytes] | None, st: os.stat_result | None, folds: Iterable[Fold]) -> Cached | None:
    """The summary at `path` if it covers a prefix of the open segment `fh` (stat `st`), else None:
    another file, a log shorter than its offset, or other bytes before its offset."""
    if fh is None or st is None:
        return None
    try:
        with open(path, "rb") as sfh:
            summary = json.load(sfh)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    try:
        if summary["layout"] != LAYOUT:
            return None
        where = summary["log"]
        if [where["dev"], where["inode"]] != [st.st_dev, st.st_ino] or where["offset"] > st.st_size:
            return None
        if where["offset"]:
            size = where["last_line_bytes"] + 1
            tail = os.pread(fh.fileno(), size, where["offset"] - size)
            if not tail.endswith(b"\n") or digest(tail[:-1]) != where["last_line_sha256"]:
                return None
        if not isinstance(summary["segments"], list):
            return None
        sections = summary["folds"]
        valid = {f.name: Section(f, sections[f.name]["models"]) for f in folds
                 if f.name in sections and sections[f.name]["format"] == _format(f)
                 and isinstance(sections[f.name]["models"], dict)}
        return Cached(where["offset"], where["lines"], summary["segments"], valid)
    except (KeyError, TypeError, ValueError, AttributeError, OSError):
        return None


def write(path: str, st: os.stat_result, offset: int, lines: int, last_line: bytes | None, segments: list[str],
          folds: Iterable[Fold], folded: dict[str, dict[str, Any]]) -> None:
    """Replace the summary (atomically, not durably: a cache). `folded` maps the name of each of
    `folds` to its {model: record} up to `offset`, where the line `last_line` ends. Raises OSError."""
    summary = {
        "layout": LAYOUT,
        "log": {"dev": st.st_dev, "inode": st.st_ino, "offset": offset, "lines": lines,
                "last_line_bytes": len(last_line) if last_line is not None else 0,
                "last_line_sha256": digest(last_line) if last_line is not None else None},
        "segments": segments,
        "folds": {f.name: {"format": _format(f), "models": {model: json.dumps(state, separators=(",", ":")) for
                                                            model, state in _encode_states(f, folded[f.name]).items()}}
                  for f in folds},
    }
    atomic_write(path, json.dumps(summary, separators=(",", ":")), durable=False)


class Section:
    """One fold's {model: record} as summary.json holds it, {model: JSON text}: decoded whole by
    decode(), or a few models by decode_some() (a check of 50 of 10,000 segments)."""

    def __init__(self, fold: Fold, texts: dict[str, str]) -> None:
        self.fold = fold
        self.texts = texts

    def decode(self) -> dict[str, Any]:
        """The records; ValueError (or TypeError, KeyError) for a text this release did not write."""
        whole = "{" + ",".join(f"{json.dumps(model)}:{text}" for model, text in self.texts.items()) + "}"
        return _decode_states(self.fold, json.loads(whole, object_hook=_decode))

    def decode_some(self, models: Iterable[str]) -> dict[str, Any]:
        """The records of those of `models` it holds; raises as decode()."""
        return {model: self.fold.record(**json.loads(self.texts[model], object_hook=_decode))
                for model in models if model in self.texts}


def digest(line: bytes) -> str:
    import hashlib

    return hashlib.sha256(line).hexdigest()


def _format(f: Fold) -> list[Any]:
    return [f.version, [x.name for x in fields(f.record)]]


# The folds hold only what JSON records hold, except dict keys that are not strings (a rejected
# data hash of None): such dicts, and any dict whose one key starts with "$", are written as
# tagged pairs so they come back identical; and typed records, written as the log line they are.
def _encode(value: Any) -> Any:
    if isinstance(value, Record):
        return {"$record": _encode(value.to_dict())}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not (len(value) == 1 and next(iter(value)).startswith("$")):
            return {k: _encode(v) for k, v in value.items()}
        return {"$pairs": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        tag, value = next(iter(obj.items()))
        if tag == "$pairs":
            return {k: v for k, v in value}
        if tag == "$record":
            return Record.from_dict(value)
    return obj


def _encode_states(f: Fold, states: dict[str, Any]) -> dict[str, Any]:
    names = [x.name for x in fields(f.record)]
    return {model: {n: _encode(getattr(st, n)) for n in names} for model, st in states.items()}


def _decode_states(f: Fold, models: dict[str, Any]) -> dict[str, Any]:
    return {model: f.record(**values) for model, values in models.items()}
