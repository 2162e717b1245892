"""The typed records and enums that cross module seams: the state log's record (written and read
back, by one tolerant reader), a fit's result, and the words a record, a decision and a
notification use. Plain data with no heavy imports: a FitResult is pickled back from a child
process or a Dask worker."""
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..base.errors import ErrorType
from .values import finite_number, parse_iso, utcnow_iso


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


RETRAIN_STATUSES = frozenset({Status.SUCCESS, Status.FAILURE, Status.REJECTED, Status.SKIPPED})
# Outcomes of an attempt to fit; `skipped` never fitted, so it has no duration worth a bucket.
TIMED_STATUSES = (Status.SUCCESS, Status.FAILURE, Status.REJECTED)
OPERATOR_STATUSES = frozenset({Status.PAUSED, Status.RESUMED, Status.ROLLED_BACK})
HISTORY_STATUSES = RETRAIN_STATUSES | OPERATOR_STATUSES


class TriggerType(StrEnum):
    """What caused a retrain (str-valued: the log, `--json` and the metrics label hold the word)."""

    MANUAL = "manual"
    INITIAL = "initial"
    DATA_CHANGE = "data_change"
    CONFIG_CHANGE = "config_change"
    MODEL_AGE = "model_age"
    PERFORMANCE = "performance"
    DRIFT = "drift"


QUALITY_TRIGGERS = (TriggerType.PERFORMANCE, TriggerType.DRIFT)  # evaluated on recent rows (observe.evaluation)

# The trigger_type of records an operator caused (pause, resume, rollback): no trigger fired.
OPERATOR = "operator"


class Action(StrEnum):
    """What a decision ends in (the ACTION column of `check` and `status`)."""

    TRAIN = "train"
    SKIP = "skip"          # due, but fewer rows than min_data_size: one `skipped` record per data hash
    NOTHING = "none"       # nothing due
    WAIT = "wait"          # evaluated less than check_interval ago
    HOLD = "hold"          # due, but automatic retraining is paused or disabled
    BACKOFF = "backoff"    # due, but the last automatic attempt failed and the retry is not yet due
    GAVE_UP = "gave_up"    # max_retries failures for this data: waits for new data or a manual train
    UNCHANGED = "unchanged"  # due, but the training data and config are the live version's: one `skipped` record
    ERROR = "error"        # the data could not be read


class Held(StrEnum):
    """Why a model a trigger fires for is not trained now: `status`'s DUE column and the
    model_retraining_held metric say it, so neither reads as "not due"."""

    PAUSED = "paused"
    DISABLED = "disabled"
    TOO_FEW_ROWS = "too_few_rows"
    BACKOFF = "backoff"
    GAVE_UP = "gave_up"
    UNCHANGED = "unchanged"


class NotifyEvent(StrEnum):
    """The events webhooks and chat URLs can ask for (`events:`): every history status but
    `started`, a dead attempt (`interrupted`), the quality alerts and a failed systemd unit."""

    SUCCESS = "success"
    FAILURE = "failure"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"
    DRIFT = "drift"
    PERFORMANCE = "performance"
    PAUSED = "paused"
    RESUMED = "resumed"
    ROLLED_BACK = "rolled_back"
    UNIT_FAILED = "unit_failed"


# What an endpoint without `events` receives: every retraining event, not operator actions (the
# operator just did them) nor drift alerts (a five-minute timer would repeat them all day).
DEFAULT_EVENTS = (NotifyEvent.SUCCESS, NotifyEvent.FAILURE, NotifyEvent.REJECTED, NotifyEvent.SKIPPED,
                  NotifyEvent.INTERRUPTED)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


