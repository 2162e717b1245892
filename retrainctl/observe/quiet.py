"""Quiet entries: an entry with segment_by whose segments were all settled when a check last
evaluated every one of them (core.decide.settled_until), and about which nothing has changed
since: the config file and this release, the fingerprints of its data, eval and drift sets, the
state log (no record of it or its segments since), the model store's top folder, and the clock
(before any segment's age trigger). Its outcomes and `status` counts are then the remembered ones
(state.quiet): a no-op check of ten thousand segments reads one file instead of observing each.

What it does not notice: a hand edit inside one model's folder (a `current` link moved by hand,
a version deleted); a check that evaluates the entry for another reason, `status NAME` and
`status --json` see it. Anything retrainctl itself changes comes with a record."""
import hashlib
from collections import Counter
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..base.errors import DataError
from ..base.version import __version__
from ..config.records import Config, ModelConfig
from ..core import decide
from ..core.decide import Decision, Observation, Reason
from ..core.fold import ModelState
from ..core.outcomes import EntryCounts, Outcome, status_counts
from ..core.records import Action, Held, TriggerType
from ..core.segment_names import SEPARATOR, entry_of
from ..data import datasets
from ..data.fingerprint import FingerprintCache
from ..data.segment_index import SegmentData
from ..state.log import StateLog
from ..state.quiet import QuietMark, QuietMarks
from .status import SegmentCount


