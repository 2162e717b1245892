"""Crash-safe file writes: temporary file in the same folder, fsync, rename, fsync the folder."""
import json
import os


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, data, mode=0o640, durable=True):
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
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(folder)


def _temporary(folder, prefix, suffix):
    """tempfile.mkstemp without importing tempfile (and shutil, random, bz2, lzma with it),
    which a no-op check would pay for on every run."""
    while True:
        tmp = os.path.join(folder, f"{prefix}{os.urandom(6).hex()}{suffix}")
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), tmp
        except FileExistsError:
            continue


def atomic_write_json(path, obj, durable=True):
    atomic_write(path, json.dumps(obj, indent=1, sort_keys=True) + "\n", durable=durable)


def read_json(path, default=None):
    """Read a JSON cache file; a missing or damaged one is as good as absent."""
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except (ValueError, UnicodeDecodeError):
        return default
