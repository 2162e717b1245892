"""The decision fold: what the event log says about each model (paused, failures in a row,
rejected data, open attempts...), folded from its records in order. Pure: values in, values out.
Also `Fold`, the description of a fold that the event log caches in summary.json."""
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ..base.errors import ErrorType
from .records import HISTORY_STATUSES, Record, Status, TriggerType, candidate_key
from .values import newer_version

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
    fold: Callable[[Iterable[Record], dict[str, Any]], dict[str, Any]]  # continues the states in place
    # the key a record of a model is folded under, when not the model's name (None: not folded)
    key: Callable[[str], str | None] | None = None
    # a copy of one model's record that `fold` can change without changing the original (the
    # event log copies a record a caller may hold before folding a newer line into it)
    copy: Callable[[Any], Any] | None = None

    def key_of(self, model_name: str) -> str | None:
        return model_name if self.key is None else self.key(model_name)


@dataclass
class ModelState:
    """What the log says about one model: the result of folding its events in order."""

    paused: bool = False
    last_event: Record | None = None  # newest history record
    failures_in_row: int = 0          # automatic failures since the last success/rejection/new data
    failure_hash: str | None = None   # candidate (data and config, core.records.candidate_key) those failures were for
    last_failure_time: float | None = None
    skipped_hash: str | None = None   # data hash that already got its `skipped` event
    error_signature: str | None = None  # last recorded data/config error, recorded once until it changes
    # candidate key (or a data hash, from records before config hashes) -> when a candidate made of
    # it was rejected, rolled back from, or found unchanged
    rejected: dict[str | None, float | None] = field(default_factory=dict)
    open_attempts: dict[str | None, Record] = field(default_factory=dict)  # attempt_id -> started record
    # trigger -> evidence key of the last performance/drift retrain it caused
    quality_handled: dict[str, str] = field(default_factory=dict)
    # The highest store version any record names (`started` records name none), and whether a
    # version ever went live: a model folder deleted since must not hand its numbers out again,
    # and its loss is worth a warning (ModelStore.save, ModelStore.warn_if_lost).
    max_version: int = 0
    had_live: bool = False
    newest_writer: str | None = None  # the newest retrainctl release that wrote one of its records


def fold(records: Iterable[Record], states: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fold the event log into {model_name: ModelState}. Pure: values in, values out.
    `states` continues an earlier fold (it is updated in place): fold(a + b) == fold(b, fold(a))."""
    states = {} if states is None else states
    for ev in records:
        st = states.setdefault(ev.model_name, ModelState())
        status = ev.status
        if "retrainctl_version" in ev.extra:
            st.newest_writer = newer_version(st.newest_writer, ev.extra["retrainctl_version"])
        if status == Status.STARTED:
            st.open_attempts[ev.attempt_id] = ev
            continue
        st.open_attempts.pop(ev.attempt_id, None)
        if status not in HISTORY_STATUSES:
            continue
        st.last_event = ev
        if ev.version is not None and ev.version > st.max_version:
            st.max_version = ev.version
        if status in (Status.SUCCESS, Status.ROLLED_BACK):
            st.had_live = True
        when = ev.end_time
        data_hash = ev.data_hash
        config_hash = ev.get("config_hash") if isinstance(ev.get("config_hash"), str) else None
        key = candidate_key(data_hash, config_hash)
        unchanged = status == Status.SKIPPED and ev.error_type == ErrorType.UNCHANGED
        if status in (Status.SUCCESS, Status.REJECTED) or unchanged:
            keys = ev.get("quality_keys")
            if isinstance(keys, dict):
                st.quality_handled.update(keys)
        if status == Status.ROLLED_BACK and ev.get("abandoned_data_hash"):
            # The data of the version an operator rolled back from counts as rejected: the rollback
            # sticks until new data arrives, instead of being undone by the next check.
            abandoned_config = ev.get("abandoned_config_hash")
            _remember_rejected(st, candidate_key(ev.get("abandoned_data_hash"),
                                                 abandoned_config if isinstance(abandoned_config, str) else None), when)
        if status == Status.PAUSED:
            st.paused = True
        elif status == Status.RESUMED:
            st.paused = False
        elif status == Status.SUCCESS:
            st.failures_in_row = 0
            st.failure_hash = None
            st.error_signature = None
        elif status == Status.REJECTED:
            st.failures_in_row = 0
            st.failure_hash = None
            _remember_rejected(st, key, when)
        elif status == Status.FAILURE:
            if ev.get("error_signature"):
                st.error_signature = ev.get("error_signature")
            if ev.trigger_type != TriggerType.MANUAL:
                if st.failure_hash != key:
                    st.failures_in_row = 0
                st.failures_in_row += 1
                st.failure_hash = key
                st.last_failure_time = when
        elif unchanged:
            # Nothing was trained on purpose: like a rejection, it resets the age clock and is not
            # tried again on the same data and config.
            _remember_rejected(st, key, when)
        elif status == Status.SKIPPED:
            st.skipped_hash = data_hash
    return states


def _remember_rejected(st: ModelState, data_hash: str | None, when: float | None) -> None:
    st.rejected.pop(data_hash, None)
    st.rejected[data_hash] = when
    if len(st.rejected) > REJECTED_KEPT:  # years of rejections must not grow every read
        del st.rejected[next(iter(st.rejected))]


def copy_state(st: ModelState) -> ModelState:
    """A ModelState that `fold` can continue without changing `st`: its containers copied, the
    records in them shared (Records are frozen). A deep copy of each model's records cost a
    round of ten thousand segments seconds."""
    return replace(st, rejected=dict(st.rejected), open_attempts=dict(st.open_attempts),
                   quality_handled=dict(st.quality_handled))


# 4 held the metrics' running totals too (they are their own fold now, totals.py); 6 keeps
# typed records (last_event, open_attempts) where 5 kept the log's dicts; 7 keys rejections and
# failures by data and config.
DECISION = Fold("decision", 8, ModelState, fold, copy=copy_state)
