"""The metrics' running totals: retrains by trigger, outcome and error type, duration histograms
and the last success, folded from the event log like the decision state but apart from it, so the
export after every run reads only the log's tail and a metrics change leaves the decision cache
alone. Pure: values in, values out."""
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .fold import Fold
from .records import RETRAIN_STATUSES, TIMED_STATUSES, Record, Status

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


TOTALS = Fold("metrics_totals", 1, ModelTotals, fold_totals)
