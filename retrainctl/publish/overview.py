"""What the report's overview and an entry's page say, from `status` rows alone: a state word per
model or segment (worst first), per-entry counts, the score distribution, the segments of the
newest round and the worst segments. Plain values in, plain values out; report.py renders them."""
import statistics
from dataclasses import dataclass, field
from enum import StrEnum

from ..core.outcomes import EntryCounts, StatusRow, counts_as_due, status_counts
from ..core.records import RETRAIN_STATUSES, Action, Held
from ..core.values import finite_number

# The worst segments listed per measure (score, age, failures).
WORST_LISTED = 20
# A segment "changed this round" when its newest record is this close to the entry's newest one:
# a check observes all of an entry's segments within seconds of each other, and checks run
# check_interval apart (minutes to hours).
ROUND_SECONDS = 600
# Bins of the score histogram.
SCORE_BINS = 20



class State(StrEnum):
    """The one word the tables show for a model or segment, worst first: they sort on this order."""

    FAILING = "failing"              # failures in a row, or its data cannot be read
    NEVER_TRAINED = "never trained"
    DUE = "due"
    PAUSED = "paused"
    NO_DATA = "no data"              # a segment whose rows are gone
    SKIPPED = "skipped"              # a segment below min_segment_rows
    UP_TO_DATE = "up to date"


STATES = tuple(State)
RANK = {s: i for i, s in enumerate(STATES)}
RETRAINED = frozenset(str(s) for s in RETRAIN_STATUSES)


def state_of(row: StatusRow) -> State:
    if row.failures_in_row > 0 or row.data_error or row.action == Action.ERROR:
        return State.FAILING
    if row.no_data:
        return State.NO_DATA
    if row.held == Held.TOO_FEW_ROWS:
        return State.SKIPPED
    if row.paused:
        return State.PAUSED
    if row.model_version is None:
        return State.NEVER_TRAINED
    return State.DUE if counts_as_due(row.due, row.held) else State.UP_TO_DATE


@dataclass
class Line:
    """One model or segment as the tables show it."""

    name: str
    state: State
    version: int | None
    score: float | None
    age_seconds: float | None
    failures: int
    last_status: str | None
    last_time: str | None     # ISO, UTC
    last_when: float | None   # the same as Unix time
    rows: int | None
    note: str = ""

    @property
    def rank(self) -> int:
        return RANK[self.state]


def line(row: StatusRow) -> Line:
    last = row.last_event
    state = state_of(row)
    note = row.data_error or ""
    if not note and state == State.FAILING and last is not None:
        note = last.error or ""
    elif not note and row.due:
        note = "due: " + ", ".join(str(r.trigger_type) for r in row.due_reasons)
    return Line(row.model_name, state, row.model_version, finite_number(row.score), row.model_age_seconds,
                row.failures_in_row, str(last.status) if last is not None else None,
                last.trigger_time if last is not None else None, last.when if last is not None else None,
                row.data_rows, note)


@dataclass
class EntryFacts:
    """An entry with segment_by: its counts, its segments (by name) and what stands out."""

    name: str
    metric: str
    higher_is_better: bool
    counts: EntryCounts
    segments: list[Line]
    error: str = ""     # its segments could not be listed (the data error), so none are shown
    histogram: list[tuple[float, float, int]] = field(default_factory=list)  # (low, high, segments)

    def worst_by_score(self, n: int = WORST_LISTED) -> list[Line]:
        sign = 1 if self.higher_is_better else -1
        scored = [(s.score * sign, s) for s in self.segments if s.score is not None]
        return [s for _, s in sorted(scored, key=lambda p: (p[0], p[1].name))[:n]]

    def oldest(self, n: int = WORST_LISTED) -> list[Line]:
        aged = [(s.age_seconds, s) for s in self.segments if s.age_seconds is not None]
        return [s for _, s in sorted(aged, key=lambda p: (-p[0], p[1].name))[:n]]

    def most_failures(self, n: int = WORST_LISTED) -> list[Line]:
        return sorted((s for s in self.segments if s.failures), key=lambda s: (-s.failures, s.name))[:n]

    def this_round(self) -> list[Line]:
        """The segments whose newest record is a retraining record (not a pause or a rollback) of
        the entry's newest round (ROUND_SECONDS), newest first."""
        retrained = [(s.last_when, s) for s in self.segments if s.last_when is not None and s.last_status in RETRAINED]
        if not retrained:
            return []
        since = max(when for when, _ in retrained) - ROUND_SECONDS
        return [s for when, s in sorted(retrained, key=lambda p: (-p[0], p[1].name)) if when >= since]

    @property
    def median_score(self) -> float | None:
        scores = [s.score for s in self.segments if s.score is not None]
        return statistics.median(scores) if scores else None

    def quartiles(self) -> tuple[float, float, float, float, float] | None:
        """(min, 25%, median, 75%, max) of the live versions' scores; None without any."""
        scores = sorted(s.score for s in self.segments if s.score is not None)
        if not scores:
            return None
        q1, q2, q3 = statistics.quantiles(scores, n=4, method="inclusive") if len(scores) > 1 else scores * 3
        return scores[0], q1, q2, q3, scores[-1]


