"""retrainctl: keep scikit-learn models fresh from a timer, statelessly.

Python API (the CLI calls exactly these)::

    from retrainctl import load_config, check, train, status, history, RetrainingConfig
    report = check(load_config("etc/retrainctl.yaml"), notification_callback=cb)
"""
__version__ = "0.1.0"

from .config import Config, ModelConfig, RetrainingConfig, load_config  # noqa: E402
from .errors import ConfigError, DataError, RetrainctlError, TrainingError, UsageError  # noqa: E402


def check(config, models=None, dry_run=False, notification_callback=None):
    """Evaluate and retrain what is due; returns a Report (outcomes, exit_code)."""
    from .commands import check as _check

    return _check(config, models, dry_run=dry_run, callback=notification_callback)


def train(config, model, reason=None, force=False, notification_callback=None):
    """Retrain one model now; returns its Outcome."""
    from .commands import train as _train

    return _train(config, model, reason=reason, force=force, callback=notification_callback)


def status(config, models=None):
    """One records.StatusRow per model (`to_dict()` gives the `status --json` shape)."""
    from .commands import status as _status

    return _status(config, models)


def history(config, model=None, limit=20):
    """History records (dicts, as in the state log), newest first."""
    from .commands import history as _history

    return _history(config, model, limit)


__all__ = ["Config", "ModelConfig", "RetrainingConfig", "load_config", "check", "train", "status", "history",
           "ConfigError", "DataError", "RetrainctlError", "TrainingError", "UsageError", "__version__"]
