"""The decision core: given a model's policy, what the log says and what was observed now,
which triggers fire and what to do. Pure functions of values: no files, no clock, no ML imports."""
from dataclasses import dataclass
from enum import StrEnum
from typing import Optional


class TriggerType(StrEnum):
    """What caused a retrain (str-valued: the log, `--json` and the metrics label hold the word)."""

    MANUAL = "manual"
    INITIAL = "initial"
    DATA_CHANGE = "data_change"
    MODEL_AGE = "model_age"
    PERFORMANCE = "performance"
    DRIFT = "drift"


# Actions a decision can end in.
TRAIN = "train"
SKIP_SMALL = "skip"          # due, but fewer rows than min_data_size: one `skipped` event per data hash
NOTHING = "none"             # nothing due
WAIT = "wait"                # evaluated less than check_interval ago
HOLD = "hold"                # due, but automatic retraining is paused or disabled
BACKOFF = "backoff"          # due, but the last automatic attempt failed and the retry is not yet due
GAVE_UP = "gave_up"          # max_retries failures for this data: waits for new data or a manual train
ERROR = "error"              # the data file could not be read

# Why a model a trigger fires for is not trained now (Decision.held): `status`'s DUE column and
# the model_retraining_held metric say it, so neither reads as "not due".
HELD = ("paused", "disabled", "too_few_rows", "backoff", "gave_up")


@dataclass(frozen=True)
class Reason:
    trigger_type: str
    description: str


@dataclass(frozen=True)
class Observation:
    """Everything the decision needs, gathered by the shell."""

    now: float
    data_hash: Optional[str] = None
    data_rows: Optional[int] = None
    data_size: Optional[int] = None           # bytes fingerprinted: the fit reads this prefix of a growing file
    data_path: str = ""
    data_error: Optional[str] = None
    model_version: Optional[int] = None
    model_data_hash: Optional[str] = None
    model_trained_at: Optional[float] = None
    paused: bool = False
    skipped_hash: Optional[str] = None
    rejected_at: Optional[float] = None       # a candidate for this data hash was rejected then
    failures_in_row: int = 0
    failure_hash: Optional[str] = None
    last_failure_time: Optional[float] = None
    performance: Optional[Reason] = None      # filled in by the performance check, when it fires
    manual: bool = False
    drift: Optional[Reason] = None            # filled in by the drift check, when it fires
    quality: Optional[dict] = None            # what the performance/drift checks saw, for `status`
    quality_keys: Optional[dict] = None       # {trigger: evidence key} of the quality triggers that fired
    quality_evidence: Optional[dict] = None   # {trigger: the test's numbers}, for the history record
    quality_alerts: Optional[dict] = None     # {trigger: evidence key} of the signals that only alert
    data_files: Optional[tuple] = None        # a data set's ((relative path, hash), ...); None for one file
    fit_files: Optional[list] = None          # what the fit reads (datasets.DataSet.fit_files)

    @property
    def failures_on_data(self):
        """Failures in a row that count against the data the model has now (the retry policy's
        count): failures on other data, or while the file was unreadable, no longer do."""
        return self.failures_in_row if self.failure_hash == self.data_hash else 0


@dataclass(frozen=True)
class Decision:
    action: str
    reasons: tuple = ()
    note: str = ""
    next_retry: Optional[float] = None
    evaluated: bool = True
    held: Optional[str] = None  # one of HELD when a trigger fires but something holds the retrain

    @property
    def due(self):
        return self.action == TRAIN

    @property
    def trigger_type(self):
        return self.reasons[0].trigger_type if self.reasons else None

    def describe(self):
        return "; ".join(r.description for r in self.reasons)


def fire(policy, obs):
    """Every trigger that fires now: manual first (it names the event), then initial,
    data_change, model_age, performance and drift (with drift_action retrain)."""
    reasons = [Reason(TriggerType.MANUAL, "manual train requested")] if obs.manual else []
    if obs.data_hash is None:
        return reasons
    if obs.model_version is None:
        # A first candidate the gate rejected is not retried on the same data (no loop).
        return reasons + ([Reason(TriggerType.INITIAL, "no current model")] if obs.rejected_at is None else [])
    if obs.data_hash != obs.model_data_hash and obs.rejected_at is None:
        reasons.append(Reason(TriggerType.DATA_CHANGE, f"data file changed: {obs.data_path}"))
    if obs.model_trained_at is not None:
        # A rejected candidate for this same data resets the clock: retraining on the same data
        # again and again would only produce the same rejected model.
        reference = max(obs.model_trained_at, obs.rejected_at or 0)
        age_h = (obs.now - reference) / 3600.0
        if age_h > policy.max_model_age_hours:
            reasons.append(Reason(
                TriggerType.MODEL_AGE, f"model is {age_h:.1f}h old (max_model_age_hours {policy.max_model_age_hours:g})"))
    if obs.performance is not None:
        reasons.append(obs.performance)
    # Retraining on the same data cannot fix input drift: by default (drift_action alert) it is a
    # signal for status, metrics and alerts, and a retrain only where the training data moves too.
    if obs.drift is not None and policy.drift_action == "retrain":
        reasons.append(obs.drift)
    return reasons


