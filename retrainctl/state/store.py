"""The versioned model store: <model_dir>/<model>/v<N>/{model.joblib,metadata.json} and a
`current` symlink swapped atomically. A version folder appears whole or not at all."""
import errno
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..base.errors import ErrorType, IntegrityError, StoreError, UsageError
from ..base.fsutil import atomic_write_json, fsync_all, json_text

log = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
META_FILE = "metadata.json"
_VERSION = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    path: str
    metadata: dict[str, Any]

    @property
    def model_file(self) -> str:
        return os.path.join(self.path, MODEL_FILE)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_sha(mv: ModelVersion, actual: str) -> None:
    expected = mv.metadata.get("sha256")
    if actual != expected:
        raise IntegrityError(f"{mv.model_file}: checksum does not match metadata.json "
                             f"(expected {expected}, got {actual}); refusing to load it")


@contextmanager
def _writing(path: str, what: str) -> Iterator[None]:
    """Turn an OSError into a one-line StoreError naming `path` and the cause; a full disk is
    `disk_full` in the failure record, anything else `store_error`."""
    try:
        yield
    except OSError as exc:
        kind = ErrorType.DISK_FULL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ErrorType.STORE_ERROR
        raise StoreError(f"{path}: {what}: {exc.strerror or exc}", kind) from exc


@dataclass(frozen=True)
class Staged:
    """A version written by ModelStore.stage(), waiting for commit(): `mv` as it will be, its
    files in the temporary folder `tmp`."""

    mv: ModelVersion
    tmp: str


