"""What a command reports: one model's outcome in a `check` or `train`, a whole `check`, and a
model's `status` row. Plain values, shaped for `--json` by their to_dict()."""
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .decide import NO_DATA, Decision, Observation, Reason
from .records import Action, Held, Record
from .segment_names import entry_of, is_segment_name


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
    entry: str | None = None             # a segment model's entry, and its key: {column: value}
    segment: dict[str, str | None] | None = None
    no_data: bool = False                # a segment whose rows are gone from its entry's data

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
             "registry_champion_version", "registry_in_sync", "written_by_newer", "entry", "segment", "no_data")


@dataclass
class EntryCounts:
    """An entry with segment_by, as `status` and `check` sum it up: how many of its segments are
    in each state (a segment may count in several: paused and due), and its oldest live model."""

    entry: str
    segments: int = 0
    up_to_date: int = 0
    due: int = 0
    trained: int = 0
    failed: int = 0
    skipped: int = 0       # fewer rows than min_segment_rows: no model, no record
    paused: int = 0
    no_data: int = 0       # rows gone from the data; the model is kept
    oldest_model_age_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SegmentRow(Protocol):
    """What status_counts reads of a row: a StatusRow, or the metrics' lighter view of a segment."""

    @property
    def entry(self) -> str | None: ...
    @property
    def due(self) -> bool: ...
    @property
    def held(self) -> Held | None: ...
    @property
    def action(self) -> Action: ...
    @property
    def paused(self) -> bool: ...
    @property
    def no_data(self) -> bool: ...
    @property
    def failures_in_row(self) -> int: ...
    @property
    def model_version(self) -> int | None: ...
    @property
    def model_age_seconds(self) -> float | None: ...


def counts_as_due(due: bool, held: Held | None) -> bool:
    """Whether a model counts as due in an entry's counts and the report's states: due, or a
    trigger fires but nothing will train (the data is what the live model learnt, or automatic
    retraining is off), as status's DUE column says (`unchanged`, `disabled`)."""
    return due or held in (Held.UNCHANGED, Held.DISABLED)


def status_counts(rows: Sequence[SegmentRow], weights: Sequence[int] | None = None) -> list[EntryCounts]:
    """One EntryCounts per entry among the segment rows of `status`, in their order; `weights`:
    how many segments each row stands for (one each by default)."""
    out: dict[str, EntryCounts] = {}
    for i, r in enumerate(rows):
        if r.entry is None:
            continue
        n = 1 if weights is None else weights[i]
        c = out.setdefault(r.entry, EntryCounts(r.entry))
        c.segments += n
        c.due += n * counts_as_due(r.due, r.held)
        c.failed += n * (r.failures_in_row > 0)
        c.skipped += n * (r.held == Held.TOO_FEW_ROWS)
        c.paused += n * r.paused
        c.no_data += n * r.no_data
        c.up_to_date += n * (r.model_version is not None and r.action == Action.NOTHING and not r.no_data
                             and r.failures_in_row == 0)
        if r.model_age_seconds is not None:
            c.oldest_model_age_seconds = max(c.oldest_model_age_seconds or 0.0, r.model_age_seconds)
    return list(out.values())


def check_counts(outcomes: list[Outcome]) -> list[EntryCounts]:
    """One EntryCounts per entry among the segment models of a check's outcomes."""
    out: dict[str, EntryCounts] = {}
    for o in outcomes:
        if not is_segment_name(o.model_name):
            continue
        entry = entry_of(o.model_name)
        c = out.setdefault(entry, EntryCounts(entry))
        c.segments += 1
        c.due += o.due
        c.trained += o.due and not o.failed and o.event is not None
        c.failed += o.failed
        c.skipped += o.held == Held.TOO_FEW_ROWS
        c.paused += o.held == Held.PAUSED
        c.no_data += o.action == Action.NOTHING and o.note == NO_DATA
        c.up_to_date += o.action == Action.NOTHING and o.note != NO_DATA
    return list(out.values())
