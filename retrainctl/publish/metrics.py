"""Prometheus metrics: each run builds a fresh CollectorRegistry from the state log and the model
store, so counters computed from the whole recorded history keep rising across stateless runs.
The registry is printed, pushed to a Pushgateway (PUT, one group per host) or written atomically
for node_exporter's textfile collector.

prometheus_client is imported inside the functions: a run that exports nothing never loads it."""
import dataclasses
import functools
import http.client
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..base.errors import FAILURE_TYPES, ConfigError, DataError, RetrainctlError, UsageError
from ..base.fsutil import atomic_write, read_json
from ..base.secrets import read_secret, redact, split_credentials
from ..config.records import Config, ModelConfig
from ..core import decide
from ..core.decide import Observation
from ..core.fold import DECISION, ModelState
from ..core.records import TIMED_STATUSES, Held, TriggerType, candidate_key
from ..core.outcomes import StatusRow, status_counts
from ..core.segment_names import entry_key
from ..core.totals import DURATION_BUCKETS, ENTRY_TOTALS, TOTALS, ModelTotals
from ..data import datasets
from ..core.values import finite_number as _number
from ..observe.fleet import Fleet, segmented
from ..observe.observer import Observer
from ..observe.quiet import Quiet, QuietSummary
from ..observe.status import SegmentCount, status
from ..state.log import StateLog
from ..state.schedule import CHECKS_FILE
from ..state.store import ModelStore

log = logging.getLogger(__name__)


class PushError(RetrainctlError):
    """The Pushgateway could not be reached or refused the push."""


@dataclass(frozen=True)
class ModelView:
    """What is true of one configured model now; gathered by the shell for the pure core. An entry
    with segment_by is one too (`entry` set), its fields summing up its segments; the fields that
    say nothing about a fleet (due, held, failures in a row, score, drift) are left out for it."""

    name: str
    max_age_seconds: float
    data_rows: int | None = None
    due: bool = False
    held: Held | None = None               # why a due model is not trained now
    paused: bool = False
    failures_in_row: int = 0
    trained_at: float | None = None
    score: float | None = None
    metric: str | None = None
    data_unavailable: bool = False
    auto_retraining: bool = True
    check_interval: float | None = None
    age_clock_start: float | None = None
    last_failure_time: float | None = None
    drifted: bool | None = None            # None: no drift_path, or not enough rows to judge
    drifted_features: tuple[tuple[str, float], ...] = ()  # (feature, PSI) of the features that drifted
    registry_in_sync: bool | None = None   # None: MLflow off, or nothing recorded yet
    data_changed_at: float | None = None   # the newest modification time of its data files
    entry: "EntrySegments | None" = None   # an entry with segment_by: its segments counted


@dataclass(frozen=True)
class EntrySegments:
    """An entry's segments by state, as `status` counts them (core.outcomes.EntryCounts; a segment
    may be in several states), and how many have a quality alert open, by check."""

    counts: dict[str, int]                 # state (SEGMENT_STATES) -> segments
    segments: int = 0
    alerting: dict[str, int] = field(default_factory=dict)  # "performance" / "drift" -> segments


# The states of retrainctl_segments, as status's per-entry columns (EntryCounts' fields).
SEGMENT_STATES = ("up_to_date", "due", "failed", "skipped", "paused", "no_data")
QUALITY_CHECKS = {"performance": "degraded", "drift": "drifted"}  # check -> its status field that says "alert open"