class ModelStore:
    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir

    def folder(self, name: str) -> str:
        return os.path.join(self.model_dir, name)

    def versions(self, name: str) -> list[int]:
        try:
            entries = os.listdir(self.folder(name))
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_VERSION.match, entries) if m)

    def get(self, name: str, version: int) -> ModelVersion | None:
        path = os.path.join(self.folder(name), f"v{version}")
        try:
            with open(os.path.join(path, META_FILE), "rb") as fh:
                meta = json.load(fh)
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as exc:
            log.warning("%s: unreadable metadata: %s", path, exc)
            return None
        return ModelVersion(name, version, path, meta)

    def current_version(self, name: str) -> int | None:
        try:
            target = os.readlink(os.path.join(self.folder(name), "current"))
        except (FileNotFoundError, OSError):
            return None
        m = _VERSION.match(os.path.basename(target.rstrip("/")))
        return int(m.group(1)) if m else None

    def current(self, name: str) -> ModelVersion | None:
        version = self.current_version(name)
        return None if version is None else self.get(name, version)

    def saved_by(self, name: str, attempt_id: str | None) -> ModelVersion | None:
        """The version a training attempt saved, or None."""
        for version in reversed(self.versions(name)):  # the attempt's is usually the newest
            mv = self.get(name, version)
            if mv is not None and mv.metadata.get("attempt_id") == attempt_id:
                return mv
        return None

    def verify(self, mv: ModelVersion) -> ModelVersion:
        """Refuse a model file whose sha256 differs from its metadata, before anything unpickles it."""
        try:
            actual = sha256_file(mv.model_file)
        except FileNotFoundError:
            raise IntegrityError(f"{mv.model_file}: model file is missing") from None
        _check_sha(mv, actual)
        return mv

    def read_verified(self, mv: ModelVersion) -> bytes:
        """The model file's bytes, once their sha256 matches the metadata (read once, checked once)."""
        try:
            with open(mv.model_file, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise IntegrityError(f"{mv.model_file}: model file is missing") from None
        _check_sha(mv, hashlib.sha256(data).hexdigest())
        return data

    def save(self, name: str, model_bytes: bytes, metadata: dict[str, Any], at_least: int = 0) -> ModelVersion:
        """Write a new version folder whole (temporary folder, fsync, rename) and return it. It is
        numbered after the highest version on disk and `at_least` (the highest the history names):
        a model folder deleted since must not hand out its numbers again. The caller holds the
        model's training lock, so version numbers cannot collide. A failed write (a full disk)
        raises StoreError naming the version folder and leaves nothing of it behind."""
        return self.commit([self.stage(name, model_bytes, metadata, at_least)])[0]

    def stage(self, name: str, model_bytes: bytes, metadata: dict[str, Any], at_least: int = 0) -> "Staged":
        """The first half of save(): the version's files written in a temporary folder beside
        it, not yet durable nor visible. commit() finishes several at once."""
        import shutil
        import tempfile

        folder = self.folder(name)
        existing = self.versions(name)
        version = max(existing[-1] if existing else 0, at_least) + 1
        final = os.path.join(folder, f"v{version}")
        meta = dict(metadata, version=version, sha256=hashlib.sha256(model_bytes).hexdigest())
        with _writing(final, "cannot save the model"):
            os.makedirs(folder, exist_ok=True)
            self.clean_temporaries(name)
            tmp = tempfile.mkdtemp(prefix=".tmp-v", dir=folder)
            try:
                for fname, data in ((MODEL_FILE, model_bytes),
                                    (META_FILE, json_text(meta, default=str).encode())):
                    with open(os.path.join(tmp, fname), "wb") as fh:
                        fh.write(data)
                    os.chmod(os.path.join(tmp, fname), 0o640)
                os.chmod(tmp, 0o750)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return Staged(ModelVersion(name, version, final, meta), tmp)

    def commit(self, staged: list["Staged"]) -> list[ModelVersion]:
        """Make staged versions durable and visible, in two group commits: their files and
        temporary folders fsynced together, then each folder renamed to v<N> and the model
        folders fsynced together. A version folder appears whole or not at all. On an error
        (named StoreError) the versions not yet renamed are removed; the ones renamed stay, as
        a crash at that moment would leave them (not current, pruned later)."""
        import shutil

        renamed = 0
        try:
            with _writing(staged[0].mv.path if len(staged) == 1 else self.model_dir, "cannot save the model"):
                fsync_all([os.path.join(s.tmp, f) for s in staged for f in (MODEL_FILE, META_FILE)]
                          + [s.tmp for s in staged])
                for s in staged:
                    os.rename(s.tmp, s.mv.path)
                    renamed += 1
                fsync_all([os.path.dirname(s.mv.path) for s in staged])
        except BaseException:
            for s in staged[renamed:]:
                shutil.rmtree(s.tmp, ignore_errors=True)
            raise
        return [s.mv for s in staged]

    def update_metadata(self, mv: ModelVersion, **fields: Any) -> ModelVersion:
        """Add fields to a version's metadata.json, replaced atomically; the model file and the
        checksum recorded for it stay as they are."""
        meta = dict(mv.metadata, **fields)
        atomic_write_json(os.path.join(mv.path, META_FILE), meta)
        return ModelVersion(mv.name, mv.version, mv.path, meta)

    def promote(self, name: str, version: int) -> None:
        """Point `current` at v<version>: a new symlink renamed over the old one, atomically and
        durably (a batch of models: link_current each, then one sync_folders)."""
        self.link_current(name, version)
        with _writing(os.path.join(self.folder(name), "current"), f"cannot promote v{version}"):
            fsync_all([self.folder(name)])

    def link_current(self, name: str, version: int) -> None:
        """Point `current` at v<version> (a new symlink renamed over the old one), not yet durable:
        sync_folders() makes it so."""
        folder = self.folder(name)
        if not os.path.isdir(os.path.join(folder, f"v{version}")):
            raise UsageError(f"{name}: version {version} does not exist in {folder}")
        tmp = os.path.join(folder, f".tmp-current-{os.getpid()}")
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        with _writing(os.path.join(folder, "current"), f"cannot promote v{version}"):
            os.symlink(f"v{version}", tmp)
            os.replace(tmp, os.path.join(folder, "current"))

    def sync_folders(self, names: list[str]) -> None:
        """Make what was renamed in these models' folders durable, all in one group commit."""
        if names:
            with _writing(self.model_dir, "cannot sync the model folders"):
                fsync_all([self.folder(name) for name in names])

    def warn_if_lost(self, name: str, had_live: bool, highest: int) -> bool:
        """Warn when the history says `name` had a live model (`had_live`) but its folder, or
        the `current` link in it, is gone; returns whether it is."""
        if not had_live:
            return False
        folder = self.folder(name)
        link = os.path.join(folder, "current")
        gone = folder if not os.path.isdir(folder) else None if os.path.exists(link) else link
        if gone is not None:
            log.warning("%s: %s is gone, though the history has a live model; the next training makes v%d",
                        name, gone, max(highest, *self.versions(name), 0) + 1)
        return gone is not None

    def prune(self, name: str, keep: int, protect: tuple[int | None, ...] = ()) -> None:
        """Keep the newest `keep` versions, the current one, and `protect` (the rollback target:
        state.lineage.previous_promoted), however many rejected candidates came since."""
        import shutil

        current = self.current_version(name)
        versions = self.versions(name)
        keep_set = set(versions[-keep:]) | {current, *protect}
        for version in versions:
            if version not in keep_set:
                shutil.rmtree(os.path.join(self.folder(name), f"v{version}"), ignore_errors=True)

    def clean_temporaries(self, name: str) -> None:
        """Remove what a killed run left behind (only called under the model's training lock)."""
        import shutil

        folder = self.folder(name)
        for entry in os.listdir(folder):
            if entry.startswith(".tmp-"):
                path = os.path.join(folder, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
