"""`retrainctl config [--model M]`: the effective config, after the checks only imports can make."""
from typing import Any

from ..config.load import effective
from ..config.records import Config
from ..fit.task import validate_models


def show(config: Config, model: str | None = None) -> dict[str, Any]:
    """The effective config as plain data (defaults merged, paths absolute, secrets redacted);
    ConfigError where an estimator, its params or a trainer cannot work."""
    validate_models(config)
    return effective(config, model)
