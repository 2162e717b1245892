"""The report page: what the state log, the model store and `status` say about each model, as one
self-contained HTML page (inline CSS, inline SVG charts, no network) or as Markdown tables.
gather() does all the reading; everything after it renders plain values."""
import html
import io
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..config.records import Config, ModelConfig
from ..core.decide import degradation
from ..core.quality import LAYOUT, OTHER, feature_of, sample_counts, shares
from ..core.records import RETRAIN_STATUSES, Record, Status
from ..core.values import finite_number, one_line, utcnow_iso
from ..data.fingerprint import FingerprintCache
from ..observe.evaluation import recent_columns
from ..observe.status import status
from ..state.log import StateLog
from ..state.store import ModelStore
from .overview import STATES, EntryFacts, OverviewRow, entry_facts, entry_overview, model_overview, worst_first

# Enough records for years of daily retraining; a page is about recent behaviour.
HISTORY_LIMIT = 500
# The timeline table lists this many newest events (the chart shows them all).
TIMELINE_ROWS = 40
# Reference vs recent distributions are drawn for this many of the most drifted features.
WORST_SHOWN = 3
# A page of more model sections than this draws no charts: matplotlib takes about a second per
# model (300 models: minutes, and megabytes of SVG); `report MODEL` draws them.
CHARTED_MODELS = 10
QUARTILES = ("min", "25%", "median", "75%", "max")
# "Changed this round" lists this many segments (all of them are in the segment table).
ROUND_LISTED = 100
EVAL_KNOWN = ("eval_source", "eval_rows", "eval_score", "eval_baseline", "eval_degradation", "eval_note")
DRIFT_KNOWN = ("drift_source", "drift_rows", "drift_psi", "drifted_features", "drift_note")
STATUS_COLORS = {Status.SUCCESS: "#2e7d32", Status.REJECTED: "#c62828", Status.FAILURE: "#6a1b9a",
                 Status.SKIPPED: "#9e9e9e", Status.PAUSED: "#ef6c00", Status.RESUMED: "#0277bd",
                 Status.ROLLED_BACK: "#ef6c00"}


@dataclass
class VersionRow:
    version: int
    time: float | None
    score: float | None
    outcome: str                  # promoted, rejected, not promoted
    rolled_back: bool = False     # an operator rolled back from it
    live: bool = False
    on_disk: bool = False
    trigger: str | None = None


@dataclass
class FeatureDrift:
    name: str
    psi: float | None
    drifted: bool | None
    extra: dict[str, Any] = field(default_factory=dict)   # other per-feature evidence status reports (p-values...)
    bins: list[str] = field(default_factory=list)         # bin labels, reference shares, recent shares
    reference: list[float] = field(default_factory=list)
    recent: list[float] = field(default_factory=list)
    note: str = ""


@dataclass
class ModelFacts:
    """Everything the page says about one model, as plain values."""

    name: str
    metric: str
    higher_is_better: bool
    tolerance: float
    max_age_hours: float
    drift_threshold: float
    status: dict[str, Any]
    history: list[Record]         # history records, newest first
    versions: list[VersionRow]    # by version
    drift: list[FeatureDrift]     # worst first
    overview: OverviewRow | None = None

    @property
    def live(self) -> VersionRow | None:
        return next((v for v in self.versions if v.live), None)


# --- reading -------------------------------------------------------------------------------------

def gather(config: Config, models: list[ModelConfig], clock: Callable[[], float] = time.time) -> list[ModelFacts]:
    """Read everything the page shows about `models`."""
    log, store = StateLog(config.state_dir), ModelStore(config.model_dir)
    fpcache = FingerprintCache(config.state_dir)
    facts = []
    rows = status(config, models, clock=clock)
    histories = _histories(log, [m.name for m in models])
    for model, status_row in zip(models, rows):
        row = status_row.to_dict()
        history = histories.get(model.name, [])
        metas = {v: mv.metadata for v in store.versions(model.name) if (mv := store.get(model.name, v))}
        live = store.current_version(model.name)
        policy = model.policy
        reference = (metas.get(live) or {}).get("reference") if live is not None else None
        drift = feature_drift(row, reference if isinstance(reference, dict) else {})
        _add_recent(drift[:WORST_SHOWN], model, fpcache, reference)
        facts.append(ModelFacts(model.name, model.metric, model.higher_is_better, policy.promotion_tolerance,
                                policy.max_model_age_hours, policy.drift_threshold, row, history,
                                version_rows(history, metas, live), drift, model_overview(status_row)))
    return facts


def _histories(log: StateLog, names: list[str]) -> dict[str, list[Record]]:
    """{model: its history records, newest first, at most HISTORY_LIMIT}: for a few models, each
    read backwards as far as needed (only its lines parsed); for more, one pass over the log
    rather than a scan of it per model."""
    if len(names) <= CHARTED_MODELS:
        return {n: log.history(n, HISTORY_LIMIT) for n in names}
    out: dict[str, list[Record]] = {n: [] for n in names}
    for ev in log.history(None, 0):
        kept = out.get(ev.model_name)
        if kept is not None and len(kept) < HISTORY_LIMIT:
            kept.append(ev)
    return out


def gather_entries(config: Config, entries: dict[str, list[ModelConfig]],
                   clock: Callable[[], float] = time.time) -> list[EntryFacts]:
    """{entry: its segments (or the entry alone when they cannot be listed)} as EntryFacts: one
    `status` over every segment (no model file re-hashed: the page reads no model), no history."""
    every = [m for segments in entries.values() for m in segments]
    rows = status(config, every, clock=clock, verify=False) if every else []
    by_entry: dict[str, list[Any]] = {name: [] for name in entries}
    for row in rows:
        by_entry[row.entry or row.model_name].append(row)
    return [entry_facts(name, config.models[name].metric, config.models[name].higher_is_better, by_entry[name])
            for name in entries]


