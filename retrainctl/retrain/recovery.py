"""Crash recovery: close the attempts whose process died (a `started` record without an end),
and put the MLflow `champion` alias back in step with the store when the crash left it ahead."""
import logging
import time
from collections.abc import Callable
from typing import Any

from ..base.errors import ErrorType
from ..base.locks import LockTimeout, training_lock
from ..config.records import Config, ModelConfig
from ..core.fold import ModelState
from ..core.records import Record, Status, quality_fields
from ..publish.tracking import log_failure, realign_champion
from ..state.store import ModelStore, ModelVersion
from .recorder import Recorder

log = logging.getLogger(__name__)


class Recovery:
    def __init__(self, config: Config, store: ModelStore, recorder: Recorder,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.recorder = recorder
        self.clock = clock

    def recover_interrupted(self, model: ModelConfig, state: ModelState) -> ModelState | None:
        """An attempt that started but never ended, whose lock is free, died with its process:
        record it as an `interrupted` failure so the retry policy sees it. Needs the model's lock.
        Returns the model's state afterwards, or None when nothing could be closed."""
        if not state.open_attempts:
            return None
        lock = training_lock(self.config.state_dir, model.name)
        try:
            lock.acquire(timeout=0)
        except LockTimeout:
            return None  # still running elsewhere
        try:
            return self.close_dead_attempts(model)
        finally:
            lock.release()

    def close_dead_attempts(self, model: ModelConfig) -> ModelState:
        """Close every open attempt of a model whose training lock this process holds: none of
        them can still be running. Returns the model's state afterwards (the log is read again
        only when something was closed)."""
        state = self.recorder.state(model.name)
        if not state.open_attempts:
            return state
        for started in state.open_attempts.values():
            self._close_attempt(model, started)
        return self.recorder.state(model.name)

    def _close_attempt(self, model: ModelConfig, started: Record) -> Record | None:
        """Record how a dead attempt ended: if its version made it to `current`, only the
        success record was lost; otherwise it is an `interrupted` failure."""
        attempt = started.attempt_id
        where = f"attempt {attempt} started at {started.trigger_time} by pid {started.get('pid')} on {started.get('host')}"
        cur = self.store.current(model.name)
        quality = quality_fields(started.get("quality_keys"), started.get("quality_evidence"))
        if cur is not None and cur.metadata.get("attempt_id") == attempt:
            log.warning("%s: recovered the record of v%d, promoted by an attempt that died", model.name, cur.version)
            return self.recorder.write(model, started.trigger_type, Status.SUCCESS, self.clock(),
                                       f"recovered after a crash: {where} promoted v{cur.version} but died before recording it",
                                       data_hash=started.data_hash, attempt_id=attempt, version=cur.version,
                                       **quality, score=cur.metadata.get("score"), rows=cur.metadata.get("rows"),
                                       promoted=True)
        # The version it saved is recorded: MLflow may already know that number (see ModelState.max_version).
        saved = self.store.saved_by(model.name, attempt)
        # Before the record: a crash in between repeats the realignment next time, never skips it.
        realigned = self._realign_champion(model, saved, cur)
        error = "interrupted: the training process died"
        run_id = log_failure(self.config, model, started.trigger_type, attempt, error, ErrorType.INTERRUPTED,
                             f"{where} never finished").run_id
        log.warning("%s: recorded an interrupted training attempt", model.name)
        tracked: dict[str, Any] = {"mlflow_run_id": run_id} if run_id else {}
        return self.recorder.write(model, started.trigger_type, Status.FAILURE, self.clock(),
                                   f"{where} never finished", data_hash=started.data_hash, error=error,
                                   **quality, version=saved.version if saved else None,
                                   error_type=ErrorType.INTERRUPTED, attempt_id=attempt, **realigned, **tracked)

    def _realign_champion(self, model: ModelConfig, saved: ModelVersion | None,
                          cur: ModelVersion | None) -> dict[str, Any]:
        """Registering a candidate in MLflow moves `champion` to it just before the store promotes
        it; an attempt killed between the two leaves the alias ahead of the store. If the dead
        attempt saved a candidate (`saved`) meant for promotion, put the alias back on what is live.
        Returns the fields for the attempt's record (`tracking_error` when that failed)."""
        if not self.config.mlflow.enabled or saved is None or not saved.metadata.get("promoted"):
            return {}
        tracked = realign_champion(self.config, model, cur)
        if cur is not None and tracked.model_version is not None \
                and cur.metadata.get("mlflow_model_version") != tracked.model_version:
            self.store.update_metadata(cur, **tracked.ids())  # registered just now
        return {"tracking_error": tracked.error} if tracked.error else {}
