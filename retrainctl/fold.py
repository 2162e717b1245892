"""The decision fold: what the event log says about each model (paused, failures in a row,
rejected data, open attempts...), folded from its records in order. Pure: values in, values out.
Also `Fold`, the description of a fold that the event log caches in summary.json."""
from dataclasses import dataclass, field
from typing import Callable

from .events import HISTORY_STATUSES, end_time

# The fold remembers the data hashes of this many most recent rejected candidates per model
# (only the current data's matters to a decision; data reverted to a hash rejected longer ago
# than that is simply tried again).
REJECTED_KEPT = 1000


@dataclass(frozen=True)
class Fold:
    """A pure fold of the log into {model: record}, cached in its own section of summary.json,
    so a change to one fold rebuilds only its own section."""

    name: str          # its section in summary.json
    version: int       # bump when `fold` computes something else from the same records
    record: type       # the per-model dataclass (a field added to it changes the format by itself)
    fold: Callable     # fold(events, states=None) -> states, continuing `states` in place


@dataclass
class ModelState:
    """What the log says about one model: the result of folding its events in order."""

    paused: bool = False
    last_event: dict = None          # newest history record
    failures_in_row: int = 0         # automatic failures since the last success/rejection/new data
    failure_hash: str = None         # data hash those failures were for
    last_failure_time: float = None
    skipped_hash: str = None         # data hash that already got its `skipped` event
    error_signature: str = None      # last recorded data/config error, recorded once until it changes
    rejected: dict = field(default_factory=dict)  # data hash -> time of a rejected candidate
    open_attempts: dict = field(default_factory=dict)  # attempt_id -> started record
    # (trigger, evidence key) pairs a performance/drift-triggered retrain already ran for
    quality_handled: dict = field(default_factory=dict)  # trigger -> evidence key of the last retrain it caused
    # The highest store version any record names (`started` records name none), and whether a
    # version ever went live: a model folder deleted since must not hand its numbers out again,
    # and its loss is worth a warning (ModelStore.save, ModelStore.warn_if_lost).
    max_version: int = 0
    had_live: bool = False


def fold(events, states=None):
    """Fold the event log into {model_name: ModelState}. Pure: values in, values out.
    `states` continues an earlier fold (it is updated in place): fold(a + b) == fold(b, fold(a))."""
    states = {} if states is None else states
    for ev in events:
        name = ev.get("model_name")
        if not isinstance(name, str):
            continue
        st = states.setdefault(name, ModelState())
        status = ev.get("status")
        if status == "started":
            st.open_attempts[ev.get("attempt_id")] = ev
            continue
        st.open_attempts.pop(ev.get("attempt_id"), None)
        if status not in HISTORY_STATUSES:
            continue
        st.last_event = ev
        version = ev.get("version")
        if type(version) is int and version > st.max_version:
            st.max_version = version
        if status in ("success", "rolled_back"):
            st.had_live = True
        when = end_time(ev)
        data_hash = ev.get("data_hash")
        if status in ("success", "rejected"):
            st.quality_handled.update(ev.get("quality_keys") or {})
        if status == "rolled_back" and ev.get("abandoned_data_hash"):
            # The data of the version an operator rolled back from counts as rejected: the rollback
            # sticks until new data arrives, instead of being undone by the next check.
            _remember_rejected(st, ev["abandoned_data_hash"], when)
        if status == "paused":
            st.paused = True
        elif status == "resumed":
            st.paused = False
        elif status == "success":
            st.failures_in_row = 0
            st.failure_hash = None
            st.error_signature = None
        elif status == "rejected":
            st.failures_in_row = 0
            st.failure_hash = None
            _remember_rejected(st, data_hash, when)
        elif status == "failure":
            if ev.get("error_signature"):
                st.error_signature = ev["error_signature"]
            if ev.get("trigger_type") != "manual":
                if st.failure_hash != data_hash:
                    st.failures_in_row = 0
                st.failures_in_row += 1
                st.failure_hash = data_hash
                st.last_failure_time = when
        elif status == "skipped":
            st.skipped_hash = data_hash
    return states


def _remember_rejected(st, data_hash, when):
    st.rejected.pop(data_hash, None)
    st.rejected[data_hash] = when
    if len(st.rejected) > REJECTED_KEPT:  # years of rejections must not grow every read
        del st.rejected[next(iter(st.rejected))]


# 4 held the metrics' running totals too; they are their own fold now (metrics_totals.py).
DECISION = Fold("decision", 5, ModelState, fold)