def _add_recent(features: list[FeatureDrift], model: ModelConfig, fpcache: FingerprintCache,
                reference: Any) -> None:
    """Recent shares per reference bin for `features`, read from the drift path as the drift
    check reads it (the model's `csv:` options, a data set's files); a path that cannot be read
    leaves a note, not an error."""
    if not features or not model.drift_path or not isinstance(reference, dict):
        return
    wanted = {feature_of(f.name): reference[feature_of(f.name)] for f in features
              if f.bins and isinstance(reference.get(feature_of(f.name)), dict)}
    try:
        _, columns = recent_columns(model, fpcache, wanted)
    except Exception as exc:  # the page shows what it can
        for f in features:
            f.note = f"recent values not read from {model.drift_path}: {exc}"
        return
    for f in features:
        feature = feature_of(f.name)
        stats = wanted.get(feature)
        if stats is None or not f.bins or feature not in columns:
            continue
        try:
            f.recent = shares(sample_counts(stats, columns[feature]))
        except (KeyError, TypeError, ValueError) as exc:
            f.note = f"reference statistics not understood: {type(exc).__name__}: {exc}"
            f.bins = []
            f.reference = []


# --- plain values to plain values ----------------------------------------------------------------

def version_rows(history: list[Record], metas: dict[int, dict[str, Any]], live: int | None) -> list[VersionRow]:
    """One row per version known to the log or the store (pruned versions keep their record)."""
    rows = {}
    for v, meta in metas.items():
        trained = finite_number(meta.get("trained_at_ts"))
        promoted = meta.get("promoted", True)
        rows[v] = VersionRow(v, trained, finite_number(meta.get("score")),
                             "promoted" if promoted else "rejected", on_disk=True, trigger=meta.get("trigger_type"))
    rolled_from = set()
    for ev in reversed(history):  # oldest first, so a later record wins
        if ev.version is None:
            continue
        if ev.status == Status.ROLLED_BACK:
            previous = ev.int_field("previous_version")
            if previous is not None:
                rolled_from.add(previous)
            continue
        if ev.status not in (Status.SUCCESS, Status.REJECTED, Status.FAILURE):
            continue
        row = rows.get(ev.version) or VersionRow(ev.version, ev.end_time, None, "", trigger=ev.trigger_type)
        row.score = ev.score if row.score is None else row.score
        row.outcome = {Status.SUCCESS: "promoted", Status.REJECTED: "rejected"}.get(ev.status, "not promoted")
        rows[ev.version] = row
    for v, row in rows.items():
        row.rolled_back = v in rolled_from
        row.live = v == live
    return [rows[v] for v in sorted(rows)]


def feature_drift(row: dict[str, Any], reference: dict[str, Any]) -> list[FeatureDrift]:
    """Per-feature drift from a status row, worst first; shares of the reference bins from the
    live model's metadata (which may hold shares or counts, depending on when it was trained)."""
    psis: dict[str, Any] = row["drift_psi"] if isinstance(row.get("drift_psi"), dict) else {}
    flagged: Any = row["drifted_features"] if isinstance(row.get("drifted_features"), (dict, list)) else None
    per_feature = {k: v for k, v in row.items()
                   if k.startswith("drift_") and k not in DRIFT_KNOWN and isinstance(v, dict) and set(v) <= set(psis)}
    out = []
    for name, value in psis.items():
        drifted = None if flagged is None else name in flagged
        extra = {k[len("drift_"):]: v[name] for k, v in per_feature.items() if name in v}
        out.append(FeatureDrift(name, finite_number(value), drifted, extra))
    out.sort(key=lambda f: (-(f.psi if f.psi is not None else -1), f.name))
    charted: set[str] = set()
    for f in out:  # one chart per feature, on its worst test (`x`, `x:range` or `x:missing`)
        feature = feature_of(f.name)
        if feature not in charted:
            charted.add(feature)
            f.bins, f.reference = reference_bins(reference.get(feature))
    return out


def reference_bins(stats: Any) -> tuple[list[str], list[float]]:
    """(bin labels, reference shares) of one feature's reference statistics; ([], []) if unknown."""
    if not isinstance(stats, dict):
        return [], []
    edges = [e for e in stats.get("edges") or () if finite_number(e) is not None]
    lo, hi = finite_number(stats.get("min")), finite_number(stats.get("max"))
    if stats.get("kind") == "numeric" and stats.get("layout") == LAYOUT:
        # outside the training range at both ends; missing values are a test of their own
        if lo is None or hi is None:
            labels = ["no value at training", "", "any value"]
        else:
            inner = [lo, *edges, hi]
            labels = ([f"< {lo:.4g}"] + [f"{a:.4g} to {b:.4g}" for a, b in zip(inner, inner[1:])]
                      + [f"> {hi:.4g}"])
    elif stats.get("kind") == "numeric":
        labels = ([f"< {edges[0]:.4g}"] + [f"{a:.4g} to {b:.4g}" for a, b in zip(edges, edges[1:])]
                  + [f">= {edges[-1]:.4g}"]) if edges else ["all values"]
        labels.append("missing")
    else:
        labels = [str(c) for c in stats.get("categories") or ()]
        labels += [] if OTHER in labels else [OTHER]
    given = stats.get("proportions")
    if not isinstance(given, list):
        counts: list[Any] = stats["counts"] if isinstance(stats.get("counts"), list) else []
        total = sum(c for c in counts if finite_number(c) is not None) or 1
        given = [(finite_number(c) or 0.0) / total for c in counts]
    values = [finite_number(v) or 0.0 for v in given][:len(labels)]
    return labels, values + [0.0] * (len(labels) - len(values))


