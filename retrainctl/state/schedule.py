"""checks.json, the scheduling cache: when each model was last evaluated, so check_interval holds
across stateless runs."""
import os

from ..base.fsutil import atomic_write_json, best_effort, read_json
from ..base.locks import LOCK_TIMEOUT, flocked

CHECKS_FILE = "checks.json"


class ScheduleCache:
    """A cache, not history: losing it, or failing to write it, only means models are evaluated
    once more."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, CHECKS_FILE)
        self.lock_path = os.path.join(state_dir, "checks.lock")

    def load(self) -> dict[str, float]:
        data = read_json(self.path, default={}) or {}
        return data if isinstance(data, dict) else {}

    def record(self, evaluated: dict[str, float]) -> None:
        """Merge {model: time} into the cache (read-modify-write under its lock). A disk that
        cannot take it is a warning: the run's real work is recorded in the event log."""
        if not evaluated:
            return
        with best_effort(self.path), flocked(self.lock_path, LOCK_TIMEOUT):
            data = self.load()
            data.update(evaluated)
            atomic_write_json(self.path, data, durable=False)
