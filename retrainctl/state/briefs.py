"""<state_dir>/briefs.json: the few fields of each model's current version a `check` needs to
decide (its data hash, when it was trained, its config hash and checksum), so that a check of ten
thousand segments where nothing changed does not parse ten thousand metadata.json files. A cache:
each entry is trusted only while the `current` link names the same version and its metadata.json
has the same inode, size and mtime; losing the file costs one full read per model, nothing worse."""
import os
from typing import Any

from ..base.fsutil import atomic_write_json, best_effort, read_json
from .store import META_FILE, ModelStore, ModelVersion

BRIEFS_FILE = "briefs.json"
FIELDS = ("data_hash", "trained_at_ts", "config_hash", "sha256")


class Briefs:
    def __init__(self, state_dir: str, store: ModelStore) -> None:
        self.path = os.path.join(state_dir, BRIEFS_FILE)
        self.store = store
        self._entries: dict[str, Any] | None = None
        self.dirty = False

    @property
    def entries(self) -> dict[str, Any]:
        if self._entries is None:
            data = read_json(self.path, default={})
            self._entries = data if isinstance(data, dict) else {}
        return self._entries

    def current(self, name: str) -> ModelVersion | None:
        """`name`'s current version with only FIELDS in its metadata (from the cache while its
        metadata.json is unchanged), or None when it has none."""
        version = self.store.current_version(name)
        if version is None:
            return None
        path = os.path.join(self.store.folder(name), f"v{version}")
        try:
            st = os.stat(os.path.join(path, META_FILE))
        except OSError:
            return self.store.get(name, version)
        key = [version, st.st_ino, st.st_size, st.st_mtime_ns]
        entry = self.entries.get(name)
        if isinstance(entry, dict) and entry.get("key") == key and isinstance(entry.get("brief"), dict):
            return ModelVersion(name, version, path, entry["brief"])
        mv = self.store.get(name, version)
        if mv is not None:
            self.entries[name] = {"key": key, "brief": {k: mv.metadata.get(k) for k in FIELDS}}
            self.dirty = True
        return mv

    def save(self) -> None:
        if self.dirty and os.access(os.path.dirname(self.path), os.W_OK):
            with best_effort(self.path):
                atomic_write_json(self.path, self.entries, durable=False)
        self.dirty = False