def last_decision(facts: ModelFacts) -> dict[str, Any] | None:
    """The newest retraining record and the gate's arithmetic: its own, or when it never reached
    the gate (a failure, a skip) that of the newest candidate that did. None without any."""
    retrains = [e for e in facts.history if e.status in RETRAIN_STATUSES]
    if not retrains:
        return None
    ev = retrains[0]
    gate = next((g for e in retrains if (g := gate_arithmetic(e, facts)) is not None), None)
    if gate is not None:
        gate["earlier"] = gate["record"] is not ev
    parts = [p.strip() for p in ev.description.split(";") if p.strip()]
    return {"time": _stamp(ev.trigger_time), "status": ev.status, "trigger": ev.trigger_type,
            "reasons": parts, "duration": ev.duration, "version": ev.version,
            "rows": ev.get("rows"), "error": ev.error, "error_type": ev.error_type, "gate": gate}


def gate_arithmetic(ev: Record, facts: ModelFacts) -> dict[str, Any] | None:
    """Candidate vs live score of one record on the same holdout, against the tolerance it was
    judged with (from its description; else the configured one). None if it was not compared."""
    candidate, champion = ev.score, ev.number("champion_score")
    if candidate is None or champion is None:
        return None
    tolerance = _recorded_tolerance(ev.description)
    tolerance = facts.tolerance if tolerance is None else tolerance
    worse = degradation(champion, candidate, facts.higher_is_better)
    return {"candidate": candidate, "live": champion, "live_version": ev.get("champion_version"),
            "worse": worse, "tolerance": tolerance, "passes": worse <= tolerance, "record": ev}


def _stamp(iso: str | None) -> str | None:
    """A record's UTC time as the page writes times (Z, not +00:00)."""
    return iso[:-6] + "Z" if isinstance(iso, str) and iso.endswith("+00:00") else iso


def _recorded_tolerance(description: str) -> float | None:
    m = re.search(r"\(tolerance ([0-9.eE+-]+)\)", str(description or ""))
    try:
        return finite_number(float(m.group(1))) if m else None
    except ValueError:
        return None


def timeline(facts: ModelFacts) -> list[tuple[str | None, str, str, int | None, str]]:
    """History records, newest first, as (time, status, trigger, version, what) rows."""
    rows = []
    for ev in facts.history:
        what = ev.error or ev.description or ""
        if ev.error_type:
            what = f"[{ev.error_type}] {what}"
        rows.append((_stamp(ev.trigger_time), str(ev.status), ev.trigger_type, ev.version, what))
    return rows


def age(facts: ModelFacts) -> tuple[float | None, float]:
    """(age in hours, limit in hours) of the live model; age None when there is none."""
    seconds = finite_number(facts.status.get("model_age_seconds"))
    return (None if seconds is None else seconds / 3600.0), facts.max_age_hours


def headline(facts: ModelFacts) -> str:
    """One sentence on the model's state, including the bad cases the page must say plainly."""
    live = facts.live
    if not facts.versions and not facts.history:
        return "never trained: no version in the model store and no event in the state log"
    if live is None:
        return "no live version" + (": every candidate so far was rejected or failed" if facts.history else "")
    text = f"live version v{live.version}"
    if live.score is not None:
        text += f", {facts.metric} {live.score:.4g}"
    if not facts.history:
        text += "; the state log has no history for it"
    return text


# --- charts (matplotlib, imported only here) -----------------------------------------------------

