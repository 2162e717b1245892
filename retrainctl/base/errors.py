"""Named exceptions of the library, and the error types a failure record names; cli.py maps the
exceptions to exit codes in one place."""
from enum import StrEnum


class ErrorType(StrEnum):
    """Why an attempt produced no candidate (a `failure` record's `error_type`, the
    `model_retraining_failure_total{error_type}` label), or why one was skipped."""

    DATA_ERROR = "data_error"          # the data could not be read or does not fit the config
    CONFIG_ERROR = "config_error"      # the config names something that cannot work (found at fit time)
    TRAINING_ERROR = "training_error"  # the training code raised
    FIT_ERROR = "fit_error"            # the estimator's fit refused the data
    TIMEOUT = "timeout"
    MEMORY = "memory"
    CRASHED = "crashed"                # the fit process died without answering
    INTERRUPTED = "interrupted"        # the attempt's process died; recorded by the next run
    INTERNAL = "internal"              # a bug between the fit and its record
    TRACKING = "tracking"              # MLflow failed with mlflow.required
    EXECUTOR_ERROR = "executor_error"
    NO_WORKERS = "no_workers"
    SCHEDULER_LOST = "scheduler_lost"
    WORKER_LOST = "worker_lost"
    DISK_FULL = "disk_full"
    STORE_ERROR = "store_error"
    ERROR = "error"                    # an error of no known kind
    UNIT_FAILED = "unit_failed"        # `notify-failure`: a systemd unit failed
    # Not failures: the error_type of a `skipped` record.
    DATA_CHANGED = "data_changed"      # the data changed between the decision and the fit
    TOO_FEW_ROWS = "too_few_rows"
    UNCHANGED = "unchanged"            # training data and config are those of the live version


# The error types of `failure` records, pre-created at 0 in the metrics so that rate() and
# increase() see the first one.
FAILURE_TYPES = tuple(t for t in ErrorType if t not in (ErrorType.DATA_CHANGED, ErrorType.TOO_FEW_ROWS,
                                                         ErrorType.UNCHANGED, ErrorType.UNIT_FAILED))


class RetrainctlError(Exception):
    """Base class; exit code 1 unless a subclass says otherwise."""

    exit_code = 1


class ConfigError(RetrainctlError):
    """The config file is missing, unparsable or invalid (exit 2)."""

    exit_code = 2


class UsageError(RetrainctlError):
    """The command asked for something that does not exist (exit 2)."""

    exit_code = 2


class DataError(RetrainctlError):
    """A data file is missing, unreadable or does not fit the model's config."""

    error_type = ErrorType.DATA_ERROR


class TrainingError(RetrainctlError):
    """A fit failed; error_type goes into the history record and the failure counter."""

    def __init__(self, message: str, error_type: ErrorType = ErrorType.TRAINING_ERROR) -> None:
        super().__init__(message)
        self.error_type = ErrorType(error_type)


class StoreError(RetrainctlError):
    """The model store could not write (a full disk, an I/O error); error_type names the cause in
    the attempt's failure record."""

    def __init__(self, message: str, error_type: ErrorType = ErrorType.STORE_ERROR) -> None:
        super().__init__(message)
        self.error_type = ErrorType(error_type)


class IntegrityError(RetrainctlError):
    """A model file does not match the checksum recorded in its metadata."""


class LockBusy(RetrainctlError):
    """Another process holds a lock we would have to wait for too long."""


class TrackingError(RetrainctlError):
    """MLflow tracking failed and the config says it must not (`mlflow.required: true`)."""


def error_type_of(exc: BaseException, default: ErrorType = ErrorType.ERROR) -> ErrorType:
    """The ErrorType an exception names (TrainingError, StoreError, DataError), else `default`."""
    kind = getattr(exc, "error_type", None)
    try:
        return ErrorType(kind) if kind is not None else default
    except ValueError:
        return default
