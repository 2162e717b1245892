"""The decision core: given a model's policy, what the log says and what was observed now,
which triggers fire and what to do. Pure functions of values: no files, no clock, no ML imports."""
from dataclasses import dataclass
from typing import Any, Protocol

from .records import QUALITY_TRIGGERS, Action, Held, TriggerType, candidate_key


class Policy(Protocol):
    """What the decision reads of a model's policy (config.records.RetrainingConfig)."""

    @property
    def max_model_age_hours(self) -> float: ...
    @property
    def drift_action(self) -> str: ...
    @property
    def retry_backoff_seconds(self) -> float: ...
    @property
    def check_interval(self) -> int: ...
    @property
    def min_data_size(self) -> int: ...
    @property
    def enable_auto_retraining(self) -> bool: ...
    @property
    def max_retries(self) -> int: ...


@dataclass(frozen=True)
class Reason:
    trigger_type: TriggerType
    description: str


@dataclass(frozen=True)
class Observation:
    """Everything the decision needs, gathered by the shell."""

    now: float
    data_hash: str | None = None
    data_rows: int | None = None
    data_size: int | None = None              # bytes fingerprinted: the fit reads this prefix of a growing file
    data_path: str = ""
    data_error: str | None = None
    model_version: int | None = None
    model_data_hash: str | None = None
    model_trained_at: float | None = None
    paused: bool = False
    skipped_hash: str | None = None
    rejected_at: float | None = None          # a candidate for this data hash was rejected then
    failures_in_row: int = 0
    failure_hash: str | None = None
    last_failure_time: float | None = None
    performance: Reason | None = None         # filled in by the performance check, when it fires
    manual: bool = False
    drift: Reason | None = None               # filled in by the drift check, when it fires
    quality: dict[str, Any] | None = None     # what the performance/drift checks saw, for `status`
    quality_keys: dict[str, str] | None = None       # {trigger: evidence key} of the quality triggers that fired
    quality_evidence: dict[str, Any] | None = None   # {trigger: the test's numbers}, for the history record
    quality_alerts: dict[str, str] | None = None     # {trigger: evidence key} of the signals that only alert
    data_files: tuple[tuple[str, str], ...] | None = None  # a data set's (relative path, hash) pairs; None for one file
    fit_files: list[list[str]] | None = None  # what the fit reads (data.datasets.DataSet.fit_files)
    config_hash: str | None = None            # the model's training config now (ModelConfig.training_config)
    model_config_hash: str | None = None      # the live version's; None for a version trained before 0.2
    config_changes: tuple[str, ...] = ()      # the training config keys that differ from the live version's
    force: bool = False                       # `train --force`: train even when nothing changed
    model_damaged: bool = False               # the live model file fails its checksum (asked only when it matters)
    no_data: bool = False                     # a segment model whose rows are gone from its entry's data
    min_segment_rows: int | None = None       # a segment model's entry's min_segment_rows

    @property
    def candidate(self) -> str | None:
        """What a candidate trained now would be made of (core.records.candidate_key)."""
        return candidate_key(self.data_hash, self.config_hash)

    @property
    def failures_on_data(self) -> int:
        """Failures in a row that count against the data and config the model has now (the retry
        policy's count): failures on other data or another config (a config error fixed), or
        while the file was unreadable, no longer do."""
        return self.failures_in_row if self.failure_hash in (self.candidate, self.data_hash) else 0

    @property
    def config_changed(self) -> bool:
        return self.model_config_hash is not None and self.config_hash != self.model_config_hash

    @property
    def unchanged(self) -> bool:
        """The training data and config are those of the live version: a retrain would only make
        a copy of it."""
        return (self.model_version is not None and self.data_hash is not None
                and self.data_hash == self.model_data_hash and not self.config_changed
                and not self.model_damaged)