def _figure(width, height):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _svg(fig, salt):
    """The figure as an <svg> element: text kept as text, ids salted per chart so that several
    charts can share one page."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        # No RDF block: it only names the creator and the date, and would make the page differ per run.
        fig.savefig(buf, format="svg", metadata=dict.fromkeys(("Date", "Creator", "Format", "Type")))
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _dates(times):
    return [datetime.fromtimestamp(t, timezone.utc) for t in times]


def _time_axis(ax, times):
    """Readable time ticks; a single moment gets an hour around it, not matplotlib's default
    span of years."""
    if max(times) - min(times) < 1:
        middle = (max(times) + min(times)) / 2
        ax.set_xlim(*_dates([middle - 1800, middle + 1800]))
    ax.figure.autofmt_xdate()


def score_chart(facts, salt):
    points = [v for v in facts.versions if v.score is not None and v.time is not None]
    if not points:
        return None
    fig, ax = _figure(9, 3.4)
    promoted = [v for v in points if v.outcome == "promoted"]
    if promoted:
        ax.plot(_dates([v.time for v in promoted]), [v.score for v in promoted], "-", color="#90a4ae", zorder=1)
    styles = (("promoted", "o", "#2e7d32"), ("rejected", "X", "#c62828"), ("not promoted", "s", "#6a1b9a"))
    for outcome, marker, color in styles:
        group = [v for v in points if v.outcome == outcome and not v.rolled_back]
        if group:
            ax.scatter(_dates([v.time for v in group]), [v.score for v in group], marker=marker, s=60,
                       color=color, label=outcome, zorder=2)
    rolled = [v for v in points if v.rolled_back]
    if rolled:
        ax.scatter(_dates([v.time for v in rolled]), [v.score for v in rolled], marker="v", s=80,
                   color="#ef6c00", label="rolled back", zorder=2)
    live = facts.live
    if live is not None and live.score is not None and live.time is not None:
        ax.scatter(_dates([live.time]), [live.score], marker="*", s=400, facecolor="#fdd835",
                   edgecolor="black", label=f"live (v{live.version})", zorder=3)
    for v in points:
        ax.annotate(f"v{v.version}", (_dates([v.time])[0], v.score), textcoords="offset points",
                    xytext=(0, 9), ha="center", fontsize=8)
    ax.set_ylabel(facts.metric)
    ax.set_title(f"{facts.name}: {facts.metric} per version on its holdout")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    _time_axis(ax, [v.time for v in points])
    return _svg(fig, salt)


def psi_chart(facts, salt):
    features = [f for f in facts.drift if f.psi is not None]
    if not features:
        return None
    fig, ax = _figure(9, 0.4 + 0.32 * len(features) + 0.8)
    names = [f.name for f in features][::-1]
    values = [f.psi for f in features][::-1]
    colors = ["#c62828" if f.drifted else "#1565c0" for f in features][::-1]
    ax.barh(names, values, color=colors)
    ax.axvline(facts.drift_threshold, color="black", linestyle="--", label=f"drift_threshold {facts.drift_threshold:g}")
    ax.set_xlabel("PSI (effect size)")
    ax.set_title(f"{facts.name}: drift per feature, worst first")
    ax.legend(loc="lower right", fontsize=8)
    return _svg(fig, salt)


def distribution_chart(feature, salt):
    if not feature.bins or not feature.recent or len(feature.recent) != len(feature.bins):
        return None
    fig, ax = _figure(9, 3)
    xs = range(len(feature.bins))
    ax.bar([x - 0.2 for x in xs], feature.reference, width=0.4, color="#90a4ae", label="reference (training)")
    ax.bar([x + 0.2 for x in xs], feature.recent, width=0.4, color="#c62828" if feature.drifted else "#1565c0",
           label="recent")
    ax.set_xticks(list(xs), feature.bins, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    psi = f", PSI {feature.psi:.3g}" if feature.psi is not None else ""
    ax.set_title(f"{feature_of(feature.name)}: reference vs recent{psi}")
    ax.legend(fontsize=8)
    return _svg(fig, salt)


def timeline_chart(facts, salt):
    events = [(ev.when, str(ev.status)) for ev in facts.history if ev.when is not None]
    if not events:
        return None
    lanes = [s for s in STATUS_COLORS if any(st == s for _, st in events)]
    fig, ax = _figure(9, 0.8 + 0.35 * len(lanes) + 0.8)
    for i, lane in enumerate(lanes):
        times = [t for t, st in events if st == lane]
        ax.scatter(_dates(times), [i] * len(times), s=50, color=STATUS_COLORS[lane])
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_ylim(-0.7, len(lanes) - 0.3)
    ax.set_title(f"{facts.name}: events over time")
    ax.grid(axis="x", alpha=0.3)
    _time_axis(ax, [t for t, _ in events])
    return _svg(fig, salt)


def charts(facts, index):
    """{chart name: <svg>} of one model; a chart with nothing to draw is left out."""
    out = {"score": score_chart(facts, f"m{index}-score"),
           "drift": psi_chart(facts, f"m{index}-drift"),
           "timeline": timeline_chart(facts, f"m{index}-timeline")}
    for i, f in enumerate(facts.drift[:WORST_SHOWN]):
        if not f.bins:  # the feature's chart is drawn on its worst test
            continue
        out[f"distribution:{feature_of(f.name)}"] = distribution_chart(f, f"m{index}-dist{i}")
    return {k: v for k, v in out.items() if v is not None}


# --- HTML ----------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212121;margin:0;background:#fafafa}
header{background:#263238;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#cfd8dc}main{padding:8px 24px 40px;max-width:1100px}
section.model{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:4px 20px 16px;margin:18px 0}
h2{margin:12px 0 4px}h3{margin:18px 0 6px;font-size:15px;color:#37474f}
.headline{font-size:15px;margin:2px 0 10px}.empty{color:#b71c1c;font-weight:600}
table{border-collapse:collapse;margin:6px 0;font-size:13px}td:first-child{white-space:nowrap}th,td{border:1px solid #e0e0e0;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eceff1}tr.live td{background:#fff9c4;font-weight:600}
.badge{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;color:#fff}
.promoted,.success{background:#2e7d32}.rejected{background:#c62828}.failure,.not-promoted{background:#6a1b9a}
.skipped,.not-judged{background:#757575}.drifted{background:#c62828}.ok{background:#2e7d32}.paused,.rolled_back,.rolled-back{background:#ef6c00}.resumed{background:#0277bd}
.live-badge{background:#f9a825;color:#000}.meter{width:320px;height:14px;background:#eceff1;border-radius:7px;overflow:hidden;display:inline-block;vertical-align:middle}
.meter div{height:100%}.chart svg{max-width:100%;height:auto}.note{color:#616161}
[class^=st-]{font-weight:600}.st-failing{color:#c62828}.st-due,.st-never-trained,.st-paused{color:#ef6c00}
table.sortable th{cursor:pointer}th[aria-sort=ascending]:after{content:" \\25B2"}th[aria-sort=descending]:after{content:" \\25BC"}
tr:target td{background:#fff9c4}section.entry,section.overview{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:4px 20px 16px;margin:18px 0}
"""


def _e(value):
    return html.escape("-" if value is None or value == "" else str(value))


def _num(value, fmt=".4g"):
    return "-" if finite_number(value) is None else format(value, fmt)


def _badge(word):
    return f'<span class="badge {_e(word).replace(" ", "-")}">{_e(word)}</span>'


def _table(headers, rows, row_classes=None):
    head = f"<thead><tr>{''.join(f'<th>{_e(h)}</th>' for h in headers)}</tr></thead>" if headers else ""
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table>{head}<tbody>{''.join(body)}</tbody></table>"


def _time(ts):
    return "-" if ts is None else utcnow_iso(ts).replace("+00:00", "Z")


def _outcome_badges(v):
    words = [v.outcome] + (["rolled back"] if v.rolled_back else [])
    out = " ".join(_badge(w) for w in words)
    return out + (' <span class="badge live-badge">live</span>' if v.live else "")


def _gate_text(gate, metric):
    if gate is None:
        return None
    ev = gate["record"]
    direction = "worse" if gate["worse"] >= 0 else "better"
    live = f"live v{gate['live_version']}" if gate.get("live_version") is not None else "live"
    text = (f"candidate {metric} {gate['candidate']:.4g} vs {live} {gate['live']:.4g} on the same holdout: "
            f"{abs(gate['worse']):.2%} {direction}, tolerance {gate['tolerance']:.2%} -> "
            + ("passes the gate" if gate["passes"] else "fails the gate"))
    if gate.get("earlier"):
        text = f"(last candidate compared: v{ev.version} at {_stamp(ev.trigger_time)}, {ev.status}) " + text
    return text


