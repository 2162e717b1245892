"""Content fingerprints of data files: BLAKE3 hash and row count in one streaming pass,
cached by (size, mtime_ns, inode) so an unchanged file is never read again."""
import logging
import os
import time
from dataclasses import dataclass

from .errors import DataError
from .fsutil import atomic_write_json, read_json

log = logging.getLogger(__name__)

CHUNK = 8 << 20
NUMPY_COUNT_MIN = 256 << 20
CACHE_FILE = "fingerprints.json"
# A file rewritten while we read it is read again this many times before we give up on it.
READ_ATTEMPTS = 3
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class Fingerprint:
    path: str
    hash: str
    rows: int  # data rows: lines after the header
    size: int
    mtime_ns: int
    inode: int

    def key(self):
        return [self.size, self.mtime_ns, self.inode]


def _stat_key(st):
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _stat(path):
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: data file not found") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read data file: {exc.strerror}") from None


def hash_bytes(data):
    import blake3

    return blake3.blake3(data).hexdigest()


def count_rows(newlines, size, last_byte):
    """Data rows of a CSV from its newline count: every line but the header, the last one
    counting even without a trailing newline."""
    if size == 0:
        return 0
    lines = newlines + (0 if last_byte == b"\n" else 1)
    return max(lines - 1, 0)


def csv_rows(path, newlines, size, last_byte):
    return count_rows(newlines, size, last_byte)


def compute(path, rows=csv_rows):
    """Hash and count one file, re-reading it if it changed while we read it. `rows(path, newlines,
    size, last byte)` counts its data rows (another format reads them from its own metadata),
    inside the same unchanged-stat window as the hash."""
    for _ in range(READ_ATTEMPTS):
        before = _stat(path)
        if not os.path.isfile(path):
            raise DataError(f"{path}: not a regular file")
        try:
            with open(path, "rb") as fh:
                digest, newlines, last = _hash_and_count(fh)
        except PermissionError:
            raise DataError(f"{path}: permission denied") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read data file: {exc.strerror}") from None
        n = rows(path, newlines, before.st_size, last)
        after = _stat(path)
        if _stat_key(before) == _stat_key(after):
            return Fingerprint(path, digest, n, after.st_size, after.st_mtime_ns, after.st_ino)
        log.warning("%s changed while it was being read; reading it again", path)
    raise DataError(f"{path}: data file keeps changing while it is read; skipped this run")


def _hash_and_count(fh):
    """(BLAKE3 hex digest, newline count, last byte) in one pass over the file. blake3 releases
    the GIL on large inputs, so one chunk is hashed on a helper thread (with blake3's own
    threads) while this thread counts the newlines of the same chunk and reads the next one
    into the other of two reused buffers: the cost is that of the slower of the two, not the sum."""
    import blake3

    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    first = fh.read(CHUNK)
    if len(first) < CHUNK:  # small files (all of the usual ones): no thread, no buffers
        hasher.update(first)
        return hasher.hexdigest(), first.count(b"\n"), first[-1:]
    from concurrent.futures import ThreadPoolExecutor

    count = _newline_counter(os.fstat(fh.fileno()).st_size)
    buffers = (bytearray(first), bytearray(CHUNK))
    size, turn, newlines, last = len(first), 0, 0, b""
    with ThreadPoolExecutor(1, thread_name_prefix="blake3") as pool:
        previous = None
        while size:
            buf = buffers[turn]
            hashing = pool.submit(hasher.update, memoryview(buf)[:size])
            newlines += count(buf, size)
            last = bytes(buf[size - 1:size])
            if previous is not None:
                previous.result()  # the other buffer is free to be read into again
            previous = hashing
            turn ^= 1
            size = fh.readinto(buffers[turn])
        previous.result()
    return hasher.hexdigest(), newlines, last


def _newline_counter(total):
    """bytes.count runs at ~4 GB/s; numpy's vectorised compare at ~15 GB/s and without the GIL,
    which pays for its import (~0.08 s) only on big files."""
    if total < NUMPY_COUNT_MIN:
        return lambda buf, size: buf.count(b"\n", 0, size)
    import numpy as np

    scratch = np.empty(CHUNK, dtype=bool)

    def count(buf, size):
        return int(np.count_nonzero(np.equal(np.frombuffer(buf, np.uint8, size), 10, out=scratch[:size])))
    return count


def set_hash(pairs):
    """One hash of a data set: over its sorted (relative path, content hash) pairs, so a file
    renamed, added, removed or changed changes it, and listing order does not."""
    import blake3

    hasher = blake3.blake3()
    for rel, digest in sorted(pairs):
        hasher.update(f"{rel}\0{digest}\n".encode())
    return hasher.hexdigest()


class FingerprintCache:
    """Maps absolute data paths to their last fingerprint; stored atomically in the state dir.
    Losing it costs one re-read, never a wrong answer."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, CACHE_FILE)
        self.entries = read_json(self.path, default={}) or {}
        if not isinstance(self.entries, dict):
            self.entries = {}
        self.dirty = False

    def get(self, path, rows=csv_rows):
        """The file's fingerprint, read from the cache when size, mtime and inode still match;
        `rows` counts a changed file's data rows (see compute)."""
        st = _stat(path)
        entry = self.entries.get(path)
        if entry and entry.get("key") == _stat_key(st):
            return Fingerprint(path, entry["hash"], entry["rows"], *_stat_key(st))
        fp = compute(path, rows)
        # A file written in the last moments may change again within the same mtime tick with
        # the same size; such an entry would be trusted wrongly, so it is not cached yet.
        if time.time_ns() - fp.mtime_ns > RACY_NS:
            self.entries[path] = {"key": fp.key(), "hash": fp.hash, "rows": fp.rows}
            self.dirty = True
        return fp

    def save(self):
        """Write the cache if it changed. A cache: where it cannot be written (a read-only state
        dir for `status`), the next run hashes again, nothing worse."""
        if self.dirty:
            try:
                atomic_write_json(self.path, self.entries, durable=False)
            except OSError as exc:
                log.debug("%s: fingerprint cache not saved: %s", self.path, exc)
            self.dirty = False
