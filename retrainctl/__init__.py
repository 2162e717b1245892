"""retrainctl: keep scikit-learn models fresh from a timer, statelessly.

Python API (the CLI calls exactly these)::

    from retrainctl import load_config, check, train, status, history, RetrainingConfig
    report = check(load_config("etc/retrainctl.yaml"), notification_callback=cb)
"""
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .base.errors import ConfigError, DataError, RetrainctlError, TrainingError, UsageError
from .base.version import __version__
from .config.load import load_config
from .config.records import Config, ModelConfig, RetrainingConfig

if TYPE_CHECKING:
    from .core.outcomes import CheckReport, Outcome, StatusRow


def check(config: Config, models: Sequence[str] | None = None, dry_run: bool = False,
          notification_callback: Callable[..., Any] | None = None) -> "CheckReport":
    """Evaluate and retrain what is due; returns a CheckReport (outcomes, exit_code)."""
    from .commands.check import check as _check

    return _check(config, list(models) if models else None, dry_run=dry_run, callback=notification_callback)


def train(config: Config, model: str, reason: str | None = None, force: bool = False,
          notification_callback: Callable[..., Any] | None = None) -> "Outcome":
    """Retrain one model now; returns its Outcome."""
    from .commands.train import train as _train

    return _train(config, model, reason=reason, force=force, callback=notification_callback)


def status(config: Config, models: Sequence[str] | None = None) -> "list[StatusRow]":
    """One StatusRow per model (`to_dict()` gives the `status --json` shape)."""
    from .commands.status import status as _status

    return _status(config, list(models) if models else None)


def history(config: Config, model: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """History records (dicts, as in the state log), newest first."""
    from .commands.history import history as _history

    return [record.to_dict() for record in _history(config, model, limit)]


__all__ = ["Config", "ModelConfig", "RetrainingConfig", "load_config", "check", "train", "status", "history",
           "ConfigError", "DataError", "RetrainctlError", "TrainingError", "UsageError", "__version__"]
