"""`retrainctl rollback MODEL [--to VERSION]`: make an earlier version current again, move the
registry's `champion` with it, and record it; for an entry with segment_by or a glob, each of the
segments it stands for."""
import time
from dataclasses import dataclass
from typing import Any

from ..base.errors import RetrainctlError, TrackingError, UsageError
from ..config.records import Config, ModelConfig
from ..core.records import OPERATOR, Record, Status
from ..core.values import utcnow_iso
from ..publish import entry_registry
from ..publish.tracking import CHAMPION, Tracked, move_champion
from ..state.lineage import previous_promoted
from ..state.store import ModelVersion
from .shell import Clock, Shell, model_lock, one, operator, select

BUSY = "being trained by another process; try the rollback again later"


@dataclass(frozen=True)
class RolledBack:
    """One model of a rollback of several: its `rolled_back` record, or why it was not rolled back."""

    model_name: str
    event: Record | None = None
    error: str | None = None
    failed: bool = False  # not only nothing to roll back to: busy, a damaged file, the registry

    def to_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "rolled_back": self.event is not None, "failed": self.failed,
                "version": self.event.version if self.event else None,
                "previous_version": self.event.extra.get("previous_version") if self.event else None,
                "error": self.error, "event": self.event.to_dict() if self.event else None}


def rollback(config: Config, name: str, to: int | None = None, clock: Clock = time.time) -> Record:
    """Make the previous promoted version (or `to`) current again, after checking its checksum.
    Returns the `rolled_back` record."""
    shell = Shell(config, clock)
    model = one(config, name, shell.observer)
    shell.log.ensure_dir()
    registry = entry_registry.start_round(config, [model])  # an entry's registered model follows at the end
    try:
        return _rollback(shell, model, to)
    finally:
        registry.end(shell.store, [], "rollback")


def rollback_many(config: Config, names: list[str] | tuple[str, ...], clock: Clock = time.time) -> list[RolledBack]:
    """Roll back each model `names` stand for (an entry's segments, a glob's matches) to its
    previous promoted version, each under its own training lock. One with nothing to roll back to
    (no model, no earlier version) keeps its version; one that cannot be rolled back (being
    trained, a damaged file, the registry with mlflow.required) is `failed`; the others still are."""
    shell = Shell(config, clock)
    models = select(config, names, shell.observer)
    shell.log.ensure_dir()
    shell.recorder.gather(models)  # one notification per entry for its segments
    registry = entry_registry.start_round(config, models)  # an entry's registered model follows at the end
    out = []
    try:
        for model in models:
            try:
                out.append(RolledBack(model.name, event=_rollback(shell, model, None)))
            except UsageError as exc:
                out.append(RolledBack(model.name, error=str(exc)))
            except RetrainctlError as exc:
                out.append(RolledBack(model.name, error=str(exc), failed=True))
        registry.end(shell.store, [], "rollback")
    finally:
        shell.recorder.flush()
    return out


def _rollback(shell: Shell, model: ModelConfig, to: int | None) -> Record:
    config, store, clock, name = shell.config, shell.store, shell.clock, model.name
    with model_lock(config, name, BUSY):
        current = store.current_version(name)
        if current is None:
            raise UsageError(f"{name}: no current model to roll back")
        if to is None:
            to = previous_promoted(shell.log, store, name, current)
            if to is None:
                raise UsageError(f"{name}: no earlier promoted version on disk to roll back to (current is v{current})")
        if to == current:
            raise UsageError(f"{name}: v{to} is already current")
        target = store.get(name, to)
        if target is None:
            available = ", ".join(f"v{v}" for v in store.versions(name)) or "none"
            raise UsageError(f"{name}: version {to} does not exist (available: {available})")
        store.verify(target)
        abandoned = store.get(name, current)
        tracked = _move_champion_back(shell, model, target, abandoned, current)
        store.promote(name, to)
        event = shell.recorder.write(model, OPERATOR, Status.ROLLED_BACK, clock(),
                                     f"rolled back from v{current} to v{to} by {operator()}", version=to,
                                     data_hash=target.metadata.get("data_hash"), score=target.metadata.get("score"),
                                     previous_version=current,
                                     abandoned_data_hash=abandoned.metadata.get("data_hash") if abandoned else None,
                                     **tracked.fields())
        assert event is not None  # written unconditionally
        return event


def _move_champion_back(shell: Shell, model: ModelConfig, target: ModelVersion, abandoned: ModelVersion | None,
                        current: int) -> Tracked:
    """Move the registry's `champion` to `target` (registering it if it never was, e.g. a rejected
    candidate) and tag both registered versions with the rollback. With mlflow.required a
    registry that cannot follow stops the rollback; otherwise the store moves and the
    disagreement shows in `status` and the metrics."""
    at = utcnow_iso(shell.clock())
    gone = abandoned.metadata.get("mlflow_model_version") if abandoned is not None else None
    tracked = move_champion(shell.config, model, target,
                            tags={"retrainctl.rolled_back_from": f"v{current}", "retrainctl.rolled_back_at": at},
                            other_tags={gone: {"retrainctl.rolled_back_to": f"v{target.version}",
                                               "retrainctl.rolled_back_at": at}} if gone is not None else None)
    if tracked.error and shell.config.mlflow.required:
        raise TrackingError(f"{model.name}: not rolled back to v{target.version}: MLflow alias '{CHAMPION}' could "
                            f"not be moved and mlflow.required is true: {tracked.error}")
    if tracked.model_version is not None and tracked.model_version != target.metadata.get("mlflow_model_version"):
        shell.store.update_metadata(target, **tracked.ids())  # registered just now
    return tracked
