"""Carrying out a decision that trains nothing: record a skip or a data error (once per cause,
however many runs meet it at the same time), or report what would happen; and the drift alert
that is sent but never recorded."""
import logging
from typing import Any

from ..base.errors import ErrorType
from ..config.records import ModelConfig
from ..core.decide import Decision, Observation
from ..core.outcomes import Outcome
from ..core.records import Action, Status, TriggerType, quality_fields
from ..core.values import utcnow_iso
from .recorder import Recorder

log = logging.getLogger(__name__)


def settle(recorder: Recorder, model: ModelConfig, decision: Decision, obs: Observation, dry_run: bool = False,
           trigger: TriggerType = TriggerType.DATA_CHANGE) -> Outcome:
    """Record a skip or an error, or report the decision. `trigger` names the failure record of
    data that could not be read (`manual` when `train` met it)."""
    if decision.action == Action.ERROR:
        log.error("%s", decision.note)
        event = None
        if not dry_run:  # once per distinct error, however many runs meet it at the same time
            event = recorder.write(model, trigger, Status.FAILURE, obs.now,
                                   "data file could not be read", error=decision.note,
                                   error_type=ErrorType.DATA_ERROR, error_signature=decision.note,
                                   config_hash=obs.config_hash,
                                   unless=lambda st: st.error_signature == decision.note)
        return Outcome.of(model.name, decision, f"error: {decision.note}", event, failed=True)
    if decision.action == Action.SKIP:
        event = None
        if not dry_run:
            event = recorder.write(model, decision.trigger_type or TriggerType.MANUAL, Status.SKIPPED, obs.now,
                                   f"{decision.describe()}; not trained: {decision.note}",
                                   data_hash=obs.data_hash, error=decision.note, error_type=ErrorType.TOO_FEW_ROWS,
                                   config_hash=obs.config_hash,
                                   unless=lambda st: st.skipped_hash == obs.data_hash)
            if event is not None:
                log.warning("%s: skipped: %s", model.name, decision.note)
        return Outcome.of(model.name, decision, f"skipped: {decision.note}", event)
    if decision.action == Action.UNCHANGED:
        return _unchanged(recorder, model, decision, obs, dry_run)
    # A due model reaches here only on a dry run: real fits are claimed and trained together
    # (retrain.attempt.Attempts.claim, Attempts.run).
    result = {Action.TRAIN: "would train", Action.NOTHING: "up to date",
              Action.WAIT: "not evaluated"}.get(decision.action, "not trained")
    return Outcome.of(model.name, decision, result)


def _unchanged(recorder: Recorder, model: ModelConfig, decision: Decision, obs: Observation,
               dry_run: bool) -> Outcome:
    """A trigger fired, but the training data and config are the live version's: a retrain would
    make a copy of it, pushing real versions out of the store. Recorded once (a `skipped` record,
    error_type `unchanged`), which restarts the age clock and answers the quality evidence; a
    drift or performance trigger says the production inputs moved while the training data did not
    (the notifications carry it as a drift or performance event)."""
    if dry_run:
        return Outcome.of(model.name, decision, f"unchanged: {decision.note}")
    why = []
    if any(r.trigger_type == TriggerType.DRIFT for r in decision.reasons):
        why.append("drift in production inputs; the training data has not changed")
    if any(r.trigger_type == TriggerType.PERFORMANCE for r in decision.reasons):
        why.append("performance degraded on new labelled rows; the training data has not changed")
    text = "; ".join([decision.describe(), *why, f"not trained: {decision.note}"])
    seen = obs.rejected_at or 0.0
    event = recorder.write(model, decision.trigger_type or TriggerType.MANUAL, Status.SKIPPED, obs.now, text,
                           data_hash=obs.data_hash, error=decision.note, error_type=ErrorType.UNCHANGED,
                           version=obs.model_version, config_hash=obs.config_hash,
                           **quality_fields(obs.quality_keys, obs.quality_evidence),
                           unless=lambda st: (st.rejected.get(obs.candidate) or 0.0) > seen)
    if event is not None:
        log.warning("%s: not trained: %s", model.name, "; ".join(why) or decision.note)
    return Outcome.of(model.name, decision, f"unchanged: {decision.note}", event)


def drift_alert(model: ModelConfig, obs: Observation) -> dict[str, Any]:
    """The notification of drift that only alerts (drift_action alert): shaped like a history
    record, but never written to the log, since nothing was done. Its evidence key makes the
    webhooks send it once per drift evidence (data and drift file)."""
    assert obs.drift is not None and obs.quality_alerts
    return {"model_name": model.name, "status": "drift", "trigger_type": TriggerType.DRIFT,
            "trigger_time": utcnow_iso(obs.now), "duration": 0.0, "data_hash": obs.data_hash,
            "description": obs.drift.description, "version": obs.model_version, "score": None,
            "metric": model.metric, "error": None, "error_type": None,
            "quality_keys": dict(obs.quality_alerts), "quality_evidence": obs.quality_evidence}
