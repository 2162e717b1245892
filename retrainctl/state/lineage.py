"""Which versions of a model went live: the rollback target, which pruning never removes."""
from ..core.records import Status
from .log import StateLog
from .store import ModelStore


def previous_promoted(log: StateLog, store: ModelStore, name: str, current: int) -> int | None:
    """The newest version below `current` that went live (a `success` record) and is still on
    disk. Versions are numbered in the order they are trained, so reading the log backwards the
    first such record is the one: no need to read years of log."""
    on_disk = {v for v in store.versions(name) if v < current}
    if not on_disk:  # a first version (or every earlier one pruned): nothing to read the log for
        return None
    for rec in log.events(name, (Status.SUCCESS,)):
        if rec.version is not None and rec.version < current and rec.version in on_disk:
            return rec.version
    return None
