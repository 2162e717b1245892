"""Crash-safe file writes: temporary file in the same folder, fsync, rename, fsync the folder;
and the best-effort writes of caches and side files, which warn instead of failing a command."""
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_all(paths: list[str]) -> None:
    """fsync every file or folder of `paths`, and return when all are durable. Issued together
    (several threads), so that the file system commits them in one journal transaction: a
    group commit, where one fsync after another costs a disk flush each. Raises the first
    OSError, naming its path."""
    def one(path: str) -> None:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if os.path.isdir(path) else 0))
        try:
            os.fsync(fd)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, path) from None
        finally:
            os.close(fd)

    unique = list(dict.fromkeys(paths))
    if len(unique) <= 1:
        for path in unique:
            one(path)
        return
    from concurrent.futures import wait

    futures = [_fsync_pool().submit(one, path) for path in unique]
    wait(futures)  # the first error is raised once every fsync has returned
    for future in futures:
        future.result()


_POOL: Any = None
_POOL_LOCK = threading.Lock()
FSYNC_THREADS = 32


def _fsync_pool() -> Any:
    """The threads fsync_all issues its fsyncs from, started once per process: a batch of models
    commits in hundreds of rounds, and starting the threads anew each round cost more than the
    fsyncs' own CPU."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(max_workers=FSYNC_THREADS, thread_name_prefix="retrainctl-fsync")
        return _POOL


def atomic_write(path: str, data: bytes | str, mode: int = 0o640, durable: bool = True) -> None:
    """Replace `path` with `data` (bytes or str) so readers see the old or the new file, never a part.
    durable=False skips the two fsyncs: for caches, where a file lost to a power cut (or left
    empty by one) only means recomputing what it held."""
    if isinstance(data, str):
        data = data.encode()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = _temporary(folder, "." + os.path.basename(path) + ".", ".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:  # a failed write() names no file
            raise OSError(exc.errno, exc.strerror, path) from None
        raise
    if durable:
        fsync_dir(folder)


def _temporary(folder: str, prefix: str, suffix: str) -> tuple[int, str]:
    """tempfile.mkstemp without importing tempfile (and shutil, random, bz2, lzma with it),
    which a no-op check would pay for on every run."""
    while True:
        tmp = os.path.join(folder, f"{prefix}{os.urandom(6).hex()}{suffix}")
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), tmp
        except FileExistsError:
            continue


@contextmanager
def best_effort(path: str) -> Iterator[None]:
    """For a cache or a side file `status` reads: a write that fails (a full disk, a quota, a
    read-only state dir) is one warning naming the file, never a failed command."""
    try:
        yield
    except OSError as exc:
        log.warning("%s: not updated: %s", exc.filename or path, exc.strerror or exc)


def json_text(obj: Any, default: Any = None) -> str:
    """`obj` as JSON text for files people read too: a dict's keys sorted, one per line, each
    value on its key's line. Encoded by json's C encoder (json.dumps with an indent runs the
    pure-Python one: a model's metadata took milliseconds, for each segment of a round)."""
    encode = json.JSONEncoder(sort_keys=True, default=default).encode
    if not isinstance(obj, dict) or not obj:
        return encode(obj) + "\n"
    lines = (f" {encode(str(key))}: {encode(value)}" for key, value in sorted(obj.items(), key=lambda kv: str(kv[0])))
    return "{\n" + ",\n".join(lines) + "\n}\n"


def atomic_write_json(path: str, obj: Any, durable: bool = True) -> None:
    atomic_write(path, json_text(obj), durable=durable)


def read_json(path: str, default: Any = None) -> Any:
    """Read a JSON cache file; a missing or damaged one is as good as absent."""
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except (FileNotFoundError, NotADirectoryError):  # a state "dir" that is a file is reported by ensure_dir
        return default
    except (ValueError, UnicodeDecodeError):
        return default