def families(totals: dict[str, ModelTotals], views: list[ModelView], now: float,
             last_check: float | None = None) -> list[Any]:
    """The metric families for these running totals (core.totals.fold_totals) and model views.
    Pure: values in, values out. Only configured models (the views) are exported."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    from prometheus_client.utils import floatToGoString

    names = [v.name for v in views]
    # Every trigger type's series exists from the start at 0, so rate() and increase() see the first event.
    triggered = Counter({(n, t.value): 0 for n in names for t in TriggerType})
    success, rejected = Counter(dict.fromkeys(names, 0)), Counter(dict.fromkeys(names, 0))
    failures = Counter({(n, str(e)): 0 for n in names for e in FAILURE_TYPES})
    durations: dict[tuple[str, str], Any] = {(n, str(s)): (0, 0.0, [0] * len(DURATION_BUCKETS))
                                             for n in names for s in TIMED_STATUSES}
    executor_times: dict[tuple[str, str], Any] = {}
    for name in names:
        st = totals.get(name)
        if st is None:
            continue
        for trigger, n in st.triggered.items():
            triggered[name, trigger] += n
        success[name] += st.successes
        rejected[name] += st.rejections
        for kind, n in st.failures.items():
            failures[name, kind] += n
        for outcome, hist in st.durations.items():
            durations[name, outcome] = hist
        for executor, hist in st.executor_times.items():
            executor_times[name, executor] = hist

    def counter(metric, doc, labels, counts):
        fam = CounterMetricFamily(metric, doc, labels=labels)
        for key, value in sorted(counts.items()):
            fam.add_metric(list(key) if isinstance(key, tuple) else [key], value)
        return fam

    out = [
        counter("model_retraining_triggered_total",
                "Retraining events by trigger: every recorded success, failure, rejection or skip.",
                ["model_name", "trigger_type"], triggered),
        counter("model_retraining_success_total", "Retrains whose candidate was promoted.",
                ["model_name"], success),
        counter("model_retraining_failure_total", "Retrains that produced no candidate, by error type.",
                ["model_name", "error_type"], failures),
        counter("model_retraining_rejected_total", "Retrains whose candidate the promotion gate rejected.",
                ["model_name"], rejected),
    ]
    def histogram(metric, doc, label, samples):
        hist = HistogramMetricFamily(metric, doc, labels=["model_name", label])
        for key, (count, total, per_bucket) in sorted(samples.items()):
            buckets = [(floatToGoString(b), n) for b, n in zip(DURATION_BUCKETS, per_bucket)]
            hist.add_metric(list(key), buckets + [("+Inf", count)], total)
        return hist

    out.append(histogram("model_retraining_duration_seconds", "Wall time of each retraining attempt, by outcome.",
                         "status", durations))
    out.append(histogram("model_retraining_executor_seconds",
                         "Seconds each fit ran on its executor (local child process or Dask worker).",
                         "executor", executor_times))

    def gauge(metric, doc, value_of, extra=None):
        fam = GaugeMetricFamily(metric, doc, labels=["model_name"] + ([extra[0]] if extra else []))
        for v in views:
            value = value_of(v)
            if value is not None:
                fam.add_metric([v.name] + ([extra[1](v)] if extra else []), value)
        return fam

    out += [
        gauge("model_age_seconds", "Seconds since the current model was trained.",
              lambda v: max(0.0, now - v.trained_at) if v.trained_at is not None else None),
        gauge("model_max_age_seconds", "The model's max_model_age_hours, in seconds.", lambda v: v.max_age_seconds),
        gauge("model_last_retraining_success_timestamp_seconds", "Unix time the last successful retrain ended.",
              lambda v: getattr(totals.get(v.name), "last_success_time", None)),
        gauge("model_score", "Holdout score of the current model, in its metric.",
              lambda v: v.score, extra=("metric", lambda v: v.metric or "unknown")),
        gauge("model_data_rows", "Data rows in the model's data file.", lambda v: v.data_rows),
        gauge("model_retraining_due", "1 if a trigger fires now, even if a pause, backoff or too few rows hold it "
              "(model_retraining_held says which).", lambda v: None if v.entry else float(v.due)),
        gauge("model_retraining_paused", "1 if automatic retraining is paused (an entry: all of its segments).",
              lambda v: float(v.paused)),
        gauge("model_retraining_consecutive_failures", "Automatic retrains that failed in a row on the same data.",
              lambda v: None if v.entry else v.failures_in_row),
    ]
    out.append(gauge("model_input_drifted", "1 if the drift test finds the model's recent inputs drifted "
                     "(significant and PSI at least drift_threshold), 0 if not; absent when not evaluated.",
                     lambda v: None if v.drifted is None else float(v.drifted)))
    held = GaugeMetricFamily("model_retraining_held", "1 for the reason a model a trigger fires for is not "
                             "trained now (status's DUE column): paused, disabled, too_few_rows, backoff, gave_up.",
                             labels=["model_name", "reason"])
    for v in views:
        for reason in Held if v.entry is None else ():
            held.add_metric([v.name, reason], float(v.held == reason))
    out.append(held)
    psi = GaugeMetricFamily("model_feature_drift_psi", "PSI of each drifted feature of the model's recent inputs.",
                            labels=["model_name", "feature"])
    for v in views:
        for feature, value in v.drifted_features:
            psi.add_metric([v.name, feature], value)
    out.append(psi)
    last = GaugeMetricFamily("retrainctl_last_check_timestamp_seconds",
                             "Unix time a `retrainctl check` last evaluated a model.")
    if last_check is not None:
        last.add_metric([], last_check)
    out.append(last)
    return out + alert_gauges(views) + segment_families(views)


def segment_families(views: list[ModelView]) -> list[Any]:
    """Per entry with segment_by, at a few series however many segments it has: its segments by
    state, how many there are, and how many have a performance or drift alert open."""
    from prometheus_client.core import GaugeMetricFamily

    entries = [v for v in views if v.entry is not None]
    count = GaugeMetricFamily("retrainctl_entry_segments", "Segments of an entry with segment_by: in its data "
                              "now, or in its history.", labels=["model_name"])
    states = GaugeMetricFamily("retrainctl_segments", "An entry's segments by state, as `retrainctl status` "
                               "counts them (a segment may be in several: paused and due).",
                               labels=["model_name", "state"])
    alerting = GaugeMetricFamily("retrainctl_segments_alerting", "An entry's segments whose performance or "
                                 "drift check finds a problem now.", labels=["model_name", "check"])
    for v in entries:
        assert v.entry is not None
        count.add_metric([v.name], v.entry.segments)
        for state in SEGMENT_STATES:
            states.add_metric([v.name, state], v.entry.counts.get(state, 0))
        for check in QUALITY_CHECKS:
            alerting.add_metric([v.name, check], v.entry.alerting.get(check, 0))
    return [count, states, alerting]


def alert_gauges(views: list[ModelView]) -> list[Any]:
    """The gauges the alert rules (etc/prometheus/retrainctl-rules.yml, docs/alerts.md) need
    besides the issue's metrics: each says what a rule must not guess."""
    from prometheus_client.core import GaugeMetricFamily

    def gauge(metric, doc, value_of):
        fam = GaugeMetricFamily(metric, doc, labels=["model_name"])
        for v in views:
            value = value_of(v)
            if value is not None:
                fam.add_metric([v.name], value)
        return fam

    return [
        gauge("model_data_unavailable", "1 while the model's data file is missing or cannot be read.",
              lambda v: float(v.data_unavailable)),
        gauge("model_auto_retraining_enabled", "The model's enable_auto_retraining: 1 true, 0 false.",
              lambda v: float(v.auto_retraining)),
        gauge("model_check_interval_seconds", "The model's check_interval: a check evaluates it at most this often.",
              lambda v: v.check_interval),
        gauge("model_age_clock_start_timestamp_seconds",
              "Unix time the model_age trigger counts the current model's age from: its training, or a "
              "later rejection or rollback on the same data.", lambda v: v.age_clock_start),
        gauge("model_last_retraining_failure_timestamp_seconds",
              "Unix time the last automatic retrain failed (manual trains are not counted).",
              lambda v: v.last_failure_time),
        gauge("model_data_last_change_timestamp_seconds",
              "Unix time the model's data last changed: the newest modification time of its data files "
              "(an entry: of all of its files; a segment: of the files holding its rows).",
              lambda v: v.data_changed_at),
        gauge("model_registry_in_sync",
              "1 if MLflow's `champion` alias names the store's current model as the last command left it, "
              "0 if they disagree or that is unknown; absent with MLflow off.",
              lambda v: None if v.registry_in_sync is None else float(v.registry_in_sync)),
    ]