@dataclass(frozen=True)
class Decision:
    action: Action
    reasons: tuple[Reason, ...] = ()
    note: str = ""
    next_retry: float | None = None
    evaluated: bool = True
    held: Held | None = None  # set when a trigger fires but something holds the retrain

    @property
    def due(self) -> bool:
        return self.action == Action.TRAIN

    @property
    def trigger_type(self) -> TriggerType | None:
        return self.reasons[0].trigger_type if self.reasons else None

    def describe(self) -> str:
        return "; ".join(r.description for r in self.reasons)


def alerts(obs: Observation) -> str:
    """The quality signals that only alert (drift with drift_action alert), as the WHY column says
    them: `drift alert: period, wait_time`; "" when there is none."""
    parts = []
    for kind in sorted(obs.quality_alerts or {}):
        evidence = (obs.quality_evidence or {}).get(kind) or {}
        named = list(evidence.get("drifted_features") or ())
        parts.append(f"{kind} alert" + (f": {', '.join(named)}" if named else ""))
    return "; ".join(parts)


def fire(policy: Policy, obs: Observation) -> list[Reason]:
    """Every trigger that fires now: manual first (it names the event), then initial,
    data_change, model_age, performance and drift (with drift_action retrain)."""
    reasons: list[Reason] = [Reason(TriggerType.MANUAL, "manual train requested")] if obs.manual else []
    if obs.data_hash is None:
        return reasons
    if obs.model_version is None:
        # A first candidate the gate rejected is not retried on the same data (no loop).
        return reasons + ([Reason(TriggerType.INITIAL, "no current model")] if obs.rejected_at is None else [])
    if obs.data_hash != obs.model_data_hash and obs.rejected_at is None:
        reasons.append(Reason(TriggerType.DATA_CHANGE, f"data file changed: {obs.data_path}"))
    if obs.config_changed and obs.rejected_at is None:
        changed = ", ".join(obs.config_changes) or "training config"
        reasons.append(Reason(TriggerType.CONFIG_CHANGE, f"config changed since v{obs.model_version}: {changed}"))
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


def retry_delay(policy: Policy, failures: int) -> float:
    """Exponential backoff after `failures` automatic failures in a row, capped at max_model_age_hours."""
    if failures <= 0:
        return 0.0
    cap = policy.max_model_age_hours * 3600.0
    return min(policy.retry_backoff_seconds * (2 ** (failures - 1)), cap)


def waiting(policy: Policy, now: float, last_evaluated: float | None) -> Decision | None:
    """A WAIT decision while the model was evaluated less than check_interval ago, else None.
    Asked before anything is observed, so a waiting model costs nothing."""
    if last_evaluated is None or policy.check_interval <= 0:
        return None
    since = now - last_evaluated
    if 0 <= since < policy.check_interval:
        return Decision(Action.WAIT, note=f"evaluated {since:.0f}s ago (check_interval {policy.check_interval}s)",
                        evaluated=False)
    return None


