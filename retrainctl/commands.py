"""The library functions cli.py calls, one per command: check, train, status, history,
set_paused (pause/resume) and rollback. Each wires up the parts it needs (Shell), observes,
decides (triggers) and acts; they return values and never print."""
import contextlib
import hashlib
import logging
import os
import time

from . import datasets, triggers
from .attempt import Attempts, Refused
from .errors import RetrainctlError, TrackingError, UsageError
from .fsutil import atomic_write_json, best_effort, read_json
from .observe import Observer
from .records import OPERATOR, Outcome, Report, Status
from .recorder import Recorder
from .recovery import Recovery
from .eventlog import StateLog
from .fold import ModelState
from .locks import LockTimeout, training_lock
from .schedule import ScheduleCache
from .store import ModelStore

log = logging.getLogger(__name__)

VALIDATED_FILE = "validated.json"


class Shell:
    """The parts one command works with. The model store, the state log and the executor
    (`open_executor(executor_config, on_running)`, see dispatch.open_executor) can be passed in;
    by default they are the configured ones."""

    def __init__(self, config, clock=time.time, callback=None, store=None, log=None, open_executor=None):
        self.config = config
        self.clock = clock
        self.store = store if store is not None else ModelStore(config.model_dir)
        self.recorder = Recorder(config, log, callback)
        self.log = self.recorder.log
        self.observer = Observer(config, self.store, clock)
        self.recovery = Recovery(config, self.store, self.recorder, clock)
        self.attempts = Attempts(config, self.store, self.recorder, self.observer, self.recovery, clock,
                                 open_executor)

    def prepare_to_train(self, dry_run=False):
        """Make the state dir, and check the models once per config (see _ensure_models_valid).
        A dry run only asks: it works on a state dir it may not write (or that does not exist)."""
        if dry_run:
            _ensure_models_valid(self.config, remember=os.access(self.config.state_dir, os.W_OK))
            return
        self.log.ensure_dir()
        _ensure_models_valid(self.config)


def _ensure_models_valid(config, remember=True):
    """Import-time validation (estimators, params, trainers) costs the ML imports, so it runs
    once per config content and installed scikit-learn and is remembered in the state dir.
    (find_spec + stat, not importlib.metadata, which costs a no-op check ~20 ms of imports.)"""
    from importlib.util import find_spec

    spec = find_spec("sklearn")
    try:
        sk = f"{spec.origin}:{os.stat(spec.origin).st_mtime_ns}"
    except (AttributeError, TypeError, OSError):
        sk = "none"
    with open(config.path, "rb") as fh:
        key = hashlib.sha256(fh.read() + sk.encode()).hexdigest()
    path = os.path.join(config.state_dir, VALIDATED_FILE)
    if (read_json(path) or {}).get("key") == key:
        return
    from .training import validate_models

    validate_models(config)
    if remember:
        with best_effort(path):
            atomic_write_json(path, {"key": key})


def _select(config, names):
    if not names:
        return list(config.models.values())
    return [config.model(n) for n in dict.fromkeys(names)]


# --- check ---------------------------------------------------------------------------------------

def check(config, names=None, dry_run=False, clock=time.time, callback=None, store=None, log=None,
          open_executor=None):
    """Evaluate every trigger of the selected models, retrain the due ones, record everything.
    The Report carries what was observed of each model, for the metrics export."""
    shell = Shell(config, clock, callback, store, log, open_executor)
    models = _select(config, names)
    shell.prepare_to_train(dry_run)
    schedule = ScheduleCache(config.state_dir)
    report = Report(dry_run=dry_run)
    claims = {}  # index in report.outcomes -> Claim (holding the model's training lock)
    try:
        evaluated = _decide_and_claim(shell, models, schedule.load(), report, claims)
        # Phase 2: every claimed fit goes to the executor at once and is recorded as it returns.
        for index, out in zip(claims, shell.attempts.run(list(claims.values()))):
            report.outcomes[index] = out
    finally:
        for claim in claims.values():
            claim.lock.release()
    if not dry_run:
        schedule.record(evaluated)
    return report


