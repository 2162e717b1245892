"""Content fingerprints of data files: BLAKE3 hash and row count in one streaming pass,
cached by (size, mtime_ns, inode) so an unchanged file is never read again."""
import logging
import os
import time
from dataclasses import dataclass

from ..base.errors import DataError
from ..base.fsutil import atomic_write_json, read_json

log = logging.getLogger(__name__)

CHUNK = 8 << 20
NUMPY_COUNT_MIN = 256 << 20
OFFSET_BLOCK = 1 << 16
CACHE_FILE = "fingerprints.json"
# A file rewritten while we read it is read again this many times before we give up on it.
READ_ATTEMPTS = 3
RACY_NS = 2_000_000_000
SAVE_SECONDS = 1.0


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
    """Data rows of a CSV from its count of row-ending newlines: every line but the header, the
    last one counting even without a trailing newline."""
    if size == 0:
        return 0
    lines = newlines + (0 if last_byte == b"\n" else 1)
    return max(lines - 1, 0)


def csv_rows(raw, quotechar='"'):
    """Data rows of CSV bytes in memory, quoted line breaks not counted (as `compute` counts them)."""
    rows = RowCounter(quotechar)
    rows.feed(raw, len(raw))
    return count_rows(rows.newlines, len(raw), raw[-1:])


def row_offset(raw, n, quotechar='"'):
    """The byte offset where data row `n` (0 = the first after the header) starts; len(raw) when
    there are fewer rows: the rows appended after the first n are raw[row_offset(raw, n):].
    Whole blocks are counted; only the block holding that row is walked break by break."""
    rows, pos = RowCounter(quotechar), 0
    while pos < len(raw):
        block = raw[pos:pos + OFFSET_BLOCK]
        quoted, newlines = rows.quoted, rows.newlines
        rows.feed(block, len(block))
        if rows.newlines > n:
            rows.quoted, at = quoted, 0
            for _ in range(n + 1 - newlines):
                at = rows.next_break(block, at) + 1
            return pos + at
        pos += len(block)
    return len(raw)


class RowCounter:
    """Counts the newlines that end rows, chunk by chunk: a newline between quotes belongs to a
    field. A newline is inside a quoted field when an odd number of quote characters precedes it
    (an escaped quote `""` counts twice), so only that parity is carried from chunk to chunk.
    A chunk without a quote (memchr speed) is one newline count; one with quotes is split at them
    (bytes.split, or numpy's vectorised compares for big files, which also release the GIL)."""

    def __init__(self, quotechar='"', vectorised=False):
        self.quote = quotechar.encode("ascii") if quotechar else None
        self.quoted = False
        self.newlines = 0
        self.np = None
        if vectorised:
            import numpy as np

            self.np = np

    def feed(self, buf, size):
        if self.quote is None or buf.find(self.quote, 0, size) < 0:
            if not self.quoted:
                self.newlines += self._count(buf, size)
            return
        if self.np is None:
            parts = buf[:size].split(self.quote)
            self.newlines += sum(p.count(b"\n") for p in parts[1 if self.quoted else 0::2])
            self.quoted ^= len(parts) % 2 == 0
            return
        np = self.np
        data = np.frombuffer(buf, np.uint8, size)
        breaks = np.flatnonzero(data == 10)
        quotes = np.flatnonzero(data == self.quote[0])
        # Newlines before each quote: a quoted stretch holds those between its opening and closing quote.
        bounds = np.searchsorted(breaks, quotes)
        if self.quoted:
            bounds = np.concatenate(([0], bounds))
        if len(bounds) % 2:
            bounds = np.append(bounds, len(breaks))
        self.newlines += len(breaks) - int((bounds[1::2] - bounds[0::2]).sum())
        self.quoted ^= len(quotes) % 2 == 1

    def _count(self, buf, size):
        if self.np is None:
            return buf.count(b"\n", 0, size)
        np = self.np
        return int(np.count_nonzero(np.frombuffer(buf, np.uint8, size) == 10))

    def next_break(self, raw, pos):
        """The offset of the next row-ending newline at or after `pos` (-1 if none), for a caller
        walking `raw` from where the last feed left off."""
        while True:
            nl = raw.find(b"\n", pos)
            q = raw.find(self.quote, pos) if self.quote is not None else -1
            if nl < 0:
                return -1
            if q < 0 or q > nl:
                if not self.quoted:
                    return nl
                pos = nl + 1
                continue
            self.quoted = not self.quoted
            pos = q + 1