def decide(policy: Policy, obs: Observation) -> Decision:
    """What to do with one model now."""
    if obs.data_error is not None:
        return Decision(Action.ERROR, note=obs.data_error)
    if obs.manual:
        reasons = tuple(fire(policy, obs))
        if too_few_segment_rows(obs):
            return Decision(Action.SKIP, reasons, _too_small_segment(obs), held=Held.TOO_FEW_ROWS)
        if obs.data_rows is not None and obs.data_rows < policy.min_data_size:
            return Decision(Action.SKIP, reasons, _too_small(policy, obs), held=Held.TOO_FEW_ROWS)
        if obs.unchanged and not obs.force:
            return Decision(Action.UNCHANGED, reasons, _unchanged(obs) + " (--force trains anyway)",
                            held=Held.UNCHANGED)
        return Decision(Action.TRAIN, reasons)
    reasons = tuple(fire(policy, obs))
    if obs.no_data:
        return Decision(Action.NOTHING, note=NO_DATA)
    if not reasons:
        note = ""
        if obs.rejected_at is not None and obs.data_hash != obs.model_data_hash:
            note = "candidate for this data was rejected or rolled back; waiting for new data"
        return Decision(Action.NOTHING, note=note)
    if obs.paused:
        return Decision(Action.HOLD, reasons, "paused", held=Held.PAUSED)
    if not policy.enable_auto_retraining:
        return Decision(Action.HOLD, reasons, "enable_auto_retraining is false", held=Held.DISABLED)
    if too_few_segment_rows(obs):
        return Decision(Action.HOLD, reasons, _too_small_segment(obs), held=Held.TOO_FEW_ROWS)
    if obs.data_rows is not None and obs.data_rows < policy.min_data_size:
        if obs.skipped_hash == obs.data_hash:
            return Decision(Action.HOLD, reasons, _too_small(policy, obs) + " (already recorded)", held=Held.TOO_FEW_ROWS)
        return Decision(Action.SKIP, reasons, _too_small(policy, obs), held=Held.TOO_FEW_ROWS)
    if obs.unchanged:
        return Decision(Action.UNCHANGED, reasons, _unchanged(obs), held=Held.UNCHANGED)
    failures = obs.failures_on_data
    if failures:
        if failures >= policy.max_retries:
            return Decision(Action.GAVE_UP, reasons,
                            f"{failures} failures in a row for this data; waiting for new data or a manual train",
                            held=Held.GAVE_UP)
        next_retry = (obs.last_failure_time or 0) + retry_delay(policy, failures)
        if obs.now < next_retry:
            return Decision(Action.BACKOFF, reasons,
                            f"{failures} failure(s) in a row; next retry in {next_retry - obs.now:.0f}s",
                            next_retry=next_retry, held=Held.BACKOFF)
    return Decision(Action.TRAIN, reasons)


# What an entry's segment may have decided for its entry to be quiet (observe.quiet): nothing to
# train or record, no answer that moves with the clock but its age.
SETTLED = (Action.NOTHING, Action.HOLD, Action.GAVE_UP)
CLOCK_TRIGGERS = (TriggerType.MODEL_AGE, *QUALITY_TRIGGERS)


def settled_until(policy: Policy, obs: Observation, decision: Decision) -> float | None:
    """How long `decision` stands while only the clock moves: the time before which the same
    observation decides the same (inf when no age trigger can fire), or None when it does not
    stand (due, an error, a record to write, a retry backoff, an age or quality trigger or alert,
    a manual train). The log and the data change nothing here: what depends on them is checked
    by whoever keeps the answer."""
    if obs.manual or obs.force or decision.action not in SETTLED or obs.quality_alerts:
        return None
    if any(r.trigger_type in CLOCK_TRIGGERS for r in decision.reasons):
        return None
    if obs.model_trained_at is None:
        return float("inf")
    return max(obs.model_trained_at, obs.rejected_at or 0.0) + policy.max_model_age_hours * 3600.0


def _unchanged(obs: Observation) -> str:
    return (f"the training data and config have not changed since v{obs.model_version}: a retrain would only "
            f"copy it")


NO_DATA = "no data"  # the note of a segment whose rows are gone: it keeps its model, nothing fails


def too_few_segment_rows(obs: Observation) -> bool:
    """A segment below its entry's min_segment_rows: no model, no record, counted as skipped."""
    return obs.min_segment_rows is not None and obs.data_rows is not None and obs.data_rows < obs.min_segment_rows


def _too_small_segment(obs: Observation) -> str:
    return f"segment has only {obs.data_rows} rows, min_segment_rows is {obs.min_segment_rows}"


def _too_small(policy: Policy, obs: Observation) -> str:
    return f"{obs.data_path} has only {obs.data_rows} rows, min_data_size is {policy.min_data_size}"


def degradation(baseline: float, current: float, higher_is_better: bool) -> float:
    """How much worse `current` is than `baseline`, relative (0.1 = 10% worse; negative = better).
    Follows the metric's direction; a zero baseline falls back to the absolute difference."""
    diff = (baseline - current) if higher_is_better else (current - baseline)
    return diff / abs(baseline) if baseline else diff