class Quiet:
    """The quiet entries of one command (standing(), partial, split()), and the marks its
    evaluation leaves (note(), spoil(), finish())."""

    def __init__(self, config: Config, log: StateLog, fingerprints: FingerprintCache,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.log = log
        self.fingerprints = fingerprints
        self.clock = clock
        self.marks = QuietMarks(config.state_dir)
        self.partial: dict[str, QuietMark] = {}  # entry -> its mark, where only its data set changed
        self._keys: dict[str, tuple[str, str] | None] = {}  # entry -> (key, rest)
        self._position: tuple[int, int, int] | None = None
        self._seen: dict[str, _Seen] = {}
        self._kept: dict[str, list[int]] = {}  # partial entry -> the indexes of the mark's segments it kept

    # --- reading: which entries are quiet now ----------------------------------------------

    def standing(self, entries: Iterable[ModelConfig]) -> dict[str, QuietMark]:
        """{entry: its mark} for those of `entries` (with segment_by) that are quiet now; those
        whose only change is their data set go to `partial`. Also takes the log's position and
        each entry's key for the marks this command may leave, so call it before the log is
        folded and any data observed."""
        entries = [e for e in entries if e.segment_by]
        self._position = self.log.position()
        keys = {e.name: self.key(e) for e in entries}
        marks = self.marks.marks
        now = self.clock()
        candidates = []
        for e in entries:
            mark, key = marks.get(e.name), keys[e.name]
            if mark is not None and key is not None and now < mark.until and mark.rest == key[1]:
                candidates.append((e, mark, key))
        if not candidates:
            return {}
        try:
            models = os.stat(self.config.model_dir).st_mtime_ns
        except OSError:
            return {}
        tails: dict[tuple[int, int, int], tuple[set[str], tuple[int, int, int]] | None] = {}
        found = {}
        for entry, mark, key in candidates:
            if mark.models != models:
                continue
            if mark.log not in tails:
                tails[mark.log] = self.log.names_since(mark.log)
            since = tails[mark.log]
            if since is None:
                continue
            names, end = since
            if any(entry_of(n) == entry.name for n in names):  # a record of it or of one of its segments
                continue
            if end != mark.log:  # nothing of it since: the next check need not read those records again
                mark.log = end
                self.marks.dirty = True
            if mark.key == key[0]:
                found[entry.name] = mark
            else:
                self.partial[entry.name] = mark
        return found

    def key(self, entry: ModelConfig) -> tuple[str, str] | None:
        """(key, rest): what the entry's last evaluation depended on besides the log, the store and
        the clock: the config file, this release and the fingerprints of its data, eval and drift
        sets (from the stat cache while their files are unchanged); rest leaves out the data set.
        None when a set cannot be read."""
        if entry.name in self._keys:
            return self._keys[entry.name]
        found: tuple[str, str] | None = None
        if self.config.file_digest is not None:
            parts = [self.config.file_digest, __version__, entry.name]
            try:
                for path in (entry.eval_path, entry.drift_path, entry.data_path):
                    parts.append(datasets.fingerprint(self.fingerprints, path, entry.csv.quotechar).hash
                                 if path else "-")
            except (DataError, OSError):
                pass
            else:
                found = (_digest(parts), _digest(parts[:-1]))
        self._keys[entry.name] = found
        return found

    def split(self, entry: ModelConfig, segments: dict[str, SegmentData]) -> tuple[list[str], list[Outcome]]:
        """For an entry of `partial` whose segments are now `segments`: (the keys of those to
        evaluate: new, or whose rows changed or are gone; the remembered outcomes of the others)."""
        mark = self.partial[entry.name]
        evaluate: list[int] = []
        kept: list[int] = []
        for i, (key, digest) in enumerate(zip(mark.segments, mark.hashes)):
            seg = segments.get(key)
            (kept if (seg.hash if seg is not None else None) == digest else evaluate).append(i)
        known = set(mark.segments)
        self._kept[entry.name] = kept
        return (sorted([mark.segments[i] for i in evaluate] + [key for key in segments if key not in known]),
                self.outcomes(entry.name, mark, kept))

    def outcomes(self, entry: str, mark: QuietMark, indexes: Iterable[int] | None = None) -> list[Outcome]:
        """The remembered outcome of each of the entry's segments (of those at `indexes`)."""
        kinds = [_outcome_of(kind) for kind in mark.kinds]
        prefix = entry + SEPARATOR
        return [Outcome(prefix + mark.segments[i], *kinds[mark.kind_of[i]])
                for i in (range(len(mark.segments)) if indexes is None else indexes)]

    def counts(self, entry: str, mark: QuietMark, now: float) -> EntryCounts:
        """The entry's `status` counts, its oldest model's age as of `now`."""
        per_kind = Counter(mark.kind_of)
        counted = []
        for k in per_kind:
            action, _, _, held, _, paused, failing, versioned, no_data = mark.kinds[k]
            counted.append(SegmentCount(
                entry=entry, due=action == Action.TRAIN, held=Held(held) if held else None, action=Action(action),
                paused=paused, no_data=no_data, failures_in_row=int(failing), model_version=1 if versioned else None,
                model_age_seconds=None))
        found = status_counts(counted, list(per_kind.values()))
        counts = found[0] if found else EntryCounts(entry)
        trained = [t for t in mark.trained if t]
        counts.oldest_model_age_seconds = round(now - min(trained), 1) if trained else None
        return counts

    def summary(self, entry: str, mark: QuietMark, now: float) -> "QuietSummary":
        """What the metrics say of the entry as a whole (publish.metrics._entry_view)."""
        paused = [bool(mark.kinds[k][5]) for k in mark.kind_of]
        no_data = [bool(mark.kinds[k][8]) for k in mark.kind_of]
        kept = [c for c, p, n in zip(mark.clocks, paused, no_data) if c is not None and not p and not n]
        return QuietSummary(self.counts(entry, mark, now), sum(r or 0 for r in mark.rows), all(paused),
                            min(kept, default=None))

    # --- writing: the marks an evaluation leaves -------------------------------------------

    def note(self, model: ModelConfig, obs: Observation, decision: Decision, state: ModelState,
             outcome: Outcome) -> None:
        """A segment evaluated in full, as it was decided and settled (or not). An entry observed
        as itself (its segments could not be listed) leaves no mark."""
        if model.entry is None:
            if model.segment_by:
                self.spoil(model)
            return
        seen = self._seen.setdefault(model.entry, _Seen())
        if seen.spoiled:
            return
        until = decide.settled_until(model.policy, obs, decision)
        if until is None or state.open_attempts or outcome.event is not None or outcome.failed or outcome.alert:
            seen.spoiled = True
            return
        seen.until = min(seen.until, until)
        kind = (*_kind_of(outcome), state.paused, obs.failures_on_data > 0, obs.model_version is not None,
                obs.no_data)
        clock = None if obs.model_trained_at is None else max(obs.model_trained_at, obs.rejected_at or 0.0)
        seen.rows.append((model.name[len(model.entry) + len(SEPARATOR):], obs.data_hash, obs.model_trained_at, kind,
                          obs.data_rows, clock))

    def spoil(self, model: ModelConfig) -> None:
        """A model that was not evaluated in full, or will train: its entry leaves no new mark."""
        name = model.entry or model.name
        self._seen.setdefault(name, _Seen()).spoiled = True

    def finish(self, evaluated: Iterable[ModelConfig]) -> None:
        """Leave a mark for each of the `evaluated` entries (every segment of which, or of the
        `partial` ones every segment split() did not keep, went through note() or spoil() in this
        command) that is quiet now. The mark of an entry that is not stays: it answers only while
        nothing it depends on changed, so it may serve again (the data set changing back)."""
        if self._position is None:
            return
        try:
            models = os.stat(self.config.model_dir).st_mtime_ns
        except OSError:
            return
        for name in [n for n in self.marks.marks if not getattr(self.config.models.get(n), "segment_by", None)]:
            self.marks.put(name, None)  # an entry no longer in the config (or no longer split)
        for entry in evaluated:
            seen = self._seen.get(entry.name, _Seen())
            key = self._keys.get(entry.name)
            if seen.spoiled or key is None:
                continue
            rows, until = seen.rows, seen.until
            old = self.partial.get(entry.name)
            if old is not None:
                until = min(until, old.until)
                rows = sorted(rows + [(old.segments[i], old.hashes[i], old.trained[i], _tupled(old.kinds[old.kind_of[i]]),
                                       old.rows[i], old.clocks[i]) for i in self._kept.get(entry.name, ())],
                              key=lambda r: r[0])
            kinds: dict[tuple[Any, ...], int] = {}
            kind_of = [kinds.setdefault(r[3], len(kinds)) for r in rows]
            self.marks.put(entry.name, QuietMark(
                key=key[0], rest=key[1], log=self._position, models=models, until=until,
                segments=[r[0] for r in rows], hashes=[r[1] for r in rows], trained=[r[2] for r in rows],
                rows=[r[4] for r in rows], clocks=[r[5] for r in rows], kind_of=kind_of,
                kinds=[_listed(k) for k in kinds]))
        self.marks.save()


@dataclass(frozen=True)
class QuietSummary:
    """An entry's segments summed up (from its quiet mark, or as the metrics observe them): its
    status counts, its rows, whether every segment is paused, and the oldest age clock among the
    segments meant to be kept fresh (not paused, rows still there)."""

    counts: EntryCounts
    data_rows: int
    paused: bool
    age_clock_start: float | None


@dataclass
class _Seen:
    """One entry's segments as a command evaluated them, while they are all settled: (key, data
    hash, when its live model was trained, its kind, its rows, its age clock's start) each."""

    spoiled: bool = False
    until: float = float("inf")
    rows: list[tuple[str, str | None, float | None, tuple[Any, ...], int | None, float | None]] = field(
        default_factory=list)


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _kind_of(out: Outcome) -> tuple[Any, ...]:
    return (str(out.action), out.note, out.result, str(out.held) if out.held else None,
            tuple((str(r.trigger_type), r.description) for r in out.reasons))


def _tupled(kind: list[Any]) -> tuple[Any, ...]:
    """A remembered kind as _kind_of (plus the status fields) makes it."""
    return (*kind[:4], tuple((t, d) for t, d in kind[4]), *kind[5:])


def _listed(kind: tuple[Any, ...]) -> list[Any]:
    return [*kind[:4], [list(r) for r in kind[4]], *kind[5:]]


def _outcome_of(kind: list[Any]) -> tuple[Any, ...]:
    """Outcome's fields after model_name, from a remembered kind."""
    action, note, result, held, reasons = kind[:5]
    return (Action(action), tuple(Reason(TriggerType(t), d) for t, d in reasons), note, result, None, False,
            Held(held) if held else None, "")