@dataclass(frozen=True)
class Record:
    """One record of the state log. History records carry every common key (None where it does
    not apply); a `started` record only what recovery needs. The fields named here are the ones
    code reads; `extra` holds the rest in the order given, which `--json` keeps.

    `from_dict` is the one reader of what is in the log, including records written by older
    versions or edited by hand: a value of the wrong type reads as None, never as an error."""

    model_name: str
    trigger_type: str                  # a TriggerType, OPERATOR, or what an older version wrote
    status: Status
    when: float | None                 # trigger_time, as Unix time
    description: str = ""
    duration: float = 0.0
    data_hash: str | None = None
    version: int | None = None
    score: float | None = None
    metric: str | None = None
    error: str | None = None
    error_type: str | None = None
    attempt_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def end_time(self) -> float | None:
        """When the record's attempt ended (trigger time plus duration)."""
        return None if self.when is None else self.when + self.duration

    @property
    def trigger_time(self) -> str | None:
        if self.raw is not None:
            return _text(self.raw.get("trigger_time"))
        return None if self.when is None else utcnow_iso(self.when)

    def get(self, key: str, default: Any = None) -> Any:
        """A field not typed above (`rows`, `quality_keys`, `previous_version`...), as written."""
        return self.extra.get(key, default)

    def int_field(self, key: str) -> int | None:
        return _int(self.extra.get(key))

    def number(self, key: str) -> float | None:
        return finite_number(self.extra.get(key))

    def to_dict(self) -> dict[str, Any]:
        """The record as the log holds it: what was read, exactly, or what is to be written."""
        if self.raw is not None:
            return dict(self.raw)
        head = {"model_name": self.model_name, "trigger_type": str(self.trigger_type),
                "trigger_time": self.trigger_time, "status": str(self.status)}
        if self.status == Status.STARTED:
            return {**head, "data_hash": self.data_hash,
                    **({"attempt_id": self.attempt_id} if self.attempt_id else {}), **self.extra}
        return {**head, "duration": self.duration, "data_hash": self.data_hash, "description": self.description,
                "version": self.version, "score": self.score, "metric": self.metric, "error": self.error,
                "error_type": None if self.error_type is None else str(self.error_type),
                **({"attempt_id": self.attempt_id} if self.attempt_id else {}), **self.extra}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Record | None":
        """The record a log line holds, or None when it is not one of ours: no model name, or a
        status this version does not know."""
        name = d.get("model_name")
        try:
            status = Status(str(d.get("status")))
        except ValueError:
            return None
        if not isinstance(name, str):
            return None
        when = None
        stamp = d.get("trigger_time")
        if isinstance(stamp, str):
            try:
                when = parse_iso(stamp)
            except (ValueError, OverflowError):
                when = None
        extra = {k: v for k, v in d.items() if k not in _TYPED}
        return cls(model_name=name, trigger_type=str(d.get("trigger_type") or "unknown"), status=status, when=when,
                   description=_text(d.get("description")) or "",
                   duration=max(0.0, finite_number(d.get("duration")) or 0.0),
                   data_hash=_text(d.get("data_hash")), version=_int(d.get("version")),
                   score=finite_number(d.get("score")), metric=_text(d.get("metric")), error=_text(d.get("error")),
                   error_type=_text(d.get("error_type")), attempt_id=_text(d.get("attempt_id")), extra=extra, raw=d)


_TYPED = frozenset({"model_name", "trigger_type", "trigger_time", "status", "description", "duration", "data_hash",
                    "version", "score", "metric", "error", "error_type", "attempt_id"})


def candidate_key(data_hash: str | None, config_hash: str | None) -> str | None:
    """What a candidate model is made from: its training data and its training config. A rejected
    candidate, a failure or an unchanged skip is remembered under this key, so that changing
    either (new data, a config edit) tries again."""
    if data_hash is None or config_hash is None:
        return data_hash
    return f"{data_hash}|{config_hash}"


def quality_fields(keys: Mapping[str, str] | None, evidence: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record fields naming the evidence a performance/drift retrain ran for, so it does not
    loop (`quality_keys`), and the tests' numbers behind it (`quality_evidence`)."""
    return {k: v for k, v in (("quality_keys", keys), ("quality_evidence", evidence)) if v}


@dataclass
class FitResult:
    """What the training task returns: the fitted pipeline's bytes, its holdout score, the
    champion's score on the same rows, and the metadata stored beside the model."""

    model_bytes: bytes
    score: float
    data_hash: str
    metadata: dict[str, Any]
    champion_score: float | None = None
    champion_error: str | None = None
    sanity_problem: str | None = None
    worker: str | None = None  # the Dask worker that ran it
    # The first training rows as the model reads them (a small DataFrame, pickled: unpickled
    # only by the MLflow tracking process, so a run without MLflow never imports pandas to read
    # a fit's result), for the MLflow signature; never stored with the model.
    input_sample: bytes | None = None


__all__ = ["Action", "DEFAULT_EVENTS", "candidate_key", "ErrorType", "FitResult", "HISTORY_STATUSES", "Held", "NotifyEvent",
           "OPERATOR", "OPERATOR_STATUSES", "RETRAIN_STATUSES", "Record", "Status", "TIMED_STATUSES",
           "TriggerType", "quality_fields"]
