"""Small side files in the state dir that `status` and the metrics read instead of asking a
running process or MLflow: where a fit runs (`running/<model>.json`, kept by its controller while
it holds the model's lock) and where the registry's `champion` alias was last left
(`registry/<model>.json`). Written best effort: without them `status` only says less."""
import logging
import os
import socket
import time
from typing import Any

from ..base.fsutil import atomic_write_json, best_effort, read_json

log = logging.getLogger(__name__)

RUNNING_DIR = "running"
REGISTRY_DIR = "registry"


# --- running/<model>.json ------------------------------------------------------------------------

def running_path(state_dir: str, model_name: str) -> str:
    return os.path.join(state_dir, RUNNING_DIR, f"{model_name}.json")


def mark_running(state_dir: str, model_name: str, attempt_id: str, executor: str, state: str,
                 where: str | None = None, when: float | None = None) -> None:
    path = running_path(state_dir, model_name)
    with best_effort(path):  # not durable: read only while its controller holds the lock, so never after a crash
        atomic_write_json(path, {
            "model_name": model_name, "attempt_id": attempt_id, "executor": executor, "state": state,
            "where": where, "since": when if when is not None else time.time(),
            "controller": {"host": socket.gethostname(), "pid": os.getpid()}}, durable=False)


def read_running(state_dir: str, model_name: str) -> dict[str, Any] | None:
    data = read_json(running_path(state_dir, model_name))
    return data if isinstance(data, dict) else None


def clear_running(state_dir: str, model_name: str) -> None:
    try:
        os.unlink(running_path(state_dir, model_name))
    except FileNotFoundError:
        pass


# --- registry/<model>.json -----------------------------------------------------------------------

def registry_path(state_dir: str, name: str) -> str:
    return os.path.join(state_dir, REGISTRY_DIR, f"{name}.json")


def remember_champion(state_dir: str, name: str, store_version: int | None, registered: int | None,
                      error: str | None) -> None:
    """Record where a command left `champion`: on registered version `registered` of store version
    `store_version`, or, after an error, unknown (the alias may or may not have moved)."""
    path = registry_path(state_dir, name)
    before = read_json(path) or {}
    entry = {"store_version": store_version, "registered_version": registered, "error": error}
    if error:  # the last alias known for sure stays visible
        entry["registered_version"] = before.get("registered_version")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write_json(path, entry)
    except OSError as exc:
        log.warning("%s: could not record the MLflow alias in %s: %s", name, path, exc)


def registry_state(state_dir: str, enabled: bool, name: str,
                   current_version: int | None) -> tuple[int | None, bool | None]:
    """(registered version `champion` names, whether it is the store's `current`) as the last
    command left them; (None, None) when tracking is off (`enabled` false) or nothing was ever
    recorded while a model is live. Reads one small file: no MLflow."""
    if not enabled:
        return None, None
    entry = read_json(registry_path(state_dir, name))
    if not isinstance(entry, dict):
        return None, (True if current_version is None else None)
    in_sync = entry.get("error") is None and entry.get("store_version") == current_version
    return entry.get("registered_version"), in_sync
