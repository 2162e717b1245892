"""`retrainctl status [MODEL...]`: one row per model, changing nothing."""
import logging
import time

from ..base.version import __version__
from ..config.records import Config
from ..core.outcomes import StatusRow
from ..core.values import newer_version
from ..observe import status as observe
from ..observe.observer import Observer
from .shell import Clock, select

log = logging.getLogger("retrainctl")


def status(config: Config, names: tuple[str, ...] | list[str] | None = None,
           clock: Clock = time.time) -> list[StatusRow]:
    observer = Observer(config, clock=clock)
    rows = observe.status(config, select(config, names, observer), clock=clock, observer=observer)
    newest = None
    for r in rows:
        newest = newer_version(newest, r.written_by_newer)
    if newest is not None:  # a downgrade, or two releases sharing a state dir
        log.warning("the state of %s was written by retrainctl %s, newer than this %s: upgrade before "
                    "trusting what this one says or does with it",
                    ", ".join(r.model_name for r in rows if r.written_by_newer), newest, __version__)
    return rows
