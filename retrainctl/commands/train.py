"""`retrainctl train MODEL`: a manual retrain of one model, whatever its triggers, pause or
auto-retraining setting; or of every model a name stands for (an entry's segments, a glob), the
due ones fitted together as a check fits them."""
import dataclasses
import time

from ..base.locks import LockTimeout, training_lock
from ..config.records import Config, ModelConfig
from ..core import decide
from ..core.outcomes import Outcome
from ..core.records import Action, TriggerType
from ..core.values import one_line
from ..fit.executors import OpenExecutor
from ..retrain.attempt import Claim
from ..retrain.settle import settle
from ..state.log import StateLog
from ..state.store import ModelStore
from .shell import Callback, Clock, Shell, model_lock, one, select

BUSY = "already being trained by another process"


def train(config: Config, name: str, reason: str | None = None, force: bool = False, clock: Clock = time.time,
          callback: Callback | None = None, store: ModelStore | None = None, log: StateLog | None = None,
          open_executor: OpenExecutor | None = None) -> Outcome:
    """Retrain `name` (one model or segment) now; `force` promotes the candidate whatever the gate
    says. `reason` is recorded as one line (core.values.one_line)."""
    shell = Shell(config, clock, callback, store, log, open_executor)
    model = one(config, name, shell.observer)
    shell.start_validation()  # in the fit process that then fits: this one does not import scikit-learn
    try:
        shell.prepare_to_train()
        with model_lock(config, model.name, BUSY):
            out = _decide(shell, model, reason, force, alone=True)
            return out if isinstance(out, Outcome) else shell.attempts.run([out])[0]
    finally:
        shell.attempts.dismiss_prewarmed()


def train_many(config: Config, names: list[str] | tuple[str, ...], reason: str | None = None, force: bool = False,
               clock: Clock = time.time, callback: Callback | None = None, store: ModelStore | None = None,
               log: StateLog | None = None, open_executor: OpenExecutor | None = None) -> list[Outcome]:
    """Retrain now every model `names` stand for (an entry with segment_by stands for all of its
    segments, a shell glob for those it matches), one Outcome each. Each is decided under its own
    training lock, and the ones to train are fitted together on the executor, in batches, as a
    check fits its due models. A segment with too few rows of its own, or none, is skipped as a
    check skips it (no record, not a failure), one below min_data_size too (a `skipped` record,
    not a failure); one another process is training is a failure."""
    shell = Shell(config, clock, callback, store, log, open_executor)
    models = select(config, names, shell.observer)
    shell.recorder.gather(models)  # one notification per entry and event for its segments
    shell.start_validation()
    slots: list[Outcome | None] = []
    claims: dict[int, Claim] = {}  # index in slots -> Claim holding the model's training lock
    try:
        shell.prepare_to_train()
        for model in models:
            lock = training_lock(config.state_dir, model.name)
            try:
                lock.acquire()
            except LockTimeout:
                slots.append(Outcome(model.name, Action.SKIP, result=f"skipped: {BUSY}", failed=True))
                continue
            try:
                out = _decide(shell, model, reason, force, alone=False)
            except BaseException:
                lock.release()
                raise
            if isinstance(out, Outcome):
                lock.release()
                slots.append(out)
            else:
                out.lock = lock
                claims[len(slots)] = out
                slots.append(None)  # filled in when its fit comes back
        shell.observer.save()  # what was evaluated between the models is written at most once a second
        for index, done in zip(claims, shell.attempts.run(list(claims.values()))):
            slots[index] = done
    finally:
        for claim in claims.values():
            claim.lock.release()
        shell.attempts.dismiss_prewarmed()
        shell.recorder.flush()
    return [out for out in slots if out is not None]


def _decide(shell: Shell, model: ModelConfig, reason: str | None, force: bool, alone: bool) -> Outcome | Claim:
    """Observe and decide `model` for a manual train, its training lock held: the Outcome of one
    not to train (recorded where a record is due), or the Claim to fit. `alone`: the model was
    named by itself, so a segment too small to train is a recorded failure (asked for a model and
    got none); among many it is skipped as a check skips it."""
    reason = one_line(reason) if reason else None
    state = shell.recovery.close_dead_attempts(model)  # see retrain.attempt.Attempts.claim
    obs = shell.observer.observe(model, state, manual=True, force=force)
    shell.observer.save(final=alone)
    decision = decide.decide(model.policy, obs)
    if reason:
        decision = dataclasses.replace(decision, reasons=(decide.Reason(TriggerType.MANUAL, reason),)
                                       + decision.reasons[1:])
    if not alone and obs.no_data:
        return Outcome(model.name, Action.NOTHING, note=decide.NO_DATA)
    if not alone and decide.too_few_segment_rows(obs):
        return Outcome.of(model.name, dataclasses.replace(decision, action=Action.HOLD))
    if decision.action == Action.UNCHANGED:  # nothing to train on: recorded, and not a failure
        return settle(shell.recorder, model, decision, obs, trigger=TriggerType.MANUAL)
    if decision.action in (Action.ERROR, Action.SKIP):
        out = settle(shell.recorder, model, decision, obs, trigger=TriggerType.MANUAL)
        # asked for a model and got none; among many, too few rows is a skip, as in a check
        out.failed = alone or decision.action == Action.ERROR
        return out
    return Claim(model, decision, obs, force=force)
