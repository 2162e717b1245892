"""checks.json, the scheduling cache: when each model was last evaluated, so check_interval holds
across stateless runs."""
import logging
import os

from .fsutil import atomic_write_json, read_json
from .locks import LOCK_TIMEOUT, flocked

log = logging.getLogger(__name__)

CHECKS_FILE = "checks.json"


class ScheduleCache:
    """A cache, not history: losing it, or failing to write it, only means models are evaluated
    once more."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, CHECKS_FILE)
        self.lock_path = os.path.join(state_dir, "checks.lock")

    def load(self):
        data = read_json(self.path, default={}) or {}
        return data if isinstance(data, dict) else {}

    def record(self, evaluated):
        """Merge {model: time} into the cache (read-modify-write under its lock). A disk that
        cannot take it is a warning: the run's real work is recorded in the event log."""
        if not evaluated:
            return
        try:
            with flocked(self.lock_path, LOCK_TIMEOUT):
                data = self.load()
                data.update(evaluated)
                atomic_write_json(self.path, data, durable=False)
        except OSError as exc:
            log.warning("%s: not updated: %s", exc.filename or self.path, exc.strerror or exc)
