"""Named exceptions of the library; cli.py maps them to exit codes in one place."""


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


class TrainingError(RetrainctlError):
    """A fit failed; error_type goes into the history record and the failure counter."""

    def __init__(self, message, error_type="training_error"):
        super().__init__(message)
        self.error_type = error_type


class StoreError(RetrainctlError):
    """The model store could not write (a full disk, an I/O error); error_type names the cause in
    the attempt's failure record."""

    def __init__(self, message, error_type="store_error"):
        super().__init__(message)
        self.error_type = error_type


class IntegrityError(RetrainctlError):
    """A model file does not match the checksum recorded in its metadata."""


class LockBusy(RetrainctlError):
    """Another process holds a lock we would have to wait for too long."""


class TrackingError(RetrainctlError):
    """MLflow tracking failed and the config says it must not (`mlflow.required: true`)."""
