"""`retrainctl status [MODEL...]`: one row per model, changing nothing."""
import logging
import os
import time

from ..base.version import __version__
from ..config.records import Config
from ..core.outcomes import EntryCounts, StatusRow
from ..core.values import newer_version
from ..observe import status as observe
from ..observe.observer import Observer
from ..observe.quiet import Quiet
from ..state.log import StateLog
from .shell import Clock, select

log = logging.getLogger("retrainctl")


def status(config: Config, names: tuple[str, ...] | list[str] | None = None,
           clock: Clock = time.time) -> list[StatusRow]:
    observer = Observer(config, clock=clock)
    rows = observe.status(config, select(config, names, observer), clock=clock, observer=observer)
    _warn_if_newer(rows)
    return rows


def overview(config: Config, clock: Clock = time.time) -> tuple[list[StatusRow], list[EntryCounts]]:
    """`status` without names, as its table shows it: a row per declared model, and per entry
    with `segment_by` the counts of its segments (observe.status.entry_counts), without a row
    per segment."""
    observer = Observer(config, clock=clock)
    log_ = StateLog(config.state_dir)
    quiet = Quiet(config, log_, observer.fingerprints, clock)
    standing = quiet.standing(config.models.values()) if os.path.isdir(config.state_dir) else {}
    models = select(config, None, observer, skip=standing)
    states = log_.states() if models and os.path.isdir(config.state_dir) else {}
    rows = observe.status(config, [m for m in models if m.entry is None], clock=clock, states=states,
                          observer=observer)
    counts = observe.entry_counts(config, [m for m in models if m.entry is not None], observer, states)
    if standing:
        now = clock()
        known = {c.entry: c for c in counts}
        known.update((entry, quiet.counts(entry, mark, now)) for entry, mark in standing.items())
        counts = [known[e] for e in config.models if e in known]
    if quiet.marks.dirty:
        quiet.marks.save()
    _warn_if_newer(rows)
    return rows, counts


def _warn_if_newer(rows: list[StatusRow]) -> None:
    newest = None
    for r in rows:
        newest = newer_version(newest, r.written_by_newer)
    if newest is not None:  # a downgrade, or two releases sharing a state dir
        log.warning("the state of %s was written by retrainctl %s, newer than this %s: upgrade before "
                    "trusting what this one says or does with it",
                    ", ".join(r.model_name for r in rows if r.written_by_newer), newest, __version__)
