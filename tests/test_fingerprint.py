"""Fingerprints: content not mtime, one pass for hash and rows, a cache that is invalidated
by a size, mtime or inode change."""
import json
import os

import blake3
import pytest

from retrainctl.data import fingerprint
from retrainctl.base.errors import DataError
from retrainctl.data.fingerprint import FingerprintCache, compute, count_rows


@pytest.mark.parametrize("content,rows", [
    (b"", 0), (b"a,b\n", 0), (b"a,b", 0), (b"a,b\n1,2\n", 1), (b"a,b\n1,2", 1), (b"a,b\n1,2\n3,4\n", 2),
])
def test_rows(tmp_path, content, rows):
    p = tmp_path / "d.csv"
    p.write_bytes(content)
    fp = compute(str(p))
    assert fp.rows == rows
    assert fp.hash == blake3.blake3(content).hexdigest()


def test_count_rows_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(fingerprint, "CHUNK", 7)
    p = tmp_path / "d.csv"
    p.write_bytes(b"h\n" + b"row\n" * 100 + b"last")
    assert compute(str(p)).rows == 101
    assert count_rows(0, 0, b"") == 0


def age(path, seconds=10):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_cache_hit_does_not_read(tmp_path, monkeypatch):
    p = tmp_path / "d.csv"
    p.write_bytes(b"a\n1\n")
    age(p)
    cache = FingerprintCache(str(tmp_path))
    first = cache.get(str(p))
    cache.save()
    monkeypatch.setattr(fingerprint, "compute", lambda path: pytest.fail("re-read an unchanged file"))
    assert FingerprintCache(str(tmp_path)).get(str(p)).hash == first.hash


@pytest.mark.parametrize("change", ["size", "mtime", "inode"])
def test_cache_invalidated(tmp_path, change):
    p = tmp_path / "d.csv"
    p.write_bytes(b"a\n1\n")
    age(p, 100)
    cache = FingerprintCache(str(tmp_path))
    old = cache.get(str(p))
    cache.save()
    if change == "size":
        p.write_bytes(b"a\n1\n2\n")
        age(p, 50)
    elif change == "mtime":  # same size, new content, only the mtime tells
        p.write_bytes(b"a\n9\n")
        age(p, 50)
    else:  # same size and mtime, new file (atomic replace by a writer)
        st = os.stat(p)
        q = tmp_path / "new.csv"
        q.write_bytes(b"a\n7\n")
        os.utime(q, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(q, p)
    new = FingerprintCache(str(tmp_path)).get(str(p))
    assert new.hash != old.hash


def test_touch_keeps_the_hash(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes(b"a\n1\n")
    age(p)
    before = FingerprintCache(str(tmp_path)).get(str(p))
    os.utime(p)
    after = FingerprintCache(str(tmp_path)).get(str(p))
    assert after.hash == before.hash and after.mtime_ns != before.mtime_ns


def test_recent_files_are_not_cached(tmp_path):
    """A file written a moment ago could change again within the same mtime tick."""
    p = tmp_path / "d.csv"
    p.write_bytes(b"a\n1\n")
    cache = FingerprintCache(str(tmp_path))
    cache.get(str(p))
    assert str(p) not in cache.entries


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope.csv: data file not found$"):
        FingerprintCache(str(tmp_path)).get(str(tmp_path / "nope.csv"))


def test_file_changing_while_read_is_read_again(tmp_path, monkeypatch):
    p = tmp_path / "d.csv"
    p.write_bytes(b"a\n1\n")
    real_stat = os.stat
    calls = {"n": 0}

    def flaky_stat(path, *a, **kw):
        st = real_stat(path, *a, **kw)
        calls["n"] += 1
        if calls["n"] == 2:  # the 'after' stat of the first pass sees a different size
            p.write_bytes(b"a\n1\n2\n")
            return real_stat(path, *a, **kw)
        return st

    monkeypatch.setattr(fingerprint.os, "stat", flaky_stat)
    fp = compute(str(p))
    assert fp.rows == 2 and fp.hash == blake3.blake3(b"a\n1\n2\n").hexdigest()


@pytest.mark.parametrize("numpy_count", [False, True])
@pytest.mark.parametrize("size", [64 * 5, 64 * 5 + 17, 64 * 40 - 1])
def test_chunked_hash_and_count_agree_with_one_pass(tmp_path, monkeypatch, numpy_count, size):
    """Big files are hashed on a helper thread while this one counts newlines in reused
    buffers (bytes.count or numpy): same digest and rows as hashing the whole content at once."""
    import random

    monkeypatch.setattr(fingerprint, "CHUNK", 64)
    monkeypatch.setattr(fingerprint, "NUMPY_COUNT_MIN", 0 if numpy_count else 1 << 40)
    rng = random.Random(size)
    content = bytes(rng.choice(b"ab,\n") for _ in range(size))
    p = tmp_path / "d.csv"
    p.write_bytes(content)
    fp = compute(str(p))
    assert fp.hash == blake3.blake3(content).hexdigest()
    assert fp.rows == count_rows(content.count(b"\n"), size, content[-1:])


def test_cache_survives_dry_runs(project, monkeypatch):
    """A dry run hashes the data once and caches it; the next dry run only stats the files."""
    for name in ("iris", "housing"):
        age(project.data(name), 60)
    assert project.cli("check", "--dry-run").exit_code == 3
    cached = json.loads((project.state_dir / "fingerprints.json").read_text())
    assert sorted(cached) == sorted(str(project.data(n)) for n in ("iris", "housing"))
    monkeypatch.setattr(fingerprint, "compute", lambda path: pytest.fail(f"re-read {path}"))
    assert project.cli("check", "--dry-run").exit_code == 3


def test_between_models_the_cache_is_written_at_most_once_a_second(tmp_path, monkeypatch):
    """save(final=False), called after each model a command decides, writes the cache only when
    SAVE_SECONDS have passed since the last write (a command fingerprinting hundreds of files
    would otherwise write the growing file once per file); the final save writes what is left."""
    files = []
    for i in range(3):
        p = tmp_path / f"d{i}.csv"
        p.write_bytes(f"a\n{i}\n".encode())
        age(p)
        files.append(str(p))
    stored = tmp_path / fingerprint.CACHE_FILE

    def saved():
        return set(json.loads(stored.read_text())) if stored.exists() else set()

    monkeypatch.setattr(fingerprint, "SAVE_SECONDS", 3600)  # never due within the test
    cache = FingerprintCache(str(tmp_path))
    cache.get(files[0])
    cache.save(final=False)
    assert saved() == set()
    monkeypatch.setattr(fingerprint, "SAVE_SECONDS", 0)  # due at once
    cache.save(final=False)
    assert saved() == {files[0]}
    monkeypatch.setattr(fingerprint, "SAVE_SECONDS", 3600)
    cache.get(files[1])
    cache.save(final=False)
    assert saved() == {files[0]}
    cache.get(files[2])
    cache.save()
    assert saved() == set(files)