def _html_model(facts, index, drawn=True):
    svgs = charts(facts, index) if drawn else {}
    out = [f'<section class="model" id="model-{_e(facts.name)}"><h2>{_e(facts.name)}</h2>']
    text = headline(facts)
    empty = not facts.versions and not facts.history
    out.append(f'<p class="headline{" empty" if empty else ""}">{_e(text)}</p>')
    hours, limit = age(facts)
    if hours is not None:
        share = min(hours / limit, 1.0) if limit else 1.0
        color = "#c62828" if hours > limit else "#2e7d32"
        out.append(f'<p>Age: {hours:.1f} h of max_model_age_hours {limit:g} '
                   f'<span class="meter"><div style="width:{share:.0%};background:{color}"></div></span></p>')
    row = facts.status
    now = "due: " + ", ".join(r["trigger_type"] for r in row.get("due_reasons") or []) if row.get("due") else "not due"
    note = f" ({row['note']})" if row.get("note") else ""
    out.append(f"<p>Next check: {_e(now + note)}; failures in a row: {_e(row.get('failures_in_row'))}"
               f"{'; paused' if row.get('paused') else ''}</p>")

    out.append("<h3>Versions</h3>")
    if facts.versions:
        if "score" in svgs:
            out.append(f'<div class="chart" data-chart="score">{svgs["score"]}</div>')
        rows = [[f"v{v.version}", _e(_time(v.time)), _num(v.score), _outcome_badges(v), _e(v.trigger),
                 "yes" if v.on_disk else "pruned"] for v in facts.versions]
        out.append(_table(["version", "trained", facts.metric, "outcome", "trigger", "on disk"], rows,
                          ["live" if v.live else "" for v in facts.versions]))
    else:
        out.append('<p class="empty">No version was ever trained.</p>')

    out.append("<h3>Last decision</h3>")
    decision = last_decision(facts)
    if decision is None:
        out.append('<p class="note">No retraining recorded yet.</p>')
    else:
        items = [("when", _e(decision["time"])), ("outcome", _badge(decision["status"])),
                 ("trigger", _e(decision["trigger"])),
                 ("why", "<br>".join(_e(r) for r in decision["reasons"]) or "-"),
                 ("gate", _e(_gate_text(decision["gate"], facts.metric))),
                 ("version", _e(f"v{decision['version']}" if decision["version"] is not None else None)),
                 ("duration", _e(f"{decision['duration']:.1f} s" if decision["duration"] is not None else None))]
        if decision["error"]:
            items.append(("error", _e(f"[{decision['error_type']}] {decision['error']}")))
        out.append(_table(None, [[f"<b>{k}</b>", v] for k, v in items]))

    out.append("<h3>Recent performance</h3>")
    out.append(_kv_html(performance_items(row)) or '<p class="note">No evaluation data configured or seen.</p>')

    out.append("<h3>Drift</h3>")
    out.append(f'<p class="note">{_e(row.get("drift_note") or "no drift check configured or run")}</p>')
    if facts.drift:
        if "drift" in svgs:
            out.append(f'<div class="chart" data-chart="drift">{svgs["drift"]}</div>')
        extra_keys = sorted({k for f in facts.drift for k in f.extra})
        rows = [[_e(f.name), _num(f.psi, ".3g"), _badge(_verdict(f))] + [_e(f.extra.get(k)) for k in extra_keys]
                for f in facts.drift]
        out.append(_table(["feature", "PSI", "verdict", *extra_keys], rows))
        for f in facts.drift[:WORST_SHOWN]:
            key = f"distribution:{feature_of(f.name)}"
            if f.bins and key in svgs:
                out.append(f'<div class="chart" data-chart="{_e(key)}">{svgs[key]}</div>')
            elif f.note:
                out.append(f'<p class="note">{_e(f.name)}: {_e(f.note)}</p>')

    out.append("<h3>Timeline</h3>")
    if facts.history:
        if "timeline" in svgs:
            out.append(f'<div class="chart" data-chart="timeline">{svgs["timeline"]}</div>')
        rows = [[_e(t), _badge(s), _e(tr), _e(f"v{v}" if v is not None else None), _e(w)]
                for t, s, tr, v, w in timeline(facts)[:TIMELINE_ROWS]]
        out.append(_table(["time", "event", "trigger", "version", "what"], rows))
    else:
        out.append('<p class="empty">The state log has no events for this model.</p>')
    out.append("</section>")
    return "\n".join(out)


def _verdict(f):
    return {True: "drifted", False: "ok", None: "not judged"}[f.drifted]


def performance_items(row):
    """The performance evidence of a status row as (label, value) pairs, future fields included."""
    keys = list(EVAL_KNOWN) + sorted(k for k in row if k.startswith("eval_") and k not in EVAL_KNOWN) + ["degraded"]
    return [(k.replace("eval_", ""), row.get(k)) for k in keys if row.get(k) is not None]


def _kv_html(items):
    if not items:
        return ""
    return _table(None, [[f"<b>{_e(k)}</b>", _e(_plain(v))] for k, v in items])


def _plain(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, default=str)
    return value


def render_html(facts_list, generated_at, entries=(), overview=None):
    """The whole page as a string: the overview table (when given), each entry's page, then a
    section per model (from gather)."""
    from ..base.version import __version__

    drawn = len(facts_list) <= CHARTED_MODELS
    parts = [_html_overview(overview)] if overview is not None else []
    if not drawn:
        parts.append(f'<p class="note">{len(facts_list)} models: charts are drawn on pages of at most '
                     f'{CHARTED_MODELS} (<code>retrainctl report MODEL</code>).</p>')
    parts += [_html_entry(e, i) for i, e in enumerate(entries)]
    parts += [_html_model(f, i, drawn) for i, f in enumerate(facts_list)]
    body = "\n".join(parts) or '<p class="empty">No models selected.</p>'
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>retrainctl report</title><style>{CSS}</style></head><body>"
            f"<header><h1>retrainctl report</h1><p>generated {_e(_time(generated_at))} by retrainctl "
            f"{_e(__version__)}</p></header><main>\n{body}\n</main><script>{SCRIPT}</script></body></html>\n")


