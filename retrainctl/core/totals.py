"""The metrics' running totals: retrains by trigger, outcome and error type, duration histograms
and the last success, folded from the event log like the decision state but apart from it, so the
export after every run reads only the log's tail and a metrics change leaves the decision cache
alone. Pure: values in, values out."""
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .fold import Fold
from .records import RETRAIN_STATUSES, TIMED_STATUSES, Record, Status
from .segment_names import entry_of, is_segment_name

# Buckets of the duration histograms (metrics.py). Training takes seconds to hours: one bucket
# per step an operator would name.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)


# [count, sum, count per bucket of DURATION_BUCKETS]: a list, as summary.json keeps it.
Histogram = list[Any]


@dataclass
class ModelTotals:
    """What the Prometheus counters and histograms say about one model, since its first record."""

    triggered: dict[str, int] = field(default_factory=dict)   # trigger_type -> retraining events
    successes: int = 0
    rejections: int = 0
    failures: dict[str, int] = field(default_factory=dict)    # error_type -> failures
    durations: dict[str, Histogram] = field(default_factory=dict)       # status -> histogram
    executor_times: dict[str, Histogram] = field(default_factory=dict)  # executor -> histogram
    last_success_time: float | None = None                    # when the newest success ended


def fold_totals(records: Iterable[Record], totals: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fold the event log into {model_name: ModelTotals}; like fold.fold, `totals` continues an
    earlier fold in place."""
    totals = {} if totals is None else totals
    for ev in records:
        status = ev.status
        if status not in RETRAIN_STATUSES:
            continue
        t = totals.setdefault(ev.model_name, ModelTotals())
        trigger = ev.trigger_type
        t.triggered[trigger] = t.triggered.get(trigger, 0) + 1
        if status == Status.SUCCESS:
            t.successes += 1
            t.last_success_time = ev.end_time
        elif status == Status.REJECTED:
            t.rejections += 1
        elif status == Status.FAILURE:
            kind = ev.error_type or "unknown"
            t.failures[kind] = t.failures.get(kind, 0) + 1
        if status in TIMED_STATUSES:
            _observe(t.durations, status, ev.duration)
            ran = ev.number("executor_seconds")
            if ran is not None:  # records from before executors were recorded have no such field
                _observe(t.executor_times, str(ev.get("executor") or "local"), max(0.0, ran))
    return totals


def _observe(histograms: dict[str, Histogram], key: str, value: float) -> None:
    hist = histograms.get(key)
    if hist is None:
        hist = histograms[key] = [0, 0.0, [0] * len(DURATION_BUCKETS)]
    hist[0] += 1
    hist[1] += value
    for i, bound in enumerate(DURATION_BUCKETS):
        if value <= bound:
            hist[2][i] += 1


def copy_totals(t: ModelTotals) -> ModelTotals:
    """ModelTotals that fold_totals can continue without changing `t` (see fold.copy_state)."""
    def histograms(hs: dict[str, Histogram]) -> dict[str, Histogram]:
        return {key: [h[0], h[1], list(h[2])] for key, h in hs.items()}

    return replace(t, triggered=dict(t.triggered), failures=dict(t.failures), durations=histograms(t.durations),
                   executor_times=histograms(t.executor_times))


TOTALS = Fold("metrics_totals", 1, ModelTotals, fold_totals, copy=copy_totals)


def fold_entry_totals(records: Iterable[Record], totals: dict[str, Any] | None = None) -> dict[str, Any]:
    """The running totals of segments summed per entry ({entry: ModelTotals}), folded record by
    record: an entry's series need its sums, not ten thousand segments' totals. Sums of counts
    that only grow only grow, so an entry's counters never reset, also when a segment leaves the
    data (its records stay in the log)."""
    totals = {} if totals is None else totals
    for ev in records:
        entry = _entry_key(ev.model_name)
        if entry is None or ev.status not in RETRAIN_STATUSES:
            continue
        add_totals(totals.setdefault(entry, ModelTotals()), fold_totals((ev,))[ev.model_name])
    return totals


def _entry_key(model_name: str) -> str | None:
    return entry_of(model_name) if is_segment_name(model_name) else None


ENTRY_TOTALS = Fold("entry_totals", 1, ModelTotals, fold_entry_totals, key=_entry_key, copy=copy_totals)


def add_totals(s: ModelTotals, t: ModelTotals) -> None:
    """Add the totals `t` into `s`."""
    for trigger, n in t.triggered.items():
        s.triggered[trigger] = s.triggered.get(trigger, 0) + n
    s.successes += t.successes
    s.rejections += t.rejections
    for kind, n in t.failures.items():
        s.failures[kind] = s.failures.get(kind, 0) + n
    _add(s.durations, t.durations)
    _add(s.executor_times, t.executor_times)
    if t.last_success_time is not None:
        s.last_success_time = max(s.last_success_time or t.last_success_time, t.last_success_time)


def _add(into: dict[str, Histogram], histograms: dict[str, Histogram]) -> None:
    for key, (count, total, per_bucket) in histograms.items():
        hist = into.get(key)
        if hist is None:
            hist = into[key] = [0, 0.0, [0] * len(DURATION_BUCKETS)]
        hist[0] += count
        hist[1] += total
        hist[2] = [a + b for a, b in zip(hist[2], per_bucket)]