def last_check_time(state_dir: str) -> float | None:
    """The newest per-model evaluation time in the scheduling cache (checks.json)."""
    data = read_json(os.path.join(state_dir, CHECKS_FILE), default={})
    times = [t for t in map(_number, data.values())] if isinstance(data, dict) else []
    return max((t for t in times if t is not None), default=None)


def gather(config: Config, clock: Callable[[], float] = time.time,
           observed: dict[str, Observation] | None = None) -> tuple[dict[str, ModelTotals], list[ModelView], float | None]:
    """Read what the metrics describe: the running totals, one view per configured model and entry
    (and, with metrics.per_segment, per segment), the last check. `observed` is what a check just
    saw of each model (observe.status: not observed again)."""
    store = ModelStore(config.model_dir)
    per_segment = config.metrics.per_segment
    observer = Observer(config, store, clock)
    state_log = StateLog(config.state_dir)
    # An entry about which nothing changed since a check left it settled is summed up from its
    # quiet mark (observe.quiet), not observed segment by segment; not with per-segment series.
    quiet = standing = None
    if segmented(config) and not per_segment and os.path.isdir(config.state_dir):
        quiet = Quiet(config, state_log, observer.fingerprints, clock)
        standing = quiet.standing(config.models.values())
    entries = [name for name, m in config.models.items() if m.segment_by]
    if not os.path.isdir(config.state_dir):
        states, totals, summed = {}, {}, {}
    elif quiet is not None and standing is not None and all(e in standing for e in entries):
        # every entry quiet: only the declared models' and the entries' own records are decoded
        states = state_log.fold_of(DECISION, [n for n in config.models if n not in entries])
        totals = state_log.fold_of(TOTALS, list(config.models))
        summed = state_log.fold_of(ENTRY_TOTALS, entries)
    else:
        folded = state_log.folds()
        states, totals, summed = (folded[f.name] for f in (DECISION, TOTALS, ENTRY_TOTALS))
    if segmented(config):
        models = Fleet(config, observer, states).all(skip=standing or {})
    else:
        models = list(config.models.values())
    rows = status(config, [m for m in models if per_segment or m.entry is None], clock=clock, verify=False,
                  states=states, observed=observed, observer=observer)
    by_name = {m.name: m for m in models}
    now = clock()
    views: list[ModelView] = []
    seen: dict[str, list[SegmentSeen]] = {}
    changes = {m.name: _segment_changes(observer, m) for m in config.models.values()
               if m.segment_by and m.name not in (standing or {})}
    for row in rows:
        model = by_name[row.model_name]
        state = states.get(model.name)
        if model.entry is not None:  # with per_segment: its own series, from its status row
            trained_at = None if row.model_age_seconds is None else now - row.model_age_seconds
            views.append(_view(model, row, state, trained_at, row.metric, changes[model.entry](model)))
            seen.setdefault(model.entry, []).append(_seen_in_row(row, views[-1]))
            continue
        cur = store.current(model.name)
        meta = cur.metadata if cur else {}
        views.append(_view(model, row, state, _number(meta.get("trained_at_ts")), meta.get("metric") or model.metric,
                           _data_changed_at(model.data_path) if row.data_error is None else None))
        if model.segment_by:  # its segments cannot be listed now: the entry stands alone, its data unavailable
            views[-1] = dataclasses.replace(views[-1], entry=EntrySegments({}), due=False, held=None,
                                            failures_in_row=0, score=None, drifted=None, drifted_features=())
    if not per_segment:
        for model in models:
            if model.entry is not None:
                seen.setdefault(model.entry, []).append(
                    _seen(model, observer, states.get(model.name) or ModelState(), changes[model.entry](model)))
        if os.path.isdir(config.state_dir):
            observer.save()
    entry_views = {name: _entry_view(config.models[name], members, now) for name, members in seen.items()}
    if quiet is not None and standing:
        entry_views.update((name, _summed_view(config.models[name], quiet.summary(name, mark, now),
                                               _data_changed_at(config.models[name].data_path), now))
                           for name, mark in standing.items())
        if quiet.marks.dirty:
            quiet.marks.save()
    views += [entry_views[name] for name in config.models if name in entry_views]
    totals = dict(totals, **{entry: summed[entry] for entry in entries if entry in summed})
    # The counters are running totals, which summary.json caches: no full log read.
    return totals, views, last_check_time(config.state_dir)