# Sorting (a click on a column's header, again to reverse) and searching (rows whose text holds
# the search, case-insensitive) of the tables marked `sortable`. Fixed text: no value of the page
# is ever written into it; it reads them from the DOM.
SCRIPT = """
(function(){
function key(cell,num){var v=cell.hasAttribute("data-v")?cell.getAttribute("data-v"):cell.textContent;
if(!num)return v;var x=parseFloat(v);return isNaN(x)?null:x;}
function sortBy(table,i){var th=table.tHead.rows[0].cells[i],num=th.getAttribute("data-type")==="num";
var up=th.getAttribute("aria-sort")!=="ascending",body=table.tBodies[0];
for(var h=0;h<table.tHead.rows[0].cells.length;h++)table.tHead.rows[0].cells[h].removeAttribute("aria-sort");
th.setAttribute("aria-sort",up?"ascending":"descending");
var rows=Array.prototype.map.call(body.rows,function(r,n){return [key(r.cells[i],num),n,r];});
rows.sort(function(a,b){var x=a[0],y=b[0],c;
if(x===null||y===null)c=(x===null)-(y===null);else c=x<y?-1:x>y?1:0;
if(c&&!(x===null||y===null)&&!up)c=-c;return c||a[1]-b[1];});
var f=document.createDocumentFragment();rows.forEach(function(r){f.appendChild(r[2]);});body.appendChild(f);}
Array.prototype.forEach.call(document.querySelectorAll("table.sortable"),function(t){
Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){th.addEventListener("click",function(){sortBy(t,i);});});});
Array.prototype.forEach.call(document.querySelectorAll("input.search"),function(box){
var t=document.getElementById(box.getAttribute("data-table")),out=document.getElementById(box.getAttribute("data-count"));
box.addEventListener("input",function(){var q=box.value.toLowerCase(),n=0;
Array.prototype.forEach.call(t.tBodies[0].rows,function(r){var hit=r.textContent.toLowerCase().indexOf(q)>=0;
r.hidden=!hit;n+=hit;});if(out)out.textContent=n;});});
})();
"""


def _age_text(seconds):
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _sv(value):
    """A cell's sort value: the number in full, "" for none (sorted last)."""
    return "" if finite_number(value) is None else repr(value)


def _state(word):
    return f'<span class="st-{word.replace(" ", "-")}">{_e(word)}</span>'


def _last(status, when):
    return "-" if status is None else f"{_e(status)} {_e(_stamp(when))}"


def _anchor(kind, name):
    return f"{kind}-{name}"


def _sortable(table_id, headers, rows):
    """A table the page's script sorts; headers: (label, "num" or "text"); a cell is (html,
    sort value or None)."""
    head = "".join(f'<th data-type="{kind}">{_e(label)}</th>' for label, kind in headers)
    body = "".join("<tr" + (f' id="{_e(rid)}"' if rid else "") + ">"
                   + "".join(f"<td>{c}</td>" if v is None else f'<td data-v="{html.escape(str(v))}">{c}</td>' for c, v in cells)
                   + "</tr>" for rid, cells in rows)
    return f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _html_overview(rows):
    """Every declared model and entry, worst first (core of `report` without names)."""
    table = _sortable("overview-table", [("model", "text"), ("kind", "text"), ("state", "num"), ("score", "num"),
                                         ("metric", "text"), ("age", "num"), ("last result", "text"),
                                         ("detail", "text")],
                      [(None, [(f'<a href="#{_e(_anchor(r.kind, r.name))}">{_e(r.name)}</a>', None),
                               (_e(r.kind), None), (_state(r.state), _sv(r.rank)), (_num(r.score), _sv(r.score)),
                               (_e(r.metric), None), (_e(_age_text(r.age_seconds)), _sv(r.age_seconds)),
                               (_last(r.last_status, r.last_time), None), (_e(r.detail), None)])
                       for r in rows])
    states: dict[str, int] = {}
    for r in rows:
        states[r.state] = states.get(r.state, 0) + 1
    summary = ", ".join(f"{states[s]} {s}" for s in STATES if s in states) or "nothing configured"
    return (f'<section class="overview" id="overview"><h2>Overview</h2><p class="headline">{len(rows)} models and '
            f'entries: {_e(summary)}</p>{table}</section>')


def _segment_cells(s, anchor=True):
    name = f'<a href="#{_e(_anchor("segment", s.name))}">{_e(s.name)}</a>' if anchor else _e(s.name)
    return [(name, None), (_state(s.state), _sv(s.rank)), (_e(f"v{s.version}" if s.version is not None else None),
                                                      _sv(s.version)),
            (_num(s.score), _sv(s.score)), (_e(_age_text(s.age_seconds)), _sv(s.age_seconds)),
            (_e(s.failures), _sv(s.failures)), (_last(s.last_status, s.last_time), None),
            (_e(s.rows), _sv(s.rows))]


def _segment_table(table_id, entry, lines, anchors):
    """Segments as rows; with `anchors` each row is the target of its #model-<segment> link."""
    headers = [("segment", "text"), ("state", "num"), ("version", "num"), (entry.metric, "num"), ("age", "num"),
               ("failures", "num"), ("last event", "text"), ("rows", "num")]
    return _sortable(table_id, headers, [(_anchor("segment", s.name) if anchors else None, _segment_cells(s, not anchors))
                                         for s in lines])


