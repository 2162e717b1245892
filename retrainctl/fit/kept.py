"""Idle fit processes kept between two calls of a long-lived caller (a service or notebook that
calls the Python API's `check` or `train` again, the test suite's in-process commands). Each has
imported pandas and scikit-learn already (2-3 s of CPU), so the next call made within
KEEP_SECONDS fits in it instead of starting a new one. A CLI command exits at its end, and its
fit processes with it: nothing changes there.

A process is kept only where reusing it cannot change what a fit sees or does:
- it is taken again only by the process and thread that started it, while that thread asks (a
  fit process dies with the thread that started it, PR_SET_PDEATHSIG), with the interpreter,
  `sys.path`, working folder, stdout and stderr and environment variables it was started with;
- it owes no answer (a request whose answer nobody took, e.g. a validation the command did
  not wait for, would be read as the next call's answer);
- since its start-up (preload_fit) it imported no package from outside the interpreter's
  environment: a `trainer`'s module, the caller's estimator or the classes a champion's pickle
  names are code the caller may have edited since, which a fresh process would import anew;
- it holds at most KEEP_MAX_RSS_MB (a big fit's memory is not held for the next call);
- at most KEEP_MAX are kept, and a thread's processes go when its context changes.
A timer closes what was not taken again within KEEP_SECONDS; the caller's exit closes the rest.
A forked copy of the caller forgets them (they are its parent's)."""
import atexit
import os
import sys
import threading
import time
from typing import Any

from . import child
from .child import Child, spawn_context

KEEP_SECONDS = 60.0
KEEP_MAX_RSS_MB = 1024
KEEP_MAX = 4  # processes kept at most, the oldest closed first
ASK_SECONDS = 5.0  # for the answer to imported_other_code

_LOCK = threading.Lock()
_KEPT: list[tuple[Child, float]] = []  # (process, kept since: time.monotonic())
_timer: threading.Timer | None = None


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
            if here is not None and context[:2] == here[:2] and context != here:
                _KEPT.remove(entry)
                closing.append(entry[0])
        while len(_KEPT) > KEEP_MAX:
            closing.append(_KEPT.pop(0)[0])
    for proc in closing:
        proc.close()
    _arm()


def take(limit: int) -> list[Child]:
    """At most `limit` kept processes that this thread may use now, each taken out of the keep:
    the ones kept last (the likeliest to hold the data just read), listed oldest first, so that
    the spares' last-in-first-out hands out the latest first."""
    if limit <= 0:
        return []
    here = spawn_context()
    out: list[Child] = []
    with _LOCK:
        for entry in reversed(list(_KEPT)):
            proc = entry[0]
            if len(out) < limit and here is not None and proc.context == here and proc.alive:
                _KEPT.remove(entry)
                out.append(proc)
    return out[::-1]


def expire(now: float | None = None) -> int:
    """Close the processes kept since before `now` - KEEP_SECONDS (every one, with now=inf) and
    the dead; returns how many are still kept."""
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
    if proc.context != here or proc.unanswered or not proc.alive or _rss_mb(proc.proc.pid) > KEEP_MAX_RSS_MB:
        return False
    if not proc.asked:  # only its start-up ran (which may still be importing: not waited for)
        return True
    try:
        return proc.call(imported_other_code, timeout=ASK_SECONDS) is False
    except child.ChildError:
        return False


def _rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MB (Linux); infinite where it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return float("inf")


def _arm() -> None:
    """One timer at a time, due when the oldest kept process expires."""
    global _timer
    with _LOCK:
        if _timer is not None or not _KEPT:
            return
        wait = max(0.0, _KEPT[0][1] + KEEP_SECONDS - time.monotonic())
        _timer = threading.Timer(wait, _on_timer)
        _timer.daemon = True
        _timer.start()


def _on_timer() -> None:
    global _timer
    with _LOCK:
        _timer = None
    if expire():
        _arm()


def _forget_in_fork() -> None:
    """In a forked copy of the caller: the kept processes are its parent's, never to be used or
    closed here; the lock may have been held by a thread that does not exist here."""
    global _LOCK, _timer
    _LOCK = threading.Lock()
    _KEPT.clear()
    _timer = None


os.register_at_fork(after_in_child=_forget_in_fork)
atexit.register(lambda: expire(float("inf")))


# --- in the fit process --------------------------------------------------------------------------

_started_with: frozenset[str] | None = None  # the top-level packages imported by the start-up


def preload_fit(modules: tuple[str, ...]) -> None:
    """A shared fit process's start-up: import `modules` (child.preload), then note which
    packages that imported, for imported_other_code."""
    global _started_with
    child.preload(modules)
    _started_with = frozenset(_packages())


def imported_other_code() -> bool:
    """Whether this process has imported, since its start-up, a package that is not installed in
    the interpreter's environment (the standard library's and the modules Cython names after
    its own version aside): the caller's own code, a trainer's module or a class a champion's
    pickle names. An installed library (blake3, which hashes the data) is no more likely to
    change between two calls than the caller's own imports of it."""
    if _started_with is None:
        return True
    roots = tuple({os.path.join(os.path.realpath(p), "") for p in
                   (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)})
    for name in _packages() - _started_with - sys.stdlib_module_names:
        if name.startswith("_cython_"):
            continue
        module = sys.modules.get(name)
        where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", None) or ()), None)
        if where is None or not os.path.realpath(where).startswith(roots):
            return True
    return False


def _packages() -> set[str]:
    return {name.partition(".")[0] for name in list(sys.modules)}
