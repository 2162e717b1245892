"""Idle fit processes kept between two calls of a long-lived caller (a service or notebook that
calls the Python API's `check` or `train` again, the test suite's in-process commands). Each has
imported pandas and scikit-learn already (2-3 s of CPU), so the next call made within
KEEP_SECONDS fits in it instead of starting a new one. A CLI command exits at its end, and its
fit processes with it: nothing changes there.

A process is kept only where reusing it cannot change what a fit sees or does:
- it is taken again only by the thread that started it, which is alive while it asks (a fit
  process dies with the thread that started it, PR_SET_PDEATHSIG), with the interpreter,
  `sys.path`, working folder and environment variables it was started with;
- it owes no answer (a request whose answer nobody took, e.g. a validation the command did
  not wait for, would be read as the next call's answer);
- it ran only scikit-learn's own estimators: a `trainer`, or another package's estimator, is
  code the caller may have edited since;
- it holds at most KEEP_MAX_RSS_MB (a big fit's memory is not held for the next call);
- at most KEEP_MAX are kept, and a thread's processes go when its context changes.
A timer closes what was not taken again within KEEP_SECONDS; the caller's exit closes the rest."""
import atexit
import os
import threading
import time
from typing import Any

from .child import Child, spawn_context

KEEP_SECONDS = 60.0
KEEP_MAX_RSS_MB = 1024
KEEP_MAX = 4  # processes kept at most, the oldest closed first
LIBRARY_PREFIX = "sklearn."

_LOCK = threading.Lock()
_KEPT: list[tuple[Child, float]] = []  # (process, kept since: time.monotonic())
_timer: threading.Timer | None = None


def library_only(model: Any) -> bool:
    """Whether fitting `model` (a TrainingSpec or ModelConfig) runs only scikit-learn's code."""
    return not model.trainer and (model.estimator or "").startswith(LIBRARY_PREFIX)


def keep(procs: list[Child]) -> None:
    """Keep each of `procs` that may serve a later call (see above); close the others, and the
    ones this thread kept in a context it has left (it would not take them again), and the
    oldest beyond KEEP_MAX."""
    now, here = time.monotonic(), spawn_context()
    closing = []
    for proc in procs:
        if here is not None and _keepable(proc, here):
            if proc.group is not None:
                proc.group.discard(proc)
                proc.group = None
            with _LOCK:
                _KEPT.append((proc, now))
        else:
            closing.append(proc)
    with _LOCK:
        for entry in list(_KEPT):
            context = entry[0].context
            if here is not None and context[1] is here[1] and context != here:
                _KEPT.remove(entry)
                closing.append(entry[0])
        while len(_KEPT) > KEEP_MAX:
            closing.append(_KEPT.pop(0)[0])
    for proc in closing:
        proc.close()
    _arm()


def take(limit: int) -> list[Child]:
    """At most `limit` kept processes that this thread may use now, each taken out of the keep."""
    if limit <= 0:
        return []
    here = spawn_context()
    out: list[Child] = []
    with _LOCK:
        for entry in list(_KEPT):
            proc = entry[0]
            if len(out) < limit and here is not None and proc.context == here and proc.alive:
                _KEPT.remove(entry)
                out.append(proc)
    return out


def expire(now: float | None = None) -> int:
    """Close the processes kept since before `now` - KEEP_SECONDS (every one, with now=inf);
    returns how many are still kept."""
    now = time.monotonic() if now is None else now
    with _LOCK:
        old = [e for e in _KEPT if now - e[1] >= KEEP_SECONDS or not e[0].alive]
        for entry in old:
            _KEPT.remove(entry)
        left = len(_KEPT)
    for proc, _ in old:
        proc.close()
    return left


def _keepable(proc: Child, here: tuple[Any, ...]) -> bool:
    return (proc.context == here and not proc.ran_other_code and not proc.unanswered and proc.alive
            and _rss_mb(proc.proc.pid) <= KEEP_MAX_RSS_MB)


def _rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MB (Linux); infinite where it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return float("inf")


def _arm() -> None:
    """One timer at a time, each run closing what expired and re-arming while any is kept."""
    global _timer
    with _LOCK:
        if _timer is not None or not _KEPT:
            return
        _timer = threading.Timer(KEEP_SECONDS, _on_timer)
        _timer.daemon = True
        _timer.start()


def _on_timer() -> None:
    global _timer
    with _LOCK:
        _timer = None
    if expire():
        _arm()


atexit.register(lambda: expire(float("inf")))