def _histogram_svg(entry):
    """The score distribution as bars: inline SVG of a few rectangles, no matplotlib."""
    bins = entry.histogram
    if not bins:
        return '<p class="note">No segment has a scored live version.</p>'
    top, width, height = max(c for _, _, c in bins) or 1, 600, 160
    bar = width / len(bins)
    rects = "".join(f'<rect x="{i * bar:.1f}" y="{height - c / top * height:.1f}" width="{bar - 1:.1f}" '
                    f'height="{c / top * height:.1f}" fill="#1565c0"><title>{_num(lo)} to {_num(hi)}: {c}</title></rect>'
                    for i, (lo, hi, c) in enumerate(bins))
    lo, hi = bins[0][0], bins[-1][1]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="histogram" width="{width}" height="{height + 20}" '
            f'viewBox="0 0 {width} {height + 20}" role="img">{rects}'
            f'<text x="0" y="{height + 15}" font-size="12">{_num(lo)}</text>'
            f'<text x="{width}" y="{height + 15}" font-size="12" text-anchor="end">{_num(hi)}</text></svg>')


def _worst(entry):
    """(table key, title, segments) of the worst segments by score, age and failures."""
    by_score, oldest, failing = entry.worst_by_score(), entry.oldest(), entry.most_failures()
    return [("score", f"The {len(by_score)} worst by {entry.metric}", by_score),
            ("age", f"The {len(oldest)} oldest", oldest),
            ("failures", f"The {len(failing)} with the most failures in a row", failing)]


def _html_entry(entry, index):
    out = [f'<section class="entry" id="{_e(_anchor("entry", entry.name))}"><h2>{_e(entry.name)}</h2>']
    if entry.error:
        out.append(f'<p class="headline empty">The segments of {_e(entry.name)} cannot be listed: {_e(entry.error)}</p>')
        return "\n".join(out + ["</section>"])
    c = entry.counts
    out.append(f'<p class="headline">{c.segments} segments; a segment\'s own page: '
               f'<code>retrainctl report {_e(entry.name)}:KEY</code></p>')
    out.append("<h3>Counts by state</h3>")
    out.append(_table(["segments", "up to date", "due", "failed", "skipped", "paused", "no data", "oldest model"],
                      [[c.segments, c.up_to_date, c.due, c.failed, c.skipped, c.paused, c.no_data,
                        _e(_age_text(c.oldest_model_age_seconds))]]))
    out.append(f"<h3>Scores</h3><p>{_e(entry.metric)} of the live versions on their holdouts</p>")
    if entry.quartiles():
        out.append(_table(["metric", *QUARTILES], [[_e(entry.metric), *map(_num, entry.quartiles())]]))
    out.append(f'<div class="chart" data-chart="scores">{_histogram_svg(entry)}</div>')
    changed = entry.this_round()
    out.append(f"<h3>Changed this round</h3><p>{len(changed)} segments have a record from the entry's newest "
               "round" + (f" (the newest {ROUND_LISTED} listed)" if len(changed) > ROUND_LISTED else "") + ".</p>")
    if changed:
        out.append(_table(["segment", "event", "version", entry.metric],
                          [[f'<a href="#{_e(_anchor("segment", s.name))}">{_e(s.name)}</a>', _last(s.last_status, s.last_time),
                            _e(f"v{s.version}" if s.version is not None else None), _num(s.score)]
                           for s in changed[:ROUND_LISTED]]))
    for key, title, lines in _worst(entry):
        out.append(f"<h3>{_e(title)}</h3>")
        out.append(_segment_table(f"worst-{index}-{key}", entry, lines, False) if lines else '<p class="note">None.</p>')
    out.append(f'<h3>All segments</h3><p><input class="search" type="search" placeholder="search" '
               f'data-table="segments-{index}" data-count="shown-{index}"> <span id="shown-{index}">'
               f'{len(entry.segments)}</span> shown; click a column to sort</p>')
    out.append(_segment_table(f"segments-{index}", entry, entry.segments, True))
    out.append("</section>")
    return "\n".join(out)


# --- Markdown ------------------------------------------------------------------------------------

# Markdown's inline markup, escaped with a backslash wherever interpolated text holds it: code
# spans, emphasis, strikethrough, the table's pipes, and a backslash (that would escape ours). An
# underscore inside a word (`data_error`) cannot open emphasis and stays as it is; `[` is kept
# but a `]` that would close a link or image (`](`, `][`) is escaped.
_MD_INLINE = re.compile(r"[\\`*~|]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])|\](?=[(\[])")
# What would start a block at the start of a paragraph: a heading, a list item, a setext underline.
_MD_BLOCK = re.compile(r"^(?:[#=+-]|\d+(?=[.)]))")


class _Md(str):
    """Markdown the report writes itself (`**(live)**`), which _m() leaves as it is."""


def _m(value):
    """Interpolated text as GitHub-flavoured Markdown shows it literally: one line (control
    characters made visible), HTML escaped (a `<script>` or `<img onerror=...>` never becomes a
    tag, `&` never an entity), Markdown's inline markup and table pipes escaped."""
    if isinstance(value, _Md):
        return value
    text = "-" if value is None or value == "" else one_line(str(_plain(value)))
    return _MD_INLINE.sub(lambda m: "\\" + m[0], html.escape(text, quote=False))


def _md_para(value):
    """_m() for text that starts a paragraph, which must not start a block either."""
    return _MD_BLOCK.sub(lambda m: m[0] + "\\" if m[0][0].isdigit() else "\\" + m[0], _m(value))