@dataclass(frozen=True)
class SegmentSeen(SegmentCount):
    """What an entry's series need of one of its segments (core.outcomes.status_counts reads it as
    it reads a status row)."""

    data_rows: int | None
    age_clock_start: float | None
    data_changed_at: float | None
    alerting: frozenset[str]               # the QUALITY_CHECKS whose alert is open


def _seen(model: ModelConfig, observer: Observer, state: ModelState, changed_at: float | None) -> SegmentSeen:
    """A segment from its observation and decision alone: observed from its brief (state.briefs),
    without the status row, which reads each segment's metadata.json (seconds at 10,000)."""
    obs = observer.observe(model, state)
    decision = decide.decide(model.policy, obs)
    trained_at = obs.model_trained_at
    quality = obs.quality or {}
    return SegmentSeen(
        entry=model.entry, due=decision.due, held=decision.held, action=decision.action, paused=state.paused,
        no_data=obs.no_data, failures_in_row=obs.failures_on_data, model_version=obs.model_version,
        model_age_seconds=round(obs.now - trained_at, 1) if trained_at else None, data_rows=obs.data_rows,
        age_clock_start=_age_clock_start(trained_at, state, obs.data_hash, model.config_hash),
        data_changed_at=changed_at,
        alerting=frozenset(check for check, fld in QUALITY_CHECKS.items() if quality.get(fld) is True))


