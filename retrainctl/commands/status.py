"""`retrainctl status [MODEL...]`: one row per model, changing nothing."""
import time

from ..config.records import Config
from ..core.outcomes import StatusRow
from ..observe import status as observe
from ..observe.observer import Observer
from .shell import Clock, select


def status(config: Config, names: tuple[str, ...] | list[str] | None = None,
           clock: Clock = time.time) -> list[StatusRow]:
    observer = Observer(config, clock=clock)
    return observe.status(config, select(config, names, observer), clock=clock, observer=observer)