def retry_delay(policy, failures):
    """Exponential backoff after `failures` automatic failures in a row, capped at max_model_age_hours."""
    if failures <= 0:
        return 0.0
    cap = policy.max_model_age_hours * 3600.0
    return min(policy.retry_backoff_seconds * (2 ** (failures - 1)), cap)


def waiting(policy, now, last_evaluated):
    """A WAIT decision while the model was evaluated less than check_interval ago, else None.
    Asked before anything is observed, so a waiting model costs nothing."""
    if last_evaluated is None or policy.check_interval <= 0:
        return None
    since = now - last_evaluated
    if 0 <= since < policy.check_interval:
        return Decision(WAIT, note=f"evaluated {since:.0f}s ago (check_interval {policy.check_interval}s)",
                        evaluated=False)
    return None


def decide(policy, obs):
    """What to do with one model now."""
    if obs.data_error is not None:
        return Decision(ERROR, note=obs.data_error)
    if obs.manual:
        reasons = tuple(fire(policy, obs))
        if obs.data_rows is not None and obs.data_rows < policy.min_data_size:
            return Decision(SKIP_SMALL, reasons, _too_small(policy, obs), held="too_few_rows")
        return Decision(TRAIN, reasons)
    reasons = tuple(fire(policy, obs))
    if not reasons:
        note = ""
        if obs.rejected_at is not None and obs.data_hash != obs.model_data_hash:
            note = "candidate for this data was rejected or rolled back; waiting for new data"
        return Decision(NOTHING, note=note)
    if obs.paused:
        return Decision(HOLD, reasons, "paused", held="paused")
    if not policy.enable_auto_retraining:
        return Decision(HOLD, reasons, "enable_auto_retraining is false", held="disabled")
    if obs.data_rows is not None and obs.data_rows < policy.min_data_size:
        if obs.skipped_hash == obs.data_hash:
            return Decision(HOLD, reasons, _too_small(policy, obs) + " (already recorded)", held="too_few_rows")
        return Decision(SKIP_SMALL, reasons, _too_small(policy, obs), held="too_few_rows")
    failures = obs.failures_on_data
    if failures:
        if failures >= policy.max_retries:
            return Decision(GAVE_UP, reasons,
                            f"{failures} failures in a row for this data; waiting for new data or a manual train",
                            held="gave_up")
        next_retry = (obs.last_failure_time or 0) + retry_delay(policy, failures)
        if obs.now < next_retry:
            return Decision(BACKOFF, reasons,
                            f"{failures} failure(s) in a row; next retry in {next_retry - obs.now:.0f}s",
                            next_retry=next_retry, held="backoff")
    return Decision(TRAIN, reasons)


def _too_small(policy, obs):
    return f"{obs.data_path} has only {obs.data_rows} rows, min_data_size is {policy.min_data_size}"


def degradation(baseline, current, higher_is_better):
    """How much worse `current` is than `baseline`, relative (0.1 = 10% worse; negative = better).
    Follows the metric's direction; a zero baseline falls back to the absolute difference."""
    diff = (baseline - current) if higher_is_better else (current - baseline)
    return diff / abs(baseline) if baseline else diff


@dataclass(frozen=True)
class GateResult:
    promote: bool
    reason: str


def gate(candidate_score, champion_score, higher_is_better, tolerance, sanity_problem=None,
         force=False, has_champion=True):
    """Promote a candidate only if it is sane and not worse than the champion on the same
    holdout rows by more than `tolerance` (relative)."""
    if force:
        why = "forced by operator (--force)"
        if sanity_problem:
            why += f" despite failed sanity check: {sanity_problem}"
        return GateResult(True, why)
    if sanity_problem:
        return GateResult(False, f"sanity check failed: {sanity_problem}")
    if not has_champion:
        return GateResult(True, "nothing to compare with")
    if champion_score is None:
        return GateResult(True, "current model could not be scored on the holdout")
    worse = degradation(champion_score, candidate_score, higher_is_better)
    verdict = (f"candidate {candidate_score:.4g} vs current {champion_score:.4g} on the same holdout"
               f" (tolerance {tolerance:g})")
    if worse > tolerance:
        return GateResult(False, f"worse than the current model: {verdict}")
    return GateResult(True, verdict)
