"""<state_dir>/quiet.json: for each entry with segment_by, what the last check that evaluated all
of its segments found when every one of them was settled (nothing due, nothing recorded, no
clock-bound trigger): the outcome of each segment, the counts `status` shows, and what that
evaluation depended on. While none of it changed, a `check` or `status` answers the entry from
here instead of observing ten thousand segments (observe.quiet). A cache: losing it, or failing
to write it, costs one full evaluation; it is written atomically but without fsync."""
import json
import os
from dataclasses import dataclass
from typing import Any

from ..base.fsutil import atomic_write, best_effort, read_json

QUIET_FILE = "quiet.json"
LAYOUT = 3


@dataclass
class QuietMark:
    """One entry, as its last full evaluation left it.

    key: digest of the config file, this release and the fingerprints of the entry's data, eval
    and drift sets; rest: the same without the data set (what a partial answer needs: see
    observe.quiet); log: (device, inode, size) of events.jsonl before that evaluation read it;
    models: the model_dir's mtime_ns after it; until: the clock time before which no segment's
    age can make it due. Per segment, in order: its key, its data hash (None: no rows), when its
    live model was trained (None: none), its rows, when its age clock started (the metrics'
    RetrainctlModelTooOld: its training or a later rejection on the same data; None: no model)
    and its index into kinds, the distinct outcomes
    [action, note, result, held, [[trigger, description], ...], paused, failing, has a version,
    no data]."""

    key: str
    rest: str
    log: tuple[int, int, int]
    models: int
    until: float
    segments: list[str]
    hashes: list[str | None]
    trained: list[float | None]
    rows: list[int | None]
    clocks: list[float | None]
    kind_of: list[int]
    kinds: list[list[Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "rest": self.rest, "log": list(self.log), "models": self.models,
                "until": self.until, "segments": self.segments, "hashes": self.hashes, "trained": self.trained,
                "rows": self.rows, "clocks": self.clocks, "kind_of": self.kind_of, "kinds": self.kinds}

    @classmethod
    def from_dict(cls, data: Any) -> "QuietMark | None":
        """The mark, or None for anything this release did not write."""
        try:
            log = tuple(int(x) for x in data["log"])
            mark = cls(key=str(data["key"]), rest=str(data["rest"]), log=(log[0], log[1], log[2]),
                       models=int(data["models"]), until=float(data["until"]), segments=list(data["segments"]),
                       hashes=list(data["hashes"]), trained=list(data["trained"]), rows=list(data["rows"]),
                       clocks=list(data["clocks"]), kind_of=list(data["kind_of"]),
                       kinds=list(data["kinds"]))
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        n = len(mark.segments)
        if len(log) != 3 or not len(mark.hashes) == len(mark.trained) == len(mark.rows) == len(mark.clocks) == len(
                mark.kind_of) == n:
            return None
        return mark


class QuietMarks:
    """quiet.json: {entry: QuietMark}."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, QUIET_FILE)
        self._marks: dict[str, QuietMark] | None = None
        self.dirty = False

    @property
    def marks(self) -> dict[str, QuietMark]:
        if self._marks is None:
            data = read_json(self.path, default={})
            found: dict[str, QuietMark] = {}
            if isinstance(data, dict) and data.get("layout") == LAYOUT and isinstance(data.get("entries"), dict):
                for entry, raw in data["entries"].items():
                    mark = QuietMark.from_dict(raw)
                    if mark is not None:
                        found[entry] = mark
            self._marks = found
        return self._marks

    def get(self, entry: str) -> QuietMark | None:
        return self.marks.get(entry)

    def put(self, entry: str, mark: QuietMark | None) -> None:
        """Remember `mark` for `entry` (None forgets it)."""
        if mark is None:
            if self.marks.pop(entry, None) is not None:
                self.dirty = True
            return
        self.marks[entry] = mark
        self.dirty = True

    def save(self) -> None:
        """Best effort: a state dir this user cannot write (a dry run, `status` as another user),
        or a full disk, only means a full evaluation next time."""
        if self.dirty and os.access(os.path.dirname(self.path), os.W_OK):
            with best_effort(self.path):
                body = {"layout": LAYOUT, "entries": {e: m.to_dict() for e, m in self.marks.items()}}
                atomic_write(self.path, json.dumps(body, separators=(",", ":")), durable=False)
        self.dirty = False