def _seen_in_row(row: StatusRow, view: ModelView) -> SegmentSeen:
    return SegmentSeen(
        entry=row.entry, due=row.due, held=row.held, action=row.action, paused=row.paused, no_data=row.no_data,
        failures_in_row=row.failures_in_row, model_version=row.model_version,
        model_age_seconds=row.model_age_seconds, data_rows=row.data_rows, age_clock_start=view.age_clock_start,
        data_changed_at=view.data_changed_at,
        alerting=frozenset(check for check, fld in QUALITY_CHECKS.items() if row.quality.get(fld) is True))


def _view(model: ModelConfig, row: StatusRow, state: ModelState | None, trained_at: float | None,
          metric: str | None, data_changed_at: float | None) -> ModelView:
    return ModelView(
        name=model.name,
        max_age_seconds=model.policy.max_model_age_hours * 3600.0,
        data_rows=row.data_rows,
        due=bool(row.due_reasons),
        held=row.held,
        paused=row.paused,
        failures_in_row=row.failures_in_row,
        trained_at=trained_at,
        score=_number(row.score),
        metric=metric,
        data_unavailable=row.data_error is not None,
        auto_retraining=row.auto_retraining,
        check_interval=float(model.policy.check_interval),
        age_clock_start=_age_clock_start(trained_at, state, row.data_hash, model.config_hash),
        last_failure_time=getattr(state, "last_failure_time", None),
        drifted=row.quality.get("drifted"),
        drifted_features=tuple((row.quality.get("drifted_features") or {}).items()),
        registry_in_sync=row.registry_in_sync,
        data_changed_at=data_changed_at,
    )