def _md_table(headers, rows):
    lines = ["| " + " | ".join(_m(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_m(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _md_model(facts):
    out = [f"## {_m(facts.name)}", "", f"**{_m(headline(facts))}**", ""]
    hours, limit = age(facts)
    if hours is not None:
        over = " (over the limit)" if hours > limit else ""
        out += [f"Age: {hours:.1f} h of max_model_age_hours {limit:g}{over}", ""]
    out += ["### Versions", ""]
    if facts.versions:
        rows = [[_Md(f"v{v.version}" + (" **(live)**" if v.live else "")), _time(v.time), _num(v.score),
                 v.outcome + (", rolled back" if v.rolled_back else ""), v.trigger] for v in facts.versions]
        out += [_md_table(["version", "trained", facts.metric, "outcome", "trigger"], rows), ""]
    else:
        out += ["No version was ever trained.", ""]
    out += ["### Last decision", ""]
    decision = last_decision(facts)
    if decision is None:
        out += ["No retraining recorded yet.", ""]
    else:
        items = [("when", decision["time"]), ("outcome", decision["status"]), ("trigger", decision["trigger"]),
                 ("why", "; ".join(decision["reasons"])), ("gate", _gate_text(decision["gate"], facts.metric)),
                 ("duration", f"{decision['duration']:.1f} s" if decision["duration"] is not None else None)]
        if decision["error"]:
            items.append(("error", f"[{decision['error_type']}] {decision['error']}"))
        out += [_md_table(["fact", "value"], items), ""]
    items = performance_items(facts.status)
    out += ["### Recent performance", "", _md_table(["fact", "value"], items) if items else "No evaluation data.", ""]
    out += ["### Drift", "", _md_para(facts.status.get("drift_note") or "no drift check configured or run"), ""]
    if facts.drift:
        out += [_md_table(["feature", "PSI", "verdict"], [[f.name, _num(f.psi, ".3g"), _verdict(f)] for f in facts.drift]), ""]
        for f in facts.drift[:WORST_SHOWN]:
            if f.bins and len(f.recent) == len(f.bins):
                out += [_md_para(f"{feature_of(f.name)}: reference vs recent share per bin"), "",
                        _md_table(["bin", "reference", "recent"],
                                  [[b, f"{r:.1%}", f"{c:.1%}"] for b, r, c in zip(f.bins, f.reference, f.recent)]), ""]
    out += ["### Timeline", ""]
    if facts.history:
        out += [_md_table(["time", "event", "trigger", "version", "what"],
                          [[t, s, tr, f"v{v}" if v is not None else None, w]
                           for t, s, tr, v, w in timeline(facts)[:TIMELINE_ROWS]]), ""]
    else:
        out += ["The state log has no events for this model.", ""]
    return "\n".join(out)


def _md_overview(rows):
    table = _md_table(["model", "kind", "state", "score", "metric", "age", "last result", "detail"],
                      [[r.name, r.kind, r.state, _num(r.score), r.metric, _age_text(r.age_seconds),
                        f"{r.last_status} {_stamp(r.last_time)}" if r.last_status else None, r.detail] for r in rows])
    return "\n".join(["## Overview", "", table, ""])


def _md_segments(entry, lines):
    return _md_table(["segment", "state", "version", entry.metric, "age", "failures", "last event"],
                     [[s.name, s.state, f"v{s.version}" if s.version is not None else None, _num(s.score),
                       _age_text(s.age_seconds), s.failures,
                       f"{s.last_status} {_stamp(s.last_time)}" if s.last_status else None] for s in lines])


def _md_entry(entry):
    out = [f"## {_m(entry.name)}", ""]
    if entry.error:
        return "\n".join(out + [_md_para(f"The segments of {entry.name} cannot be listed: {entry.error}"), ""])
    c = entry.counts
    out += [f"{c.segments} segments; a segment's own page: `retrainctl report {_m(entry.name)}:KEY`", "",
            "### Counts by state", "",
            _md_table(["segments", "up to date", "due", "failed", "skipped", "paused", "no data", "oldest model"],
                      [[c.segments, c.up_to_date, c.due, c.failed, c.skipped, c.paused, c.no_data,
                        _age_text(c.oldest_model_age_seconds)]]), "", "### Scores", ""]
    out += [_md_table(["metric", *QUARTILES], [[entry.metric, *map(_num, entry.quartiles())]]) if entry.quartiles()
            else "No segment has a scored live version.", ""]
    changed = entry.this_round()
    out += ["### Changed this round", "", f"{len(changed)} segments have a record from the entry's newest round"
            + (f" (the newest {ROUND_LISTED} listed)" if len(changed) > ROUND_LISTED else "") + ".", ""]
    if changed:
        out += [_md_segments(entry, changed[:ROUND_LISTED]), ""]
    for _, title, lines in _worst(entry):
        out += [f"### {_m(title)}", "", _md_segments(entry, lines) if lines else "None.", ""]
    out += [f"All {len(entry.segments)} segments are listed in the HTML page (`--format html`).", ""]
    return "\n".join(out)


def render_markdown(facts_list, generated_at, entries=(), overview=None):
    """The same facts as Markdown tables (a pull-request comment, $GITHUB_STEP_SUMMARY); an entry
    without its table of every segment."""
    head = f"# retrainctl report\n\ngenerated {_time(generated_at)}\n"
    parts = [_md_overview(overview)] if overview is not None else []
    parts += [_md_entry(e) for e in entries] + [_md_model(f) for f in facts_list]
    return head + "\n" + ("\n".join(parts) or "No models selected.\n")


def render(facts_list: list[ModelFacts], fmt: str = "html", generated_at: float | None = None,
           entries: Sequence[EntryFacts] = (), overview: list[OverviewRow] | None = None) -> str:
    generated_at = time.time() if generated_at is None else generated_at
    return (render_markdown if fmt == "md" else render_html)(facts_list, generated_at, entries, overview)


def page(config: Config, models: list[ModelConfig], fmt: str = "html", clock: Callable[[], float] = time.time,
         entries: dict[str, list[ModelConfig]] | None = None, overview: bool = False) -> str:
    """The report page of `models` and of `entries` ({entry: its segments}) as text (HTML or
    Markdown); with `overview`, it opens on the table of them all, worst first."""
    facts = gather(config, models, clock)
    entry_list = gather_entries(config, entries or {}, clock)
    rows = None
    if overview:
        rows = worst_first([f.overview for f in facts if f.overview is not None]
                           + [entry_overview(e) for e in entry_list])
    return render(facts, fmt, clock(), entry_list, rows)