def _decide_and_claim(shell, models, last, report, claims):
    """Phase 1: observe and decide every model once; record skips and errors; lock and decide
    again the due ones, adding them to `claims` so the caller releases their locks whatever
    happens. Returns {model: time evaluated} for the scheduling cache."""
    clock, dry_run = shell.clock, report.dry_run
    states = shell.recorder.states()
    evaluated = {}
    for model in models:
        state = states.get(model.name, ModelState())
        shell.store.warn_if_lost(model.name, state.had_live, state.max_version)
        now = clock()
        # A dry run answers "is anything due now?", so it does not wait out check_interval; and a
        # data file that went missing is reported at once, not hidden by the interval.
        wait = None if dry_run else triggers.waiting(model.policy, now, last.get(model.name))
        if wait is not None and (os.path.exists(model.data_path) or datasets.is_glob(model.data_path)):
            report.outcomes.append(Outcome.of(model.name, wait, "not evaluated"))
            continue
        try:
            if state.open_attempts and not dry_run:
                recovered = shell.recovery.recover_interrupted(model, state)
                if recovered is not None:
                    state = recovered
                    now = clock()  # decided after the failure just recorded, never before it
            obs = shell.observer.observe(model, state, now=now)
            decision = triggers.decide(model.policy, obs)
            shell.observer.save()
        except (OSError, ValueError, TypeError, KeyError) as exc:  # one model's bad state must not stop the rest
            log.error("%s: %s: %s", model.name, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            report.outcomes.append(Outcome(model.name, triggers.ERROR, note=str(exc),
                                           result=f"error: {type(exc).__name__}: {exc}", failed=True))
            continue
        report.observed[model.name] = obs
        if obs.quality_alerts and not dry_run:
            shell.recorder.alert(_drift_alert(model, obs))
        if decision.action == triggers.TRAIN and not dry_run:
            claim = shell.attempts.claim(model, obs)
            if isinstance(claim, Refused):
                report.outcomes.append(Outcome.of(model.name, decision, claim.note))
            else:
                report.observed[model.name] = claim.obs
                claims[len(report.outcomes)] = claim
                report.outcomes.append(None)  # filled in when its fit comes back
        else:
            report.outcomes.append(_settle(shell, model, decision, obs, dry_run))
        if decision.action != triggers.ERROR:  # an unreadable data file is looked at again next run
            evaluated[model.name] = now
    return evaluated


def _drift_alert(model, obs):
    """The notification of drift that only alerts (drift_action alert): shaped like a history
    record, but never written to the log, since nothing was done. Its evidence key makes the
    webhooks send it once per drift evidence (data and drift file)."""
    from .events import utcnow_iso

    return {"model_name": model.name, "status": "drift", "trigger_type": triggers.TriggerType.DRIFT,
            "trigger_time": utcnow_iso(obs.now), "duration": 0.0, "data_hash": obs.data_hash,
            "description": obs.drift.description, "version": obs.model_version, "score": None,
            "metric": model.metric, "error": None, "error_type": None,
            "quality_keys": dict(obs.quality_alerts), "quality_evidence": obs.quality_evidence}


def _settle(shell, model, decision, obs, dry_run=False):
    """Carry out a decision that trains nothing: record a skip or an error, or report it."""
    if decision.action == triggers.ERROR:
        log.error("%s", decision.note)
        event = None
        if not dry_run:  # once per distinct error, however many runs meet it at the same time
            event = shell.recorder.write(model, triggers.TriggerType.DATA_CHANGE, Status.FAILURE, obs.now,
                                         "data file could not be read", error=decision.note,
                                         error_type="data_error", error_signature=decision.note,
                                         unless=lambda st: st.error_signature == decision.note)
        return Outcome.of(model.name, decision, f"error: {decision.note}", event, failed=True)
    if decision.action == triggers.SKIP_SMALL:
        event = None
        if not dry_run:
            event = shell.recorder.write(model, decision.trigger_type, Status.SKIPPED, obs.now,
                                         f"{decision.describe()}; not trained: {decision.note}",
                                         data_hash=obs.data_hash, error=decision.note, error_type="too_few_rows",
                                         unless=lambda st: st.skipped_hash == obs.data_hash)
            if event is not None:
                log.warning("%s: skipped: %s", model.name, decision.note)
        return Outcome.of(model.name, decision, f"skipped: {decision.note}", event)
    # A due model reaches here only on a dry run: real fits are claimed and trained together by
    # check() (Attempts.claim, Attempts.run).
    result = {triggers.TRAIN: "would train", triggers.NOTHING: "up to date",
              triggers.WAIT: "not evaluated"}.get(decision.action, "not trained")
    return Outcome.of(model.name, decision, result)


# --- train ---------------------------------------------------------------------------------------

def train(config, name, reason=None, force=False, clock=time.time, callback=None, store=None, log=None,
          open_executor=None):
    """Manual retrain of one model, whatever its triggers, pause or auto-retraining setting."""
    shell = Shell(config, clock, callback, store, log, open_executor)
    model = config.model(name)
    shell.prepare_to_train()
    with _model_lock(config, name, "already being trained by another process"):
        state = shell.recovery.close_dead_attempts(model)  # see Attempts.claim
        obs = shell.observer.observe(model, state, manual=True)
        shell.observer.save()
        decision = triggers.decide(model.policy, obs)
        if reason:
            decision = triggers.Decision(decision.action, (triggers.Reason(triggers.TriggerType.MANUAL, reason),)
                                         + decision.reasons[1:], decision.note)
        if decision.action in (triggers.ERROR, triggers.SKIP_SMALL):
            out = _settle(shell, model, decision, obs)
            out.failed = True  # asked for a model and got none
            return out
        return shell.attempts.run_one(model, decision, obs, force=force)


# --- status and history --------------------------------------------------------------------------

def status(config, names=None, clock=time.time, verify=True, states=None, observed=None):
    """One records.StatusRow per model: data, current version, age, due and why, last event,
    failures, training now. `verify` checks each current model file's sha256 (skipped where only
    counters are wanted); `states` is the log's fold when the caller has already read it;
    `observed` ({model: Observation}) is what a check saw, brought up to date instead of
    observing (and evaluating) those models again."""
    observer = Observer(config, clock=clock)
    has_state = os.path.isdir(config.state_dir)
    if states is None:
        states = StateLog(config.state_dir).states() if has_state else {}
    observed = observed or {}
    rows = []
    for model in _select(config, names):
        state = states.get(model.name, ModelState())
        seen = observed.get(model.name)
        obs = observer.refresh(seen, model, state) if seen is not None else observer.observe(model, state)
        rows.append(observer.status_row(model, obs, triggers.decide(model.policy, obs), state, verify))
    if has_state:
        observer.save()
    return rows


def history(config, model=None, limit=20):
    """Retraining and operator events, newest first."""
    if model is not None:
        config.model(model)
    return StateLog(config.state_dir).history(model, limit)


# --- operator commands ---------------------------------------------------------------------------

def set_paused(config, names, paused, clock=time.time):
    """Pause or resume automatic retraining; returns (model, changed) pairs."""
    recorder = Recorder(config)
    recorder.log.ensure_dir()
    results = []
    status_word = Status.PAUSED if paused else Status.RESUMED
    for model in _select(config, names):
        # Decided under the log's lock: concurrent pauses write one `paused` record between them.
        event = recorder.write(model, OPERATOR, status_word, clock(),
                               f"automatic retraining {status_word} by {_operator()}",
                               unless=lambda st: st.paused == paused)
        results.append((model.name, event is not None))
    return results


def rollback(config, name, to=None, clock=time.time):
    """Make the previous promoted version (or `to`) current again, after checking its checksum.
    Returns the `rolled_back` records.Event."""
    shell = Shell(config, clock)
    store = shell.store
    model = config.model(name)
    shell.log.ensure_dir()
    with _model_lock(config, name, "being trained by another process; try the rollback again later"):
        current = store.current_version(name)
        if current is None:
            raise UsageError(f"{name}: no current model to roll back")
        if to is None:
            to = _previous_promoted(shell, name, current)
            if to is None:
                raise UsageError(f"{name}: no earlier promoted version on disk to roll back to (current is v{current})")
        if to == current:
            raise UsageError(f"{name}: v{to} is already current")
        target = store.get(name, to)
        if target is None:
            available = ", ".join(f"v{v}" for v in store.versions(name)) or "none"
            raise UsageError(f"{name}: version {to} does not exist (available: {available})")
        store.verify(target)
        abandoned = store.get(name, current)
        tracked = _move_champion_back(shell, model, target, abandoned, current)
        store.promote(name, to)
        return shell.recorder.write(model, OPERATOR, Status.ROLLED_BACK, clock(),
                                    f"rolled back from v{current} to v{to} by {_operator()}", version=to,
                                    data_hash=target.metadata.get("data_hash"), score=target.metadata.get("score"),
                                    previous_version=current,
                                    abandoned_data_hash=abandoned.metadata.get("data_hash") if abandoned else None,
                                    **tracked.fields())


def _move_champion_back(shell, model, target, abandoned, current):
    """Move the registry's `champion` to `target` (registering it if it never was, e.g. a rejected
    candidate) and tag both registered versions with the rollback. With mlflow.required a
    registry that cannot follow stops the rollback; otherwise the store moves and the
    disagreement shows in `status` and the metrics."""
    from .events import utcnow_iso
    from .tracking import CHAMPION, move_champion

    at = utcnow_iso(shell.clock())
    gone = abandoned.metadata.get("mlflow_model_version") if abandoned is not None else None
    tracked = move_champion(shell.config, model, target,
                            tags={"retrainctl.rolled_back_from": f"v{current}", "retrainctl.rolled_back_at": at},
                            other_tags={gone: {"retrainctl.rolled_back_to": f"v{target.version}",
                                               "retrainctl.rolled_back_at": at}} if gone is not None else None)
    if tracked.error and shell.config.mlflow.required:
        raise TrackingError(f"{model.name}: not rolled back to v{target.version}: MLflow alias '{CHAMPION}' could "
                            f"not be moved and mlflow.required is true: {tracked.error}")
    if tracked.model_version is not None and tracked.model_version != target.metadata.get("mlflow_model_version"):
        shell.store.update_metadata(target, **tracked.ids())  # registered just now
    return tracked


def _previous_promoted(shell, name, current):
    """The newest version below `current` that was promoted (a `success` record) and is still on
    disk. Versions are numbered in the order they are trained, so reading the log backwards the
    first such record is the one: no need to read years of log."""
    on_disk = set(shell.store.versions(name))
    for ev in shell.log.events(name, (Status.SUCCESS,)):
        version = ev.get("version")
        if type(version) is int and version < current and version in on_disk:
            return version
    return None


@contextlib.contextmanager
def _model_lock(config, name, busy):
    """Hold a model's training lock for an operator command; busy: the error if another run has it."""
    lock = training_lock(config.state_dir, name)
    try:
        lock.acquire()
    except LockTimeout:
        raise RetrainctlError(f"{name}: {busy}") from None
    try:
        yield
    finally:
        lock.release()


def _operator():
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


# --- notify-failure ------------------------------------------------------------------------------

JOURNAL_TIMEOUT = 5.0


def notify_failure(config, unit, environ=None, clock=time.time):
    """Tell the webhooks, chat URLs and notify.command that a systemd unit failed (run by an
    OnFailure= unit, which passes what happened as MONITOR_* variables). Delivery problems are
    logged, never raised; returns the webhooks' Delivery list."""
    from .notify import notify
    from .webhooks import Notifier, check_secrets, targets, unit_failure_event

    environ = os.environ if environ is None else environ
    hooks, apprise = targets(config.notify)
    check_secrets(hooks)
    event = unit_failure_event(unit, environ, _journal_tail(environ.get("MONITOR_INVOCATION_ID")), clock())
    state_dir = config.state_dir if os.path.isdir(config.state_dir) else None
    results = Notifier(hooks, apprise, state_dir=state_dir, clock=clock).send([event])
    if config.notify.command:
        notify(event, command=config.notify.command, timeout=config.notify.timeout_seconds)
    return results


def _journal_tail(invocation_id, lines=20):
    """The failed run's last log lines from the journal; none when there is no invocation id
    or journalctl cannot give them in time (the alert matters more than its detail)."""
    import subprocess

    if not invocation_id:
        return []
    try:
        done = subprocess.run(["journalctl", "-q", "-o", "cat", "-n", str(lines), f"_SYSTEMD_INVOCATION_ID={invocation_id}"],
                              capture_output=True, timeout=JOURNAL_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("journalctl: no log lines for the failed run: %s", exc)
        return []
    if done.returncode != 0:
        return []
    return done.stdout.decode(errors="replace").splitlines()[-lines:]