def entry_facts(name: str, metric: str, higher_is_better: bool, rows: list[StatusRow]) -> EntryFacts:
    """An entry's facts from the status rows of its segments (or of the entry itself alone, when
    its segments cannot be listed: then its data error is the page)."""
    if len(rows) == 1 and rows[0].model_name == name:
        return EntryFacts(name, metric, higher_is_better, EntryCounts(name), [],
                          rows[0].data_error or rows[0].note or "its segments cannot be listed")
    counts = (status_counts(rows) or [EntryCounts(name)])[0]
    lines = [line(r) for r in rows]
    return EntryFacts(name, metric, higher_is_better, counts, lines,
                      histogram=histogram([s.score for s in lines if s.score is not None]))


def histogram(scores: list[float], bins: int = SCORE_BINS) -> list[tuple[float, float, int]]:
    """(low, high, count) per bin of equal width over the scores' range; one bin when all are equal."""
    if not scores:
        return []
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return [(lo, hi, len(scores))]
    width = (hi - lo) / bins
    counts = [0] * bins
    for s in scores:
        counts[min(int((s - lo) / width), bins - 1)] += 1
    return [(lo + i * width, lo + (i + 1) * width, c) for i, c in enumerate(counts)]


@dataclass
class OverviewRow:
    """One declared model or one entry in the overview table."""

    name: str
    kind: str                 # "model" or "entry"
    state: State
    score: float | None       # a model's live score; an entry's median over its segments
    metric: str
    age_seconds: float | None  # an entry's oldest live model
    last_status: str | None
    last_time: str | None
    detail: str = ""

    @property
    def rank(self) -> int:
        return RANK[self.state]


def model_overview(row: StatusRow) -> OverviewRow:
    ln = line(row)
    return OverviewRow(ln.name, "model", ln.state, ln.score, row.metric, ln.age_seconds, ln.last_status,
                       ln.last_time, ln.note)


def entry_overview(entry: EntryFacts) -> OverviewRow:
    if entry.error:
        return OverviewRow(entry.name, "entry", State.FAILING, None, entry.metric, None, None, None, entry.error)
    segs = entry.segments
    state = min((s.state for s in segs), key=RANK.__getitem__, default=State.NEVER_TRAINED)
    newest = max(((s.last_when, s) for s in segs if s.last_when is not None), key=lambda p: p[0],
                 default=(None, None))[1]
    by_state: dict[State, int] = {}
    for s in segs:
        by_state[s.state] = by_state.get(s.state, 0) + 1
    detail = f"{len(segs)} segments: " + ", ".join(f"{by_state[s]} {s}" for s in STATES if s in by_state)
    return OverviewRow(entry.name, "entry", state, entry.median_score, entry.metric,
                       entry.counts.oldest_model_age_seconds, newest.last_status if newest else None,
                       newest.last_time if newest else None, detail)


def worst_first(rows: list[OverviewRow]) -> list[OverviewRow]:
    """By state (failing first), then oldest first, then by name."""
    return sorted(rows, key=lambda r: (r.rank, -(r.age_seconds or 0.0), r.name))
