"""The typed records that cross module seams: a fit's result, a history event, a command's
outcome and a model's status row. Plain data with no heavy imports: a FitResult is pickled
back from a child process or a Dask worker."""
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Optional

from . import triggers
from .events import utcnow_iso

# The trigger type of events an operator caused (pause, resume, rollback): no trigger fired.
OPERATOR = "operator"


class Status(StrEnum):
    """The `status` of a state-log record (str-valued: the log and `--json` hold the plain word)."""

    STARTED = "started"
    SUCCESS = "success"
    FAILURE = "failure"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    PAUSED = "paused"
    RESUMED = "resumed"
    ROLLED_BACK = "rolled_back"


@dataclass
class FitResult:
    """What the training task returns: the fitted pipeline's bytes, its holdout score, the
    champion's score on the same rows, and the metadata stored beside the model."""

    model_bytes: bytes
    score: float
    data_hash: str
    metadata: dict
    champion_score: Optional[float] = None
    champion_error: Optional[str] = None
    sanity_problem: Optional[str] = None
    worker: Optional[str] = None  # the Dask worker that ran it


@dataclass
class Event:
    """One state-log record. History records carry every common key (None when it does not
    apply); a `started` record only what recovery needs. `extra` holds the rest (attempt id,
    rows, promotion, tracking ids, ...) in the order given, which `--json` keeps."""

    model_name: str
    trigger_type: str
    status: Status
    when: float
    description: str = ""
    duration: float = 0.0
    data_hash: Optional[str] = None
    version: Optional[int] = None
    score: Optional[float] = None
    metric: Optional[str] = None
    error: Optional[str] = None
    error_type: Optional[str] = None
    extra: dict = field(default_factory=dict)

    def to_dict(self):
        head = {"model_name": self.model_name, "trigger_type": self.trigger_type,
                "trigger_time": utcnow_iso(self.when), "status": self.status}
        if self.status == Status.STARTED:
            return {**head, "data_hash": self.data_hash, **self.extra}
        return {**head, "duration": self.duration, "data_hash": self.data_hash, "description": self.description,
                "version": self.version, "score": self.score, "metric": self.metric, "error": self.error,
                "error_type": self.error_type, **self.extra}


@dataclass
class Outcome:
    """What happened to one model in one command."""

    model_name: str
    action: str
    reasons: tuple = ()
    note: str = ""
    result: str = ""
    event: Optional[Event] = None
    failed: bool = False
    held: Optional[str] = None  # see triggers.HELD

    @classmethod
    def of(cls, model_name, decision, result="", event=None, failed=False):
        """The outcome of acting on `decision`."""
        return cls(model_name, decision.action, decision.reasons, decision.note, result, event, failed,
                   decision.held)

    @property
    def due(self):
        return self.action == triggers.TRAIN

    @property
    def record(self):
        """The event as written to the log, or None when nothing was recorded."""
        return self.event.to_dict() if self.event is not None else None

    def to_dict(self):
        return {
            "model_name": self.model_name,
            "due": self.due,
            "held": self.held,
            "due_reasons": reasons_dict(self.reasons),
            "action": self.action,
            "note": self.note,
            "result": self.result,
            "failed": self.failed,
            "event": self.record,
        }


def reasons_dict(reasons):
    return [{"trigger_type": r.trigger_type, "description": r.description} for r in reasons]


@dataclass
class Report:
    """A `check`'s outcomes, and what it observed of each model (handed to the metrics export)."""

    outcomes: list = field(default_factory=list)
    dry_run: bool = False
    observed: dict = field(default_factory=dict)  # model name -> triggers.Observation

    @property
    def exit_code(self):
        if any(o.failed for o in self.outcomes):
            return 1
        if self.dry_run and any(o.due for o in self.outcomes):
            return 3
        return 0


@dataclass
class StatusRow:
    """One model in `status`: data, current version, age, due and why, last event, failures,
    training now, and the quality checks' columns (evaluation.STATUS_FIELDS, in `quality`)."""

    model_name: str
    data_path: str
    data_rows: Optional[int]
    data_files: Optional[int]       # a data set's file count; None for one file
    new_files: Optional[list]       # a set's files the current model was not trained on
    data_hash: Optional[str]
    data_error: Optional[str]
    data_changed: Optional[bool]
    model_version: Optional[int]
    model_age_seconds: Optional[float]
    metric: str
    score: Optional[float]
    columns: Optional[dict]
    mlflow_run_id: Optional[str]
    mlflow_model_version: Optional[int]
    due: bool
    held: Optional[str]
    due_reasons: tuple
    action: str
    note: str
    paused: bool
    auto_retraining: bool
    failures_in_row: int
    next_retry: Optional[str]
    model_integrity: Optional[str]
    model_dir_missing: Optional[bool]
    training_now: bool
    last_event: Optional[dict]
    quality: dict
    executing: Optional[dict] = None
    registry_champion_version: Optional[int] = None  # what MLflow's `champion` names (tracking.registry_state)
    registry_in_sync: Optional[bool] = None

    def to_dict(self):
        row = {name: getattr(self, name) for name in _ROW_KEYS}
        row["due_reasons"] = reasons_dict(self.due_reasons)
        return dict(row, **self.quality, executing=self.executing)


_ROW_KEYS = ("model_name", "data_path", "data_rows", "data_files", "new_files", "data_hash", "data_error",
             "data_changed", "model_version", "model_age_seconds", "metric", "score", "columns", "mlflow_run_id",
             "mlflow_model_version", "due", "held", "due_reasons", "action", "note", "paused", "auto_retraining",
             "failures_in_row", "next_retry", "model_integrity", "model_dir_missing", "training_now", "last_event",
             "registry_champion_version", "registry_in_sync")


def quality_fields(keys, evidence=None):
    """The record fields naming the evidence a performance/drift retrain ran for, so it does not
    loop (`quality_keys`), and the tests' numbers behind it (`quality_evidence`)."""
    return {k: v for k, v in (("quality_keys", keys), ("quality_evidence", evidence)) if v}
