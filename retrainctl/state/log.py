"""events.jsonl, the state log: records appended whole under its lock (or not at all), read
forward, backward or folded, rotated by renaming whole segments. The folds are cached in
summary.json (summary.py), so a reader folds only the tail."""
import copy
import errno
import json
import logging
import os
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from ..base import faults
from ..base.errors import LockBusy, RetrainctlError
from ..base.fsutil import fsync_dir
from ..base.locks import LOCK_TIMEOUT, LockTimeout, file_lock
from ..core.fold import DECISION, Fold, ModelState
from ..core.records import HISTORY_STATUSES, Record, Status
from ..core.totals import ENTRY_TOTALS, TOTALS, ModelTotals
from . import segments, summary

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
# What summary.json caches, each fold in its own section.
FOLDS = (DECISION, TOTALS, ENTRY_TOTALS)
# The summary is rewritten once the tail a reader had to fold exceeds this many bytes.
SUMMARY_REFRESH = 64 << 10


class StateLog:
    """events.jsonl: appended under `events.lock` with flush + fsync; read without the lock
    (a reader sees whole lines plus, at worst, a torn last line, which it skips).

    The log is never rewritten: a torn last line (or a record the disk had no room for) is the
    only thing ever cut, and old segments are rotated by renaming the whole file to
    events.<UTC time>.jsonl. Beside it, summary.json caches the folds up to a byte offset, so a
    reader folds only the tail (see folds())."""

    def __init__(self, state_dir: str, lock_timeout: float = LOCK_TIMEOUT, rotate_bytes: int | None = None) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, EVENTS_FILE)
        self.summary_path = os.path.join(state_dir, summary.SUMMARY_FILE)
        self.lock_timeout = lock_timeout
        self.rotate_bytes = rotate_bytes
        self._lock: Any = None
        self._summary_held = False

    @property
    def lock(self) -> Any:
        if self._lock is None:
            self._lock = file_lock(os.path.join(self.state_dir, "events.lock"), self.lock_timeout)
        return self._lock

    @contextmanager
    def summary_held(self) -> Iterator[None]:
        """While a batch of models records its attempts: the summary is not rewritten as the tail
        grows (each rewrite encodes every model's records, so a round of thousands of segments
        would rewrite it dozens of times), but once at the end. A process that dies meanwhile
        leaves a longer tail, which the next reader folds and summarizes."""
        held, self._summary_held = self._summary_held, True
        try:
            yield
        finally:
            self._summary_held = held
        if not held:
            try:
                self._read(lambda folded: {})
            except (OSError, RetrainctlError) as exc:  # the next reader summarizes it
                log.debug("%s: summary not refreshed: %s", self.summary_path, exc)

    def ensure_dir(self) -> None:
        try:
            os.makedirs(self.state_dir, exist_ok=True)
        except OSError as exc:
            raise RetrainctlError(f"{self.state_dir}: cannot create the state directory: {exc.strerror}") from None
        if not os.access(self.state_dir, os.W_OK | os.X_OK):
            raise RetrainctlError(f"{self.state_dir}: state directory is not writable")

    def _open(self) -> tuple[IO[bytes], os.stat_result] | tuple[None, None]:
        """The current segment, open, and its stat; (None, None) when there is none yet."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return None, None
        except PermissionError:
            raise RetrainctlError(f"{self.path}: permission denied reading the state log") from None
        return fh, os.fstat(fh.fileno())

    def _rotated(self, current: os.stat_result | None) -> list[str]:
        """Rotated segment paths, oldest first, minus the one we hold open as current (it may
        have been rotated after we opened it)."""
        paths = [os.path.join(self.state_dir, n) for n in segments.rotated(self.state_dir)]
        if current is None:
            return paths
        return [p for p in paths if not _same_file(p, current)]

    # --- reading ------------------------------------------------------------------------------

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """Every complete line of every segment as it was written (a JSON object), oldest first,
        streamed. A torn or garbled line is skipped with a warning."""
        fh, st = self._open()
        try:
            for path in self._rotated(st):
                yield from self._records(path)
            if fh is not None:
                for ev, *_ in segments.scan(fh, self.path):
                    if ev is not None:
                        yield ev
        finally:
            if fh is not None:
                fh.close()

    def _records(self, path: str) -> Iterator[dict[str, Any]]:
        try:
            with open(path, "rb") as fh:
                for ev, *_ in segments.scan(fh, path):
                    if ev is not None:
                        yield ev
        except FileNotFoundError:
            return

    def records(self) -> Iterator[Record]:
        """Every record of ours, oldest first, read by the one tolerant reader (Record.from_dict)."""
        return _typed(self.iter_events())

    def newest_first(self, needle: bytes | None = None) -> Iterator[dict[str, Any]]:
        """Records newest first, read backwards in blocks from the end of the current segment
        and on into rotated segments only as far as the caller iterates. With `needle` (bytes),
        only lines containing it are parsed."""
        fh, st = self._open()
        try:
            if fh is not None:
                yield from segments.backward(fh, self.path, needle)
        finally:
            if fh is not None:
                fh.close()
        for path in reversed(self._rotated(st)):
            try:
                with open(path, "rb") as seg:
                    yield from segments.backward(seg, path, needle)
            except FileNotFoundError:
                continue

    def events(self, model: str | None = None, statuses: Collection[Status] = HISTORY_STATUSES,
               segments: bool = False) -> Iterator[Record]:
        """Records with one of `statuses` (optionally one model's, with `segments` its segments'
        too), newest first, read backwards only as far as the caller iterates."""
        # Model names are plain tokens, so a record of `model` always contains its JSON string
        # (a segment's, that string without its closing quote): lines without it are not even
        # parsed. (Only an optimisation: matches are checked.)
        needle = json.dumps(model).encode() if model is not None else None
        if needle is not None and segments:
            needle = needle[:-1]
        prefix = f"{model}:"
        for rec in _typed(self.newest_first(needle)):
            if rec.status in statuses and (model is None or rec.model_name == model
                                           or segments and rec.model_name.startswith(prefix)):
                yield rec

    def history(self, model: str | None = None, limit: int | None = 20,
                statuses: Collection[Status] = HISTORY_STATUSES, segments: bool = False) -> list[Record]:
        """History records (optionally one model's, or an entry's and its segments'), newest first;
        `limit` 0 or None means all."""
        import itertools

        return list(itertools.islice(self.events(model, statuses, segments), limit or None))

    # --- what changed since a point of the log (state.quiet) ---------------------------------

    def position(self) -> tuple[int, int, int]:
        """(device, inode, size) of the current segment now; zeros when there is none yet."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_dev, st.st_ino, st.st_size)

    def names_since(self, position: Collection[int]) -> tuple[set[str], tuple[int, int, int]] | None:
        """The model names of the records appended since `position` (see position()), and the
        position now; None when the log is no longer the segment it was then (rotated, replaced
        or cut) or a line since then cannot be read: the caller must not assume anything."""
        before = tuple(position)
        fh, st = self._open()
        if fh is None or st is None:
            return (set(), (0, 0, 0)) if before == (0, 0, 0) else None
        try:
            if before == (0, 0, 0):
                start = 0
            elif len(before) != 3 or before[:2] != (st.st_dev, st.st_ino) or before[2] > st.st_size:
                return None
            else:
                start = before[2]
            names: set[str] = set()
            end = start
            for ev, _, pos, _, terminated in segments.scan(fh, self.path, start):
                if ev is None or not terminated or not isinstance(ev.get("model_name"), str):
                    return None
                names.add(ev["model_name"])
                end = pos
            return names, (st.st_dev, st.st_ino, end)
        finally:
            fh.close()

    # --- the folds, from summary.json plus the tail after the offset it covers -----------------

    def states(self) -> dict[str, ModelState]:
        """{model: fold.ModelState}: what the decisions need."""
        return self.folds((DECISION,))[DECISION.name]

    def totals(self) -> dict[str, ModelTotals]:
        """{model: metrics_totals.ModelTotals}: what the metrics' counters and histograms need."""
        return self.folds((TOTALS,))[TOTALS.name]

    def folds(self, wanted: Iterable[Fold] = FOLDS) -> dict[str, dict[str, Any]]:
        """{fold name: {model: record}} for every fold of FOLDS over every record of every segment:
        each read from its section of summary.json plus the tail after the offset the summary
        covers. A fold whose section is missing or of another format is rebuilt from the start
        (the others carry on from the offset); the whole summary is rebuilt when it is missing or
        stale (another log file, log shorter than its offset, or the bytes before its offset
        differ). It is rewritten when rebuilt or when the tail has grown past SUMMARY_REFRESH bytes.

        Within one process the folds are kept in memory (per log path, for every StateLog of it)
        and only the records appended since the last call, by this process or another, are read
        and folded: a check that records ten thousand segments does not read the summary ten
        thousand times. Whether the file is still the one folded is checked each time (the same
        file, not shorter, the same bytes before the folded end). The records a caller got are
        never changed afterwards (a model's record is copied before a newer line is folded in).
        Only the `wanted` folds are returned, and only theirs decoded from the summary."""
        names = [f.name for f in wanted]
        return self._read(lambda folded: {name: dict(folded.get(name)) for name in names})

    def states_of(self, models: Collection[str]) -> dict[str, ModelState]:
        """{model: fold.ModelState} for those of `models` the log names, as states() has them,
        decoding only theirs from the summary when they are few of many."""
        return self.fold_of(DECISION, models)

    def fold_of(self, fold: Fold, keys: Collection[str]) -> dict[str, Any]:
        """{key: record} of `fold` for those of `keys` it holds (see states_of)."""
        wanted = set(keys)
        return self._read(lambda folded: {fold.name: folded.get_some(fold.name, wanted)})[fold.name]

    def _read(self, take: Callable[["_Folds"], dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        """What `take` takes of the folds brought up to the end of the log (see folds())."""
        fh, st = self._open()
        try:
            if fh is None or st is None:
                return take(self._load(None, None).folded)
            memo = _MEMOS.get(self.path)
            if memo is None or not memo.describes(fh, st):
                memo = self._load(fh, st)
                _MEMOS.pop(self.path, None)
                while len(_MEMOS) >= KEEP_MEMOS:  # the logs read longest ago go first
                    del _MEMOS[next(iter(_MEMOS))]
                _MEMOS[self.path] = memo
            torn = None
            for ev, n, pos, line, terminated in segments.scan(fh, self.path, memo.end, memo.lines):
                if not terminated:
                    torn = ev
                    break
                if ev is not None:
                    memo.folded.fold(ev)
                memo.end, memo.lines, memo.last = pos, n, line
            memo.seal(fh)
            if memo.end - memo.summarized >= SUMMARY_REFRESH and not self._summary_held:
                self._write_summary(st, memo.end, memo.lines, memo.last, memo.segment_names, memo.folded.all())
                memo.summarized = memo.end
            out = take(memo.folded)
            if torn is not None:  # seen, like any complete record, but never kept: it may be cut
                _fold((torn,), [f for f in FOLDS if f.name in out], out, copy_first=True)
            return out
        finally:
            if fh is not None:
                fh.close()

    def _load(self, fh: IO[bytes] | None, st: os.stat_result | None) -> "_Memo":
        """The folds up to the last whole line of the open segment `fh` (stat `st`), from
        summary.json and the rotated segments where needed, as described in folds()."""
        cached = summary.load(self.summary_path, fh, st, FOLDS)
        if cached is None:
            cached = summary.Cached(0, 0, [], {}, fresh=True)
        stale = [f for f in FOLDS if f.name not in cached.folds]
        folded: dict[str, dict[str, Any]] = {f.name: {} for f in stale}
        segment_names = cached.segments
        if stale:
            paths = self._rotated(st)
            for path in paths:
                _fold(self._records(path), stale, folded)
            if cached.fresh:
                segment_names = [os.path.basename(p) for p in paths]
        start = cached.offset
        end, lineno, last = start, cached.lines, None
        if fh is not None and stale:  # a stale fold reads the current segment from its start, the others its tail
            for ev, n, pos, line, terminated in segments.scan(fh, self.path, 0, 0):
                if pos > start or not terminated:
                    break
                if ev is not None:
                    _fold((ev,), stale, folded)
                end, lineno, last = pos, n, line
        memo = _Memo(st.st_dev if st else 0, st.st_ino if st else 0, end, lineno, last, segment_names,
                     _Folds(folded, cached.folds, lambda f: self._refold(f, memo.end)), summarized=start)
        if fh is not None:
            memo.seal(fh)
        if st is not None and stale:
            self._write_summary(st, end, lineno, last, segment_names, memo.folded.all())
            memo.summarized = end
        return memo

    def _refold(self, f: Fold, end: int) -> dict[str, Any]:
        """Fold `f` over every record of the rotated segments and the current one up to byte `end`,
        for a summary section that does not decode."""
        folded: dict[str, dict[str, Any]] = {f.name: {}}
        fh, st = self._open()
        try:
            for path in self._rotated(st):
                _fold(self._records(path), (f,), folded)
            if fh is not None:
                for ev, _, pos, _, terminated in segments.scan(fh, self.path, 0, 0):
                    if pos > end or not terminated:
                        break
                    if ev is not None:
                        _fold((ev,), (f,), folded)
        finally:
            if fh is not None:
                fh.close()
        return folded[f.name]

    def _write_summary(self, st: os.stat_result, offset: int, lines: int, last_line: bytes | None,
                       segment_names: list[str], folded: dict[str, dict[str, Any]]) -> None:
        """Best effort: a reader without write access, or a full disk, just folds more next time.
        Not written when the file we read is no longer the current segment (rotated meanwhile)."""
        try:
            if _same_file(self.path, st):
                summary.write(self.summary_path, st, offset, lines, last_line, segment_names, FOLDS, folded)
        except OSError as exc:
            log.debug("%s: not updated: %s", self.summary_path, exc)

    # --- rotation -----------------------------------------------------------------------------

    def rotate(self) -> str | None:
        """Rename the current segment to events.<UTC time>.jsonl and start an empty one, under the
        lock; the summary carries the folds over. Returns the rotated file's name, or None."""
        self.ensure_dir()
        with self.lock:
            return self._rotate_locked()

    def _rotate_locked(self) -> str | None:
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
        folded = self.folds()
        names = [os.path.basename(p) for p in self._rotated(None)]
        name = segments.free_rotated_name(self.state_dir, time.time())
        os.rename(self.path, os.path.join(self.state_dir, name))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        fsync_dir(self.state_dir)
        self._write_summary(st, 0, 0, None, names + [name], folded)
        log.info("%s: rotated to %s", self.path, name)
        return name

    # --- appending ----------------------------------------------------------------------------

    def append(self, *records: Record, unless: Callable[[dict[str, ModelState]], bool] | None = None) -> bool:
        """Append records as whole lines, durably, or raise RetrainctlError naming the file and the
        cause (a full disk, a quota, an I/O error), with nothing of them left in the log. A torn
        last line left by a crash is cut off first (under the lock), so the new records start on
        a fresh line and every line of the log parses. `unless(states)`, when given, is asked
        under the lock with the decision fold as it is then: if it is true nothing is appended
        (a record that must be written once, whatever other processes do at the same time).
        Returns whether the records were written."""
        if not records:
            return False
        self.ensure_dir()
        payload = b"".join(json.dumps(r.to_dict(), sort_keys=True, default=str).encode() + b"\n" for r in records)
        try:
            with self.lock:
                if unless is not None and unless(self.states()):
                    return False
                if self._append_locked(payload, records[0].status != Status.STARTED):
                    self._rotate_when_full()
            return True
        except LockTimeout:
            raise LockBusy(f"{self.lock.lock_file}: state lock still held after {self.lock.timeout:.0f}s") from None
        except PermissionError:
            raise RetrainctlError(f"{self.path}: permission denied writing the state log") from None
        except OSError as exc:
            raise RetrainctlError(f"{exc.filename or self.path}: cannot append to the state log: "
                                  f"{exc.strerror or exc}") from None

    def _append_locked(self, payload: bytes, may_fault: bool) -> bool:
        """Write `payload` at the end of the log, whole, and fsync it; on any error cut the log
        back to where it ended, so no part of it is ever read. Returns whether the segment is full."""
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            self._cut_torn_tail(fd)
            size = os.fstat(fd).st_size
            try:
                if may_fault and os.environ.get(faults.ENV) == "mid_append":
                    os.write(fd, payload[: len(payload) // 2])
                    faults.point("mid_append")
                _write_whole(fd, payload)
                os.fsync(fd)
            except BaseException:
                self._cut_back(fd, size)
                raise
            return self.rotate_bytes is not None and self.rotate_bytes > 0 and os.fstat(fd).st_size >= self.rotate_bytes
        finally:
            os.close(fd)

    def _cut_back(self, fd: int, size: int) -> None:
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:  # the next append cuts the torn line; the caller reports the cause
            log.warning("%s: could not cut a partly written record back: %s", self.path, exc.strerror or exc)

    def _rotate_when_full(self) -> None:
        """The records are written: a rotation that fails now (a full disk) is retried by the
        next append, it does not make this one fail."""
        try:
            self._rotate_locked()
        except OSError as exc:
            log.warning("%s: not rotated: %s", self.path, exc.strerror or exc)

    def _cut_torn_tail(self, fd: int) -> None:
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


def _typed(lines: Iterable[dict[str, Any]]) -> Iterator[Record]:
    for line in lines:
        rec = Record.from_dict(line)
        if rec is not None:
            yield rec


# The folds of the logs this process read last, by path (StateLog.folds).
_MEMOS: dict[str, "_Memo"] = {}
KEEP_MEMOS = 4


def _fold(lines: Iterable[dict[str, Any]], folds: Iterable[Fold], folded: dict[str, dict[str, Any]],
          copy_first: bool = False) -> None:
    """Fold `lines` into `folded`; `copy_first`: replace a model's record by a copy before
    changing it, as a caller may hold the record (StateLog.folds)."""
    folds = tuple(folds)
    for rec in _typed(lines):
        for f in folds:
            models = folded[f.name]
            key = f.key_of(rec.model_name)
            if copy_first and key in models:
                models[key] = (f.copy or copy.deepcopy)(models[key])
            f.fold((rec,), models)


class _Folds:
    """The folds of a _Memo: each a {model: record} dict, or its summary.json section not decoded
    yet plus the records read after it (decoded on first use: a check wants only the decision
    fold). A section that does not decode is folded again from the log (`refold`)."""

    def __init__(self, decoded: dict[str, dict[str, Any]], sections: dict[str, summary.Section],
                 refold: Callable[[Fold], dict[str, Any]]) -> None:
        self.decoded = decoded
        self.sections = dict(sections)
        self.pending: dict[str, list[dict[str, Any]]] = {name: [] for name in self.sections}
        self.refold = refold

    def fold(self, ev: dict[str, Any]) -> None:
        """Fold one record read after the summary's offset (a record a caller holds is copied first)."""
        _fold((ev,), [f for f in FOLDS if f.name in self.decoded], self.decoded, copy_first=True)
        for events in self.pending.values():
            events.append(ev)

    def get(self, name: str) -> dict[str, Any]:
        if name not in self.decoded:
            section = self.sections.pop(name)
            events = self.pending.pop(name)
            try:
                models = section.decode()
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
                log.warning("summary.json: the %s fold does not decode; folding the log again", name)
                models, events = self.refold(section.fold), []
            self.decoded[name] = models
            _fold(events, (section.fold,), self.decoded)
        return self.decoded[name]

    def get_some(self, name: str, models: Collection[str]) -> dict[str, Any]:
        """{model: record} of fold `name` for those of `models` it holds: decoded alone from the
        summary's section when they are under a tenth of it (not kept: a later get() decodes the
        whole fold), else from the whole fold."""
        section = self.sections.get(name)
        if section is None or len(models) * 10 >= len(section.texts):
            models_ = self.get(name)
            return {m: models_[m] for m in models if m in models_}
        try:
            found = section.decode_some(models)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            models_ = self.get(name)  # folds it again, with the warning
            return {m: models_[m] for m in models if m in models_}
        _fold([ev for ev in self.pending[name] if isinstance(ev.get("model_name"), str)
               and section.fold.key_of(ev["model_name"]) in models], (section.fold,), {name: found})
        return found

    def all(self) -> dict[str, dict[str, Any]]:
        return {f.name: self.get(f.name) for f in FOLDS}


@dataclass
class _Memo:
    """The folds of one StateLog up to byte `end` of the current segment (dev, ino), where the line
    `last` ends (None: not read by this process); `summarized`: the offset summary.json covers;
    `before_end`: the bytes just before `end`, to see that the folded part is still there."""

    dev: int
    ino: int
    end: int
    lines: int
    last: bytes | None
    segment_names: list[str]
    folded: "_Folds"
    summarized: int = 0
    before_end: bytes = b""

    def seal(self, fh: IO[bytes]) -> None:
        self.before_end = self._before_end(fh)

    def _before_end(self, fh: IO[bytes]) -> bytes:
        size = min(self.end, 256)
        return os.pread(fh.fileno(), size, self.end - size) if size else b""

    def describes(self, fh: IO[bytes], st: os.stat_result) -> bool:
        """Whether the open segment is still the one folded, grown or not, ending the same way."""
        if (st.st_dev, st.st_ino) != (self.dev, self.ino) or st.st_size < self.end:
            return False
        return self._before_end(fh) == self.before_end


def _write_whole(fd: int, data: bytes) -> None:
    """os.write until all of `data` is in: on a nearly full disk a write is short, and the next
    one raises the cause (ENOSPC, EDQUOT)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n == 0:  # never for a regular file, but a loop holding the lock must end
            raise OSError(errno.EIO, "the file system accepted no bytes")
        view = view[n:]


def _same_file(path: str, st: os.stat_result) -> bool:
    try:
        other = os.stat(path)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)
