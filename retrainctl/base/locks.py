"""The state directory's OS locks: the event log's and caches' file locks, the per-model training
lock a fit holds from decision to record, and a probe of it that needs no write access.

filelock is imported when the first lock is made: a `check` with nothing to do takes no lock on
the event log and should not pay for it."""
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import LockBusy

LOCK_TIMEOUT = 60.0
# How long a run waits for a model's training lock: long enough to ride out a `status` or a
# metrics export probing it, far shorter than any fit.
CLAIM_WAIT = 2.0


class LockTimeout(TimeoutError):
    """A file lock is held by another process: what the locks from file_lock() raise when their
    timeout runs out (also a filelock.Timeout, for callers that catch that)."""


_lock_class: Any = None
_lock_mode = 0o640


def file_lock(path: str, timeout: float) -> Any:
    """A filelock.FileLock raising LockTimeout. filelock costs ~20 ms to import, most of a no-op
    check, so it is imported when the first lock is made, not with this module."""
    global _lock_class, _lock_mode
    if _lock_class is None:
        from filelock import FileLock, Timeout

        class Busy(LockTimeout, Timeout):
            pass

        class Lock(FileLock):
            def acquire(self, *args: Any, **kwargs: Any) -> Any:
                try:
                    return super().acquire(*args, **kwargs)
                except Timeout:
                    raise Busy(self.lock_file) from None

        _lock_class = Lock
        _lock_mode = _file_mode()  # once per process: the command set its umask before any lock
    return _lock_class(path, timeout=timeout, mode=_lock_mode)


def _file_mode() -> int:
    """0666 under the process's umask (0640 under retrainctl's default 0027), as open() would
    create the file. Passed to filelock, which otherwise opens with 0666 and, for a mode that
    lets the group write, first probes the folder for flock support: a temporary file created and
    freed for each new lock file, thousands in a round of segments. Read from /proc, not with
    os.umask, which would change it for every thread for a moment."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o640


@contextmanager
def flocked(path: str, timeout: float) -> Iterator[None]:
    """flock(2) on `path`, the same kernel lock filelock takes on Unix, so both interoperate;
    used directly for the one lock a no-op check takes, which should not import filelock."""
    import fcntl
    import time

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockBusy(f"{path}: lock still held after {timeout:.0f}s") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def training_lock(state_dir: str, model_name: str) -> Any:
    """The per-model lock a fit holds from decision to record; an OS lock, freed by the
    kernel when its process dies, so a killed run never blocks the next."""
    return file_lock(os.path.join(state_dir, f"train-{model_name}.lock"), CLAIM_WAIT)


def lock_is_held(state_dir: str, model_name: str) -> bool:
    """Whether a process holds the model's training lock now. Probed on a read-only descriptor
    (flock needs no write access), so `status` and `metrics` work on a read-only state dir and
    never create a lock file; no lock file means no holder."""
    import fcntl

    try:
        fd = os.open(os.path.join(state_dir, f"train-{model_name}.lock"), os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError, PermissionError):  # unreadable: unknown, say no
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor drops the probe's lock
    return False
