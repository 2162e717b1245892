"""`retrainctl check`: evaluate every trigger of the selected models, retrain the due ones in one
batch on the executor, record everything."""
import logging
import os
import time
from collections import Counter

from ..base import faults
from ..base.errors import DataError
from ..config.records import Config, ModelConfig
from ..core import decide
from ..core.fold import ModelState
from ..core.outcomes import CheckReport, Outcome
from ..core.records import Action
from ..core.segment_names import entry_of
from ..data import datasets
from ..fit.executors import OpenExecutor
from ..observe.fleet import segmented
from ..observe.quiet import Quiet
from ..retrain.attempt import Claim, Refused
from ..retrain.settle import drift_alert, settle
from ..state.log import StateLog
from ..state.schedule import ScheduleCache
from ..state.store import ModelStore
from .shell import Callback, Clock, Shell, select

log = logging.getLogger(__name__)


def check(config: Config, names: tuple[str, ...] | list[str] | None = None, dry_run: bool = False,
          clock: Clock = time.time, callback: Callback | None = None, store: ModelStore | None = None,
          log: StateLog | None = None, open_executor: OpenExecutor | None = None) -> CheckReport:
    """Evaluate every trigger of the selected models, retrain the due ones, record everything.
    The report carries what was observed of each model, for the metrics export."""
    shell = Shell(config, clock, callback, store, log, open_executor)
    # Without names, an entry about which nothing changed since a check left it settled answers
    # from its mark (observe.quiet); its segments are not observed.
    quiet = Quiet(config, shell.log, shell.observer.fingerprints, clock) if not names and segmented(config) else None
    standing = quiet.standing(config.models.values()) if quiet is not None else {}
    partial = quiet.partial if quiet is not None else {}
    schedule = ScheduleCache(config.state_dir)
    report = CheckReport(dry_run=dry_run)
    claims: dict[int, Claim] = {}  # index in report.outcomes -> Claim (holding the model's training lock)
    slots: list[Outcome | None] = []
    if not dry_run:
        shell.start_validation()  # in a fit process, while the models are found below
    try:
        models = select(config, names, shell.observer, skip=standing.keys() | partial.keys())
        remembered: list[Outcome] = []  # the outcomes of the segments of `partial` entries whose rows did not change
        for name in partial:
            entry = config.model(name)
            try:
                keys, kept = quiet.split(entry, shell.observer.segments(entry).segments) if quiet else ([], [])
            except DataError:  # its observation records the error, once for the entry (as observe.fleet does)
                models.append(entry)
                continue
            models += [entry.for_segment(key) for key in keys]
            remembered += kept
        # one notification per entry and event for its segments ("12 of 10,000 segments of sales failed")
        shell.recorder.gather(models, Counter(entry_of(out.model_name) for out in remembered))
        shell.prepare_to_train(dry_run)
        evaluated = _decide_and_claim(shell, models, schedule.load(), report, slots, claims, quiet)
        # Phase 2: every claimed fit goes to the executor at once and is recorded as it returns.
        for index, out in zip(claims, shell.attempts.run(list(claims.values()))):
            slots[index] = out
    finally:
        for claim in claims.values():
            claim.lock.release()
        shell.attempts.dismiss_prewarmed()
        shell.recorder.flush()
    report.outcomes = [out for out in slots if out is not None]
    if quiet is not None:
        if standing or partial:
            report.outcomes = _in_config_order(config, report.outcomes + remembered + [
                out for entry, mark in standing.items() for out in quiet.outcomes(entry, mark)])
        quiet.finish([e for e in config.models.values() if e.segment_by and e.name not in standing])
    if not dry_run:
        schedule.record(evaluated)
    return report


def _in_config_order(config: Config, outcomes: list[Outcome]) -> list[Outcome]:
    """The outcomes by the order of their models (or entries) in the config, an entry's segments by name."""
    order = {name: i for i, name in enumerate(config.models)}
    return sorted(outcomes, key=lambda o: (order.get(entry_of(o.model_name), -1), o.model_name))


def _decide_and_claim(shell: Shell, models: list[ModelConfig], last: dict[str, float], report: CheckReport,
                      slots: list[Outcome | None], claims: dict[int, Claim], quiet: Quiet | None) -> dict[str, float]:
    """Phase 1: observe and decide every model once; record skips and errors; lock and decide
    again the due ones, adding them to `claims` so the caller releases their locks whatever
    happens. Each segment's decision goes to `quiet` (the marks of settled entries). Returns
    {model: time evaluated} for the scheduling cache."""
    clock, dry_run = shell.clock, report.dry_run
    if not models:  # every entry quiet, no declared model: the log's fold is not even read
        return {}
    states = shell.log.states_of([m.name for m in models])  # a few of many: only theirs decoded
    evaluated = {}
    for model in models:
        state = states.get(model.name, ModelState())
        now = clock()
        # A dry run answers "is anything due now?", so it does not wait out check_interval; and a
        # data file that went missing is reported at once, not hidden by the interval.
        wait = None if dry_run else decide.waiting(model.policy, now, last.get(model.name))
        if wait is not None and (os.path.exists(model.data_path) or datasets.is_glob(model.data_path)):
            slots.append(Outcome.of(model.name, wait, "not evaluated"))
            if quiet is not None:
                quiet.spoil(model)
            continue
        try:
            if state.open_attempts and not dry_run:
                recovered = shell.recovery.recover_interrupted(model, state)
                if recovered is not None:
                    state = recovered
                    now = clock()  # decided after the failure just recorded, never before it
            obs = shell.observer.observe(model, state, now=now)
            if obs.model_version is None:  # a live version's folder and link are there: nothing to look for
                shell.store.warn_if_lost(model.name, state.had_live, state.max_version)
            decision = decide.decide(model.policy, obs)
            shell.observer.save(final=False)
        except (OSError, ValueError, TypeError, KeyError) as exc:  # one model's bad state must not stop the rest
            log.error("%s: %s: %s", model.name, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            slots.append(Outcome(model.name, Action.ERROR, note=str(exc),
                                 result=f"error: {type(exc).__name__}: {exc}", failed=True))
            if quiet is not None:
                quiet.spoil(model)
            continue
        report.observed[model.name] = obs
        if obs.quality_alerts and not dry_run:
            shell.recorder.alert(drift_alert(model, obs))
        if decision.action == Action.TRAIN and not dry_run:
            if quiet is not None:
                quiet.spoil(model)
            claim = shell.attempts.claim(model, obs)
            if isinstance(claim, Refused):
                slots.append(Outcome.of(model.name, decision, claim.note, alert=decide.alerts(obs)))
            else:
                report.observed[model.name] = claim.obs
                claims[len(slots)] = claim
                slots.append(None)  # filled in when its fit comes back
                shell.attempts.prewarm(claim)  # a fit process's imports overlap the other models' decisions
                faults.point("prewarmed")
        else:
            out = settle(shell.recorder, model, decision, obs, dry_run)
            out.alert = decide.alerts(obs)
            slots.append(out)
            if quiet is not None:
                quiet.note(model, obs, decision, state, out)
        if decision.action != Action.ERROR:  # an unreadable data file is looked at again next run
            evaluated[model.name] = now
    shell.observer.save()
    return evaluated
