"""What a command reports: one model's outcome in a `check` or `train`, a whole `check`, and a
model's `status` row. Plain values, shaped for `--json` by their to_dict()."""
from dataclasses import dataclass, field
from typing import Any

from .decide import Decision, Observation, Reason
from .records import Action, Held, Record


def reasons_dict(reasons: tuple[Reason, ...]) -> list[dict[str, str]]:
    return [{"trigger_type": str(r.trigger_type), "description": r.description} for r in reasons]


@dataclass
class Outcome:
    """What happened to one model in one command."""

    model_name: str
    action: Action
    reasons: tuple[Reason, ...] = ()
    note: str = ""
    result: str = ""
    event: Record | None = None
    failed: bool = False
    held: Held | None = None
    alert: str = ""  # quality signals that only alert (core.decide.alerts)

    @classmethod
    def of(cls, model_name: str, decision: Decision, result: str = "", event: Record | None = None,
           failed: bool = False, alert: str = "") -> "Outcome":
        """The outcome of acting on `decision`."""
        return cls(model_name, decision.action, decision.reasons, decision.note, result, event, failed,
                   decision.held, alert)

    @property
    def due(self) -> bool:
        return self.action == Action.TRAIN

    @property
    def record(self) -> dict[str, Any] | None:
        """The event as written to the log, or None when nothing was recorded."""
        return self.event.to_dict() if self.event is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "due": self.due,
            "held": self.held,
            "due_reasons": reasons_dict(self.reasons),
            "action": self.action,
            "note": self.note,
            "alert": self.alert or None,
            "result": self.result,
            "failed": self.failed,
            "event": self.record,
        }


@dataclass
class CheckReport:
    """A `check`'s outcomes, and what it observed of each model (handed to the metrics export)."""

    outcomes: list[Outcome] = field(default_factory=list)
    dry_run: bool = False
    observed: dict[str, Observation] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if any(o.failed for o in self.outcomes):
            return 1
        if self.dry_run and any(o.due for o in self.outcomes):
            return 3
        return 0


@dataclass
class StatusRow:
    """One model in `status`: data, current version, age, due and why, last event, failures,
    training now, and the quality checks' columns (observe.evaluation.STATUS_FIELDS, in `quality`)."""

    model_name: str
    data_path: str
    data_rows: int | None
    data_files: int | None           # a data set's file count; None for one file
    new_files: list[str] | None      # a set's files the current model was not trained on
    data_hash: str | None
    data_error: str | None
    data_changed: bool | None
    model_version: int | None
    model_age_seconds: float | None
    metric: str
    score: float | None
    columns: dict[str, Any] | None
    mlflow_run_id: str | None
    mlflow_model_version: int | None
    due: bool
    held: Held | None
    due_reasons: tuple[Reason, ...]
    action: Action
    note: str
    paused: bool
    auto_retraining: bool
    failures_in_row: int
    next_retry: str | None
    model_integrity: str | None
    model_dir_missing: bool | None
    training_now: bool
    last_event: Record | None
    quality: dict[str, Any]
    executing: dict[str, Any] | None = None
    alert: str = ""                      # quality signals that only alert (core.decide.alerts)
    column_warnings: tuple[str, ...] = ()  # what the live version's training said about its columns
    registry_champion_version: int | None = None  # what MLflow's `champion` names (state.sidecars.registry_state)
    registry_in_sync: bool | None = None
    written_by_newer: str | None = None  # a newer retrainctl release that wrote its records or live model

    def to_dict(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in _ROW_KEYS}
        row["due_reasons"] = reasons_dict(self.due_reasons)
        row["last_event"] = self.last_event.to_dict() if self.last_event is not None else None
        row["alert"] = self.alert or None
        row["column_warnings"] = list(self.column_warnings)
        return dict(row, **self.quality, executing=self.executing)


_ROW_KEYS = ("model_name", "data_path", "data_rows", "data_files", "new_files", "data_hash", "data_error",
             "data_changed", "model_version", "model_age_seconds", "metric", "score", "columns", "mlflow_run_id",
             "mlflow_model_version", "due", "held", "due_reasons", "action", "note", "paused", "auto_retraining",
             "failures_in_row", "next_retry", "model_integrity", "model_dir_missing", "training_now", "last_event",
             "registry_champion_version", "registry_in_sync", "written_by_newer")
