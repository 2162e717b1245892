"""`retrainctl train MODEL`: a manual retrain of one model, whatever its triggers, pause or
auto-retraining setting."""
import time

from ..config.records import Config
from ..core import decide
from ..core.outcomes import Outcome
from ..core.records import Action, TriggerType
from ..core.values import one_line
from ..fit.executors import OpenExecutor
from ..retrain.settle import settle
from ..state.log import StateLog
from ..state.store import ModelStore
from .shell import Callback, Clock, Shell, model_lock, one


def train(config: Config, name: str, reason: str | None = None, force: bool = False, clock: Clock = time.time,
          callback: Callback | None = None, store: ModelStore | None = None, log: StateLog | None = None,
          open_executor: OpenExecutor | None = None) -> Outcome:
    """Retrain `name` now; `force` promotes the candidate whatever the gate says. `reason` is
    recorded as one line (core.values.one_line)."""
    reason = one_line(reason) if reason else None
    shell = Shell(config, clock, callback, store, log, open_executor)
    model = one(config, name, shell.observer)
    shell.prepare_to_train()
    with model_lock(config, model.name, "already being trained by another process"):
        state = shell.recovery.close_dead_attempts(model)  # see retrain.attempt.Attempts.claim
        obs = shell.observer.observe(model, state, manual=True, force=force)
        shell.observer.save()
        decision = decide.decide(model.policy, obs)
        if reason:
            decision = decide.Decision(decision.action, (decide.Reason(TriggerType.MANUAL, reason),)
                                       + decision.reasons[1:], decision.note)
        if decision.action == Action.UNCHANGED:  # nothing to train on: recorded, and not a failure
            return settle(shell.recorder, model, decision, obs, trigger=TriggerType.MANUAL)
        if decision.action in (Action.ERROR, Action.SKIP):
            out = settle(shell.recorder, model, decision, obs, trigger=TriggerType.MANUAL)
            out.failed = True  # asked for a model and got none
            return out
        return shell.attempts.run_one(model, decision, obs, force=force)