def _entry_view(entry: ModelConfig, segments: list[SegmentSeen], now: float) -> ModelView:
    """An entry summed up over its segments: counts by state (as `status` counts them), its oldest
    live model, and the oldest age clock among the segments that are meant to be kept fresh (not
    paused, rows still in the data), so that RetrainctlModelTooOld fires for the entry when one of
    them is past max_model_age_hours."""
    [counts] = status_counts(segments)
    kept = [s.age_clock_start for s in segments if s.age_clock_start is not None and not s.paused and not s.no_data]
    changed = [s.data_changed_at for s in segments if s.data_changed_at is not None]
    summary = QuietSummary(counts, sum(s.data_rows or 0 for s in segments), all(s.paused for s in segments),
                           min(kept, default=None))
    return _summed_view(entry, summary, max(changed, default=None), now,
                        {check: sum(check in s.alerting for s in segments) for check in QUALITY_CHECKS})


def _summed_view(entry: ModelConfig, summary: QuietSummary, data_changed_at: float | None, now: float,
                 alerting: dict[str, int] | None = None) -> ModelView:
    """An entry's view from its segments summed up (_entry_view), or from its quiet mark: then
    none alerting (an alert keeps an entry from being quiet), and its data changed when its
    newest file did (the files of a quiet entry are the ones its segments were found in)."""
    counts, oldest = summary.counts, summary.counts.oldest_model_age_seconds
    return ModelView(
        name=entry.name,
        max_age_seconds=entry.policy.max_model_age_hours * 3600.0,
        data_rows=summary.data_rows,
        paused=summary.paused,
        auto_retraining=entry.policy.enable_auto_retraining,
        check_interval=float(entry.policy.check_interval),
        trained_at=None if oldest is None else now - oldest,
        age_clock_start=summary.age_clock_start,
        data_changed_at=data_changed_at,
        entry=EntrySegments({state: getattr(counts, state) for state in SEGMENT_STATES}, counts.segments,
                            alerting or dict.fromkeys(QUALITY_CHECKS, 0)),
    )


def _data_changed_at(path: str) -> float | None:
    """The newest modification time among a data path's files (None where it cannot be listed)."""
    try:
        root = datasets.root_of(path)
        return max((os.stat(os.path.join(root, f)).st_mtime for f in datasets.expand(path)), default=None)
    except (OSError, DataError):
        return None


def _segment_changes(observer: Observer, entry: ModelConfig) -> Callable[[ModelConfig], float | None]:
    """For each segment of `entry`: the newest modification time of the files that hold its rows
    (each file stat'ed once); None for a segment whose rows are gone."""
    try:
        index = observer.segments(entry)
    except DataError:
        return lambda model: None
    root = datasets.root_of(index.dataset.path)
    mtimes: dict[str, float | None] = {}
    for rel, _ in index.dataset.files:
        try:
            mtimes[rel] = os.stat(os.path.join(root, rel)).st_mtime
        except OSError:
            mtimes[rel] = None
    if not index.dataset.is_set:
        mtimes[""] = mtimes.get(next(iter(mtimes), ""))

    def changed(model: ModelConfig) -> float | None:
        seg = index.segments.get(entry_key(model.name))
        if seg is None:
            return None
        times = [mtimes.get(rel) for rel, _ in (seg.files or (("", ""),))]
        return max((t for t in times if t is not None), default=None)
    return changed


def _age_clock_start(trained_at: float | None, state: ModelState | None, data_hash: str | None,
                     config_hash: str | None) -> float | None:
    """As core.decide.fire counts the age: a rejected candidate, an unchanged skip or a rollback
    on the current data and config restarts the clock (the rollback records what it abandoned as
    rejected; records from before config hashes remember the data alone)."""
    if trained_at is None:
        return None
    rejected_at = None
    if state is not None and data_hash:
        rejected_at = state.rejected.get(candidate_key(data_hash, config_hash), state.rejected.get(data_hash))
    return max(trained_at, rejected_at or 0.0)


class _Snapshot:
    """A collector that yields families computed once (the registry is built per run)."""

    def __init__(self, fams: list[Any]) -> None:
        self._fams = fams

    def collect(self) -> list[Any]:
        return list(self._fams)


def build_registry(config: Config, clock: Callable[[], float] = time.time,
                   observed: dict[str, Observation] | None = None) -> Any:
    """A fresh CollectorRegistry (never the global one) describing the state now (see gather)."""
    from prometheus_client import CollectorRegistry

    totals, views, last_check = gather(config, clock, observed)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families(totals, views, clock(), last_check)))
    return registry


