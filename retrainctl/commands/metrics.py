"""`retrainctl metrics`: the Prometheus exposition of the state now, printed, pushed or written."""
from ..config.records import Config
from ..publish import metrics


def metrics_command(config: Config, push: bool = False, textfile: str | None = None) -> bytes | None:
    """The exposition (None when it was only pushed or written); a failed push or write raises."""
    registry = metrics.build_registry(config)
    if textfile:
        metrics.write_textfile(textfile, registry)
    if push:
        metrics.push(config, registry)
    return None if (push or textfile) else metrics.exposition(registry)