# A model "has skill" when it removes at least NO_SKILL of a constant prediction's loss on its
# holdout (core.decide.skill) and its row losses are lower than the constant's at SKILL_ALPHA
# (fit.task.beats_constant_p). A live model that had skill, at least LIVE_SKILL, at its training
# is not replaced by a candidate without (labels shuffled or misaligned by an export, say).
NO_SKILL = 0.05
LIVE_SKILL = 0.2
SKILL_ALPHA = 0.01


def skill(score: float | None, constant: float | None, higher_is_better: bool) -> float | None:
    """The share of a constant prediction's loss that a model removes on the same rows: 1 for a
    perfect model, 0 for one no better than always predicting the training labels' mean (or
    median, or most frequent class), negative for a worse one. The loss is 1 - score for a
    score where higher is better (accuracy, f1, r2), else the score itself (mae, rmse). None
    when either score is missing or the constant's loss is 0 (a constant target)."""
    if score is None or constant is None:
        return None
    loss, constant_loss = ((1 - score, 1 - constant) if higher_is_better else (score, constant))
    if constant_loss <= 0:
        return None
    return 1 - loss / constant_loss


Skill = tuple[float | None, float | None, float | None]  # (score, constant_score, constant_p)


def skill_of(metadata: dict[str, Any]) -> Skill:
    """A version's (score, constant_score, constant_p), from its metadata.json (or a fit's)."""
    return metadata.get("score"), metadata.get("constant_score"), metadata.get("constant_p")


def has_skill(result: Skill, higher_is_better: bool, at_least: float) -> bool | None:
    """Whether a model removed at least `at_least` of a constant prediction's loss on its holdout,
    significantly (p below SKILL_ALPHA); None when that was not recorded."""
    score, constant, p = result
    share = skill(score, constant, higher_is_better)
    if share is None or p is None:
        return None
    return share >= at_least and p < SKILL_ALPHA


def skill_problem(candidate: Skill, live: Skill | None, higher_is_better: bool, metric: str,
                  live_version: int | None = None) -> str | None:
    """Why a candidate must not replace a live model that had skill: it has none. `candidate` and
    `live` are (score, constant_score, constant_p), each on its own holdout (the live one from its
    training); None when the live model had no skill or did not record it (stored before 0.3)."""
    if live is None or has_skill(live, higher_is_better, LIVE_SKILL) is not True:
        return None
    if has_skill(candidate, higher_is_better, NO_SKILL) is not False:
        return None
    (score, constant, _), (live_score, live_constant, _) = candidate, live
    return (f"no better than a constant prediction: candidate {metric} {score:.4g} vs {constant:.4g} for "
            f"predicting the same value for every row, where v{live_version} scored {live_score:.4g} vs "
            f"{live_constant:.4g} at its training (are the labels shuffled or misaligned?)")


@dataclass(frozen=True)
class GateResult:
    promote: bool
    reason: str


def gate(candidate_score: float, champion_score: float | None, higher_is_better: bool, tolerance: float,
         sanity_problem: str | None = None, force: bool = False, has_champion: bool = True,
         no_skill: str | None = None) -> GateResult:
    """Promote a candidate only if it is sane, not worse than the champion on the same holdout
    rows by more than `tolerance` (relative), and has skill where the live model had some
    (`no_skill`: skill_problem's answer; a candidate and a champion both near a constant
    prediction on rows whose labels are noise are "not worse" than each other)."""
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
        if no_skill:
            return GateResult(False, no_skill)
        return GateResult(True, "current model could not be scored on the holdout")
    worse = degradation(champion_score, candidate_score, higher_is_better)
    verdict = (f"candidate {candidate_score:.4g} vs current {champion_score:.4g} on the same holdout"
               f" (tolerance {tolerance:g})")
    if worse > tolerance:
        return GateResult(False, f"worse than the current model: {verdict}")
    if no_skill:  # not worse on these rows, but these rows may be noise to both (shuffled labels)
        return GateResult(False, f"{no_skill}; {verdict}")
    return GateResult(True, verdict)