def exposition(registry: Any) -> bytes:
    from prometheus_client import generate_latest

    return generate_latest(registry)


def write_textfile(path: str, registry: Any) -> None:
    """Write the exposition for node_exporter: a temporary file in the same folder, then a rename,
    so the collector reads the old file or the new one, never a part. World-readable, because
    node_exporter usually runs as another user."""
    try:
        atomic_write(path, exposition(registry), mode=0o644)
    except OSError as exc:
        raise RetrainctlError(f"{path}: cannot write the metrics textfile: {exc.strerror or exc}") from None


def _credentials(config: Config) -> tuple[str, tuple[str, str] | None]:
    """(the gateway URL without credentials, (user, password) or None): from `username` with
    `password_env`/`password_file`, or from a `user:password@` in the URL, as curl reads it."""
    pg = config.pushgateway
    assert pg.url is not None
    url, from_url = split_credentials(pg.url)
    if pg.username:
        try:
            secret = read_secret(pg.password_env, pg.password_file, "pushgateway", "password_env", "password_file")
        except ConfigError as exc:
            raise PushError(str(exc)) from None
        return url, (pg.username, (secret or b"").decode("utf-8", "replace"))
    return url, from_url


def _why(exc: BaseException, timeout: float) -> str:
    from urllib.error import HTTPError, URLError

    if isinstance(exc, HTTPError):
        body = exc.read(300).decode(errors="replace").strip().splitlines()
        return f"HTTP {exc.code} {exc.reason}" + (f": {body[0]}" if body else "")
    cause: Any = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(cause, TimeoutError):
        return f"timed out after {timeout:g}s"
    if type(cause) in (ConnectionRefusedError, ConnectionResetError, OSError, socket.gaierror) and cause.strerror:
        return str(cause.strerror)
    return str(cause) or type(cause).__name__


def push(config: Config, registry: Any) -> None:
    """PUT the registry to pushgateway.url under its job and `instance` grouping key, so each host
    owns one group that every push replaces whole. Raises PushError naming the gateway."""
    from prometheus_client import push_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    pg = config.pushgateway
    if not pg.url:
        raise UsageError(f"{config.path}: pushgateway.url is not set; nothing to push to")
    url, auth = _credentials(config)
    handler = default_handler
    if auth is not None:
        handler = functools.partial(basic_auth_handler, username=auth[0], password=auth[1])
    instance = pg.instance or socket.gethostname()
    try:
        push_to_gateway(url, job=pg.job, registry=registry, grouping_key={"instance": instance},
                        timeout=pg.timeout_seconds, handler=handler)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise PushError(f"push to {redact(pg.url)} failed: {_why(exc, pg.timeout_seconds)}") from None
    log.debug("pushed metrics to %s (job %s, instance %s)", redact(pg.url), pg.job, instance)


def export_after_run(config: Config, clock: Callable[[], float] = time.time,
                     observed: dict[str, Observation] | None = None) -> None:
    """After a command: push and/or write the textfile, as configured. Never raises: a failed
    export is a warning, the command's exit code stands, and the next run exports it all again.
    `observed`: what a check saw of each model (see gather)."""
    if not (config.pushgateway.url or config.textfile_path):
        return
    try:
        registry = build_registry(config, clock, observed)
    except Exception as exc:
        log.warning("metrics not exported: %s", _describe(exc))
        return
    if config.pushgateway.url:
        try:
            push(config, registry)
        except Exception as exc:
            log.warning("%s", exc if isinstance(exc, PushError) else
                        f"push to {redact(config.pushgateway.url)} failed: {_describe(exc)}")
    if config.textfile_path:
        try:
            write_textfile(config.textfile_path, registry)
        except Exception as exc:
            log.warning("%s", _describe(exc))


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, RetrainctlError) else f"{type(exc).__name__}: {exc}"