def compute(path, quotechar='"', rows=None):
    """Hash and count one file, re-reading it if it changed while we read it. A CSV file that only
    grew by appends while it was read (same inode, larger) is fingerprinted as the bytes it had
    when the read began: that prefix is a state it really had, and the fit checks it again.
    `rows(path, newlines, size, last byte)` counts the data rows of another format (from its own
    metadata, or without quote awareness for gzip), inside the same unchanged-stat window as the
    hash; such a file has no valid prefix, so it must hold still while it is read."""
    grown = None
    for _ in range(READ_ATTEMPTS):
        before = _stat(path)
        if not os.path.isfile(path):
            raise DataError(f"{path}: not a regular file")
        try:
            with open(path, "rb") as fh:
                digest, newlines, last, read = _hash_and_count(fh, before.st_size, quotechar)
        except PermissionError:
            raise DataError(f"{path}: permission denied") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read data file: {exc.strerror}") from None
        n = count_rows(newlines, read, last) if rows is None else rows(path, newlines, read, last)
        after = _stat(path)
        fp = Fingerprint(path, digest, n, read, before.st_mtime_ns, before.st_ino)
        if _stat_key(before) == _stat_key(after) and read == before.st_size:
            return fp
        if rows is None and after.st_ino == before.st_ino and after.st_size > read == before.st_size:
            grown = fp
        log.warning("%s changed while it was being read; reading it again", path)
    if grown is not None:
        log.warning("%s keeps growing; fingerprinted its first %d bytes", path, grown.size)
        return grown
    raise DataError(f"{path}: data file keeps changing while it is read; skipped this run")


def _hash_and_count(fh, limit, quotechar='"'):
    """(BLAKE3 hex digest, row-ending newline count, last byte, bytes read) of the first `limit`
    bytes, in one pass. blake3 releases the GIL on large inputs, so one chunk is hashed on a
    helper thread (with blake3's own threads) while this thread counts the newlines of the same
    chunk and reads the next one into the other of two reused buffers: the cost is that of the
    slower of the two, not the sum."""
    import blake3

    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    first = fh.read(min(CHUNK, limit))
    if len(first) < CHUNK or limit <= CHUNK:  # small files (all of the usual ones): no thread, no buffers
        hasher.update(first)
        rows = RowCounter(quotechar)
        rows.feed(first, len(first))
        return hasher.hexdigest(), rows.newlines, first[-1:], len(first)
    from concurrent.futures import ThreadPoolExecutor

    rows = RowCounter(quotechar, vectorised=limit >= NUMPY_COUNT_MIN)
    buffers = (bytearray(first), bytearray(CHUNK))
    size, turn, last, read = len(first), 0, b"", len(first)
    with ThreadPoolExecutor(1, thread_name_prefix="blake3") as pool:
        previous = None
        while size:
            buf = buffers[turn]
            hashing = pool.submit(hasher.update, memoryview(buf)[:size])
            rows.feed(buf, size)
            last = bytes(buf[size - 1:size])
            if previous is not None:
                previous.result()  # the other buffer is free to be read into again
            previous = hashing
            turn ^= 1
            size = fh.readinto(memoryview(buffers[turn])[:min(CHUNK, limit - read)])
            read += size
        if previous is not None:
            previous.result()
    return hasher.hexdigest(), rows.newlines, last, read


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
        self.saved = time.monotonic()

    def get(self, path, quotechar='"', rows=None):
        """The file's fingerprint, read from the cache when size, mtime and inode still match
        (and rows were counted with the same quote character); `rows` counts a changed file of
        another format than CSV (see compute)."""
        st = _stat(path)
        entry = self.entries.get(path)
        if entry and entry.get("key") == _stat_key(st) and entry.get("quotechar", '"') == quotechar:
            return Fingerprint(path, entry["hash"], entry["rows"], *_stat_key(st))
        fp = compute(path, quotechar, rows)
        # A file written in the last moments may change again within the same mtime tick with
        # the same size; such an entry would be trusted wrongly, so it is not cached yet.
        if time.time_ns() - fp.mtime_ns > RACY_NS:
            self.entries[path] = {"key": fp.key(), "hash": fp.hash, "rows": fp.rows, "quotechar": quotechar}
            self.dirty = True
        return fp

    def save(self, final=True):
        """Write the cache if it changed; unless `final` (between the models of one command), at
        most once every SAVE_SECONDS: a command that fingerprints hundreds of files would
        otherwise write the growing file once per file. A cache: where it cannot be written (a
        read-only state dir for `status`), or when a command dies before writing it, the next run
        hashes again, nothing worse."""
        if self.dirty and (final or time.monotonic() - self.saved >= SAVE_SECONDS):
            self.saved = time.monotonic()
            try:
                atomic_write_json(self.path, self.entries, durable=False)
            except OSError as exc:
                log.debug("%s: fingerprint cache not saved: %s", self.path, exc)
            self.dirty = False
