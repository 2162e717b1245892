"""The imperative shell around the decision core:
observe (fingerprints, state fold, model store) -> decide (triggers) -> act (train, gate,
promote) -> record (state log) -> tell (notify). Library functions return values; cli.py prints."""
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Optional

from .state import LockTimeout as Timeout

from . import faults, triggers
from .errors import DataError, IntegrityError, RetrainctlError, TrainingError, UsageError
from .fingerprint import FingerprintCache
from .fsutil import atomic_write_json, read_json
from .notify import notify
from .state import (ModelState, ScheduleCache, StateLog, host_info, lock_is_held, new_attempt_id,
                    training_lock, utcnow_iso, HISTORY_STATUSES)
from .store import ModelStore

log = logging.getLogger(__name__)

VALIDATED_FILE = "validated.json"


@dataclass
class Outcome:
    """What happened to one model in one command."""

    model_name: str
    action: str
    reasons: tuple = ()
    note: str = ""
    result: str = ""
    record: Optional[dict] = None
    failed: bool = False

    @property
    def due(self):
        return self.action == triggers.TRAIN

    def to_dict(self):
        return {
            "model_name": self.model_name,
            "due": self.due,
            "due_reasons": [{"trigger_type": r.trigger_type, "description": r.description} for r in self.reasons],
            "action": self.action,
            "note": self.note,
            "result": self.result,
            "failed": self.failed,
            "event": self.record,
        }


@dataclass
class Report:
    outcomes: list = field(default_factory=list)
    dry_run: bool = False

    @property
    def exit_code(self):
        if any(o.failed for o in self.outcomes):
            return 1
        if self.dry_run and any(o.due for o in self.outcomes):
            return 3
        return 0


class Runner:
    """One command's view of the world: config, state dir, model store, clock."""

    def __init__(self, config, clock=time.time, callback=None):
        self.config = config
        self.clock = clock
        self.callback = callback if callback is not None else config.defaults.notification_callback
        self.log = StateLog(config.state_dir, rotate_bytes=config.state_log_rotate_bytes)
        self.store = ModelStore(config.model_dir)

    # --- observe ---------------------------------------------------------------------------

    def ensure_models_valid(self):
        """Import-time validation (estimators, params, trainers) costs the ML imports, so it runs
        once per config content and installed scikit-learn and is remembered in the state dir.
        (find_spec + stat, not importlib.metadata, which costs a no-op check ~20 ms of imports.)"""
        from importlib.util import find_spec

        spec = find_spec("sklearn")
        try:
            sk = f"{spec.origin}:{os.stat(spec.origin).st_mtime_ns}"
        except (AttributeError, TypeError, OSError):
            sk = "none"
        with open(self.config.path, "rb") as fh:
            key = hashlib.sha256(fh.read() + sk.encode()).hexdigest()
        path = os.path.join(self.config.state_dir, VALIDATED_FILE)
        if (read_json(path) or {}).get("key") == key:
            return
        from .training import validate_models

        validate_models(self.config)
        atomic_write_json(path, {"key": key})

    def observe(self, model, state, fpcache, manual=False, now=None):
        now = self.clock() if now is None else now
        data_hash = rows = data_error = None
        try:
            fp = fpcache.get(model.data_path)
            data_hash, rows = fp.hash, fp.rows
        except DataError as exc:
            data_error = str(exc)
        cur = self.store.current(model.name)
        meta = cur.metadata if cur else {}
        return triggers.Observation(
            now=now,
            data_hash=data_hash,
            data_rows=rows,
            data_path=os.path.relpath(model.data_path, self.config.base_dir),
            data_error=data_error,
            model_version=cur.version if cur else None,
            model_data_hash=meta.get("data_hash"),
            model_trained_at=meta.get("trained_at_ts"),
            paused=state.paused,
            skipped_hash=state.skipped_hash,
            rejected_at=state.rejected.get(data_hash) if data_hash else None,
            failures_in_row=state.failures_in_row,
            failure_hash=state.failure_hash,
            last_failure_time=state.last_failure_time,
            manual=manual,
        )

    def states(self):
        return self.log.states()

    # --- record ----------------------------------------------------------------------------

    def _record(self, model, trigger_type, status, when, description, **fields):
        record = {
            "model_name": model.name,
            "trigger_type": trigger_type,
            "trigger_time": utcnow_iso(when),
            "status": status,
            "duration": fields.pop("duration", 0.0),
            "data_hash": fields.pop("data_hash", None),
            "description": description,
            "version": fields.pop("version", None),
            "score": fields.pop("score", None),
            "metric": model.metric,
            "error": fields.pop("error", None),
            "error_type": fields.pop("error_type", None),
            **fields,
        }
        self.log.append(record)
        if status in HISTORY_STATUSES and trigger_type != "operator":
            notify(record, callback=self.callback, command=self.config.notify.command,
                   timeout=self.config.notify.timeout_seconds)
        return record

    def recover_interrupted(self, model, state):
        """An attempt that started but never ended, whose lock is free, died with its process:
        record it as an `interrupted` failure so the retry policy sees it. Needs the model's lock."""
        if not state.open_attempts:
            return []
        lock = training_lock(self.config.state_dir, model.name)
        try:
            lock.acquire()
        except Timeout:
            return []  # still running elsewhere
        try:
            state = self.states().get(model.name, ModelState())
            records = []
            for started in state.open_attempts.values():
                records.append(self._close_attempt(model, started))
            return records
        finally:
            lock.release()

    def _close_attempt(self, model, started):
        """Record how a dead attempt ended: if its version made it to `current`, only the
        success record was lost; otherwise it is an `interrupted` failure."""
        attempt = started.get("attempt_id")
        where = f"attempt {attempt} started at {started.get('trigger_time')} by pid {started.get('pid')} on {started.get('host')}"
        cur = self.store.current(model.name)
        if cur is not None and cur.metadata.get("attempt_id") == attempt:
            log.warning("%s: recovered the record of v%d, promoted by an attempt that died", model.name, cur.version)
            return self._record(model, started.get("trigger_type"), "success", self.clock(),
                                f"recovered after a crash: {where} promoted v{cur.version} but died before recording it",
                                data_hash=started.get("data_hash"), attempt_id=attempt, version=cur.version,
                                score=cur.metadata.get("score"), rows=cur.metadata.get("rows"), promoted=True)
        log.warning("%s: recorded an interrupted training attempt", model.name)
        return self._record(model, started.get("trigger_type"), "failure", self.clock(), f"{where} never finished",
                            data_hash=started.get("data_hash"), error="interrupted: the training process died",
                            error_type="interrupted", attempt_id=attempt)

    # --- act -------------------------------------------------------------------------------

    def train_locked(self, model, decision, obs, force=False):
        """Fit, gate, store, promote and record one model. The caller holds its training lock."""
        policy = model.policy
        start = self.clock()
        trigger_type = decision.trigger_type or "manual"
        manual = trigger_type == "manual"
        description = decision.describe()
        attempt_id = new_attempt_id()
        common = dict(data_hash=obs.data_hash, attempt_id=attempt_id)
        self.log.append({"model_name": model.name, "trigger_type": trigger_type, "trigger_time": utcnow_iso(start),
                         "status": "started", **common, **host_info()})
        log.info("%s: training (%s)", model.name, description)

        def finish(status, text, **fields):
            return self._record(model, trigger_type, status, start, text,
                                duration=round(self.clock() - start, 3), **common, **fields)

        champion = self.store.current(model.name)
        champion_bytes = None
        champion_note = ""
        if champion is not None:
            try:
                champion_bytes = self.store.read_verified(champion)
            except IntegrityError as exc:
                log.warning("%s: %s; the gate treats the current model as missing", model.name, exc)
                champion_note = f"; current v{champion.version} failed its checksum"
        spec = dict(model.training_spec(), min_data_size=policy.min_data_size)
        try:
            result = self._fit(spec, model, obs, champion_bytes)
        except TrainingError as exc:
            if exc.error_type == "data_changed":
                # Not the model's fault: the next check sees the new data and decides afresh.
                log.warning("%s: skipped: %s", model.name, exc)
                return Outcome(model.name, decision.action, decision.reasons, decision.note, f"skipped: {exc}",
                               finish("skipped", description, error=str(exc), error_type="data_changed"),
                               failed=manual)
            log.error("%s: %s", model.name, exc)
            return Outcome(model.name, decision.action, decision.reasons, decision.note,
                           f"failed: {exc}", finish("failure", description, error=str(exc), error_type=exc.error_type),
                           failed=True)
        except DataError as exc:
            log.error("%s: %s", model.name, exc)
            return Outcome(model.name, decision.action, decision.reasons, decision.note,
                           f"failed: {exc}", finish("failure", description, error=str(exc), error_type="data_error"),
                           failed=True)
        except RetrainctlError as exc:
            log.error("%s: %s", model.name, exc)
            return Outcome(model.name, decision.action, decision.reasons, decision.note, f"failed: {exc}",
                           finish("failure", description, error=str(exc), error_type="error"), failed=True)

        verdict = triggers.gate(result["score"], result["champion_score"], model.higher_is_better,
                                policy.promotion_tolerance, result["sanity_problem"], force=force,
                                has_champion=champion_bytes is not None)
        meta = dict(result["metadata"], trained_at=utcnow_iso(self.clock()), trained_at_ts=self.clock(),
                    trigger_type=trigger_type, attempt_id=attempt_id, model_name=model.name)
        faults.point("before_save")
        mv = self.store.save(model.name, result["model_bytes"], meta)
        faults.point("after_save")
        fields = dict(version=mv.version, score=result["score"], rows=meta["rows"],
                      champion_score=result["champion_score"],
                      champion_version=champion.version if champion_bytes is not None else None)
        text = f"{description}; {verdict.reason}{champion_note}"
        if verdict.promote:
            self.store.promote(model.name, mv.version)
            faults.point("after_promote")
            self.store.prune(model.name, policy.keep_versions)
            record = finish("success", text, promoted=True, forced=force, **fields)
            log.info("%s: promoted v%d (%s %.4g)", model.name, mv.version, model.metric, result["score"])
            return Outcome(model.name, decision.action, decision.reasons, decision.note,
                           f"promoted v{mv.version} ({model.metric} {result['score']:.4g})", record)
        record = finish("rejected", text, promoted=False, **fields)
        log.warning("%s: candidate v%d rejected: %s", model.name, mv.version, verdict.reason)
        return Outcome(model.name, decision.action, decision.reasons, decision.note,
                       f"rejected v{mv.version}: {verdict.reason}", record)

    def _fit(self, spec, model, obs, champion_bytes):
        from .executor import run_local

        result = run_local(spec, model.data_path, obs.data_hash, champion_bytes,
                           timeout=model.policy.train_timeout_seconds, max_memory_mb=model.policy.max_memory_mb)
        if result["data_hash"] != obs.data_hash:
            raise TrainingError(f"{model.data_path}: fit returned data hash {result['data_hash']}, "
                                f"expected {obs.data_hash}", error_type="data_changed")
        return result

    def act(self, model, decision, obs, dry_run=False):
        """Carry out a decision: record a skip or an error, or train under the model's lock."""
        out = Outcome(model.name, decision.action, decision.reasons, decision.note)
        if decision.action == triggers.ERROR:
            out.failed = True
            out.result = f"error: {decision.note}"
            log.error("%s", decision.note)
            if not dry_run and (self.states().get(model.name) or ModelState()).error_signature != decision.note:
                out.record = self._record(model, "data_change", "failure", obs.now, "data file could not be read",
                                          error=decision.note, error_type="data_error",
                                          error_signature=decision.note)
            return out
        if decision.action == triggers.SKIP_SMALL:
            out.result = f"skipped: {decision.note}"
            if not dry_run:
                out.record = self._record(model, decision.trigger_type, "skipped", obs.now,
                                          f"{decision.describe()}; not trained: {decision.note}",
                                          data_hash=obs.data_hash, error=decision.note, error_type="too_few_rows")
                log.warning("%s: skipped: %s", model.name, decision.note)
            return out
        if decision.action != triggers.TRAIN:
            out.result = {triggers.NOTHING: "up to date", triggers.WAIT: "not evaluated"}.get(
                decision.action, "not trained")
            return out
        if dry_run:
            out.result = "would train"
            return out
        lock = training_lock(self.config.state_dir, model.name)
        try:
            lock.acquire()
        except Timeout:
            out.result = "skipped: being trained by another process"
            log.info("%s: skipped, another process is training it", model.name)
            return out
        try:
            # Decide again under the lock: another run may have trained it meanwhile.
            state = self.states().get(model.name, ModelState())
            fresh = self.observe(model, state, FingerprintCache(self.config.state_dir))
            again = triggers.decide(model.policy, fresh)
            if again.action != triggers.TRAIN:
                out.result = "skipped: already handled by another process"
                return out
            return self.train_locked(model, again, fresh)
        finally:
            lock.release()


# --- commands ----------------------------------------------------------------------------------

def _select(config, names):
    if not names:
        return list(config.models.values())
    return [config.model(n) for n in dict.fromkeys(names)]


def check(config, names=None, dry_run=False, clock=time.time, callback=None):
    """Evaluate every trigger of the selected models, retrain the due ones, record everything."""
    runner = Runner(config, clock, callback)
    models = _select(config, names)
    runner.log.ensure_dir()
    runner.ensure_models_valid()
    states = runner.states()
    schedule = ScheduleCache(config.state_dir)
    last = schedule.load()
    fpcache = FingerprintCache(config.state_dir)
    report = Report(dry_run=dry_run)
    evaluated = {}
    for model in models:
        state = states.get(model.name, ModelState())
        now = clock()
        wait = triggers.waiting(model.policy, now, last.get(model.name))
        if wait is not None:
            report.outcomes.append(Outcome(model.name, wait.action, note=wait.note, result="not evaluated"))
            continue
        if state.open_attempts and not dry_run:
            if runner.recover_interrupted(model, state):
                state = runner.states().get(model.name, ModelState())
        obs = runner.observe(model, state, fpcache, now=now)
        decision = triggers.decide(model.policy, obs)
        fpcache.save()
        report.outcomes.append(runner.act(model, decision, obs, dry_run=dry_run))
        evaluated[model.name] = now
    if not dry_run:
        schedule.record(evaluated)
    return report


def train(config, name, reason=None, force=False, clock=time.time, callback=None):
    """Manual retrain of one model, whatever its triggers, pause or auto-retraining setting."""
    runner = Runner(config, clock, callback)
    model = config.model(name)
    runner.log.ensure_dir()
    runner.ensure_models_valid()
    state = runner.states().get(name, ModelState())
    if state.open_attempts:
        runner.recover_interrupted(model, state)
    lock = training_lock(config.state_dir, name)
    try:
        lock.acquire()
    except Timeout:
        raise RetrainctlError(f"{name}: already being trained by another process") from None
    try:
        state = runner.states().get(name, ModelState())
        fpcache = FingerprintCache(config.state_dir)
        obs = runner.observe(model, state, fpcache, manual=True)
        fpcache.save()
        decision = triggers.decide(model.policy, obs)
        if reason:
            decision = triggers.Decision(decision.action, (triggers.Reason("manual", reason),) + decision.reasons[1:],
                                         decision.note)
        if decision.action == triggers.ERROR:
            out = runner.act(model, decision, obs)
        elif decision.action == triggers.SKIP_SMALL:
            out = runner.act(model, decision, obs)
            out.failed = True
        else:
            out = runner.train_locked(model, decision, obs, force=force)
        return out
    finally:
        lock.release()


def status(config, names=None, clock=time.time):
    """One row per model: data, current version, age, due and why, last event, failures, training now."""
    runner = Runner(config, clock)
    states = runner.states() if os.path.isdir(config.state_dir) else {}
    fpcache = FingerprintCache(config.state_dir)
    rows = []
    for model in _select(config, names):
        state = states.get(model.name, ModelState())
        obs = runner.observe(model, state, fpcache)
        decision = triggers.decide(model.policy, obs)
        cur = runner.store.current(model.name)
        rows.append({
            "model_name": model.name,
            "data_path": model.data_path,
            "data_rows": obs.data_rows,
            "data_hash": obs.data_hash,
            "data_error": obs.data_error,
            "data_changed": (obs.data_hash != obs.model_data_hash) if (obs.data_hash and cur) else None,
            "model_version": cur.version if cur else None,
            "model_age_seconds": round(obs.now - obs.model_trained_at, 1) if obs.model_trained_at else None,
            "metric": model.metric,
            "score": cur.metadata.get("score") if cur else None,
            "due": decision.due,
            "due_reasons": [{"trigger_type": r.trigger_type, "description": r.description} for r in decision.reasons],
            "action": decision.action,
            "note": decision.note,
            "paused": state.paused,
            "auto_retraining": model.policy.enable_auto_retraining,
            "failures_in_row": state.failures_in_row,
            "next_retry": utcnow_iso(decision.next_retry) if decision.next_retry else None,
            "model_integrity": _integrity(runner.store, cur),
            "training_now": os.path.isdir(config.state_dir) and lock_is_held(config.state_dir, model.name),
            "last_event": state.last_event,
        })
    if os.path.isdir(config.state_dir):
        fpcache.save()
    return rows


def _integrity(store, mv):
    if mv is None:
        return None
    try:
        store.verify(mv)
        return "ok"
    except IntegrityError as exc:
        return str(exc)


def history(config, model=None, limit=20):
    """Retraining and operator events, newest first."""
    if model is not None:
        config.model(model)
    return StateLog(config.state_dir).history(model, limit)


def set_paused(config, names, paused, clock=time.time):
    """Pause or resume automatic retraining; returns (model, changed) pairs."""
    runner = Runner(config, clock)
    runner.log.ensure_dir()
    states = runner.states()
    results = []
    for model in _select(config, names):
        state = states.get(model.name, ModelState())
        if state.paused == paused:
            results.append((model.name, False))
            continue
        status_word = "paused" if paused else "resumed"
        runner._record(model, "operator", status_word, clock(),
                       f"automatic retraining {status_word} by {_operator()}")
        results.append((model.name, True))
    return results


def rollback(config, name, to=None, clock=time.time):
    """Make the previous promoted version (or `to`) current again, after checking its checksum."""
    runner = Runner(config, clock)
    model = config.model(name)
    runner.log.ensure_dir()
    lock = training_lock(config.state_dir, name)
    try:
        lock.acquire()
    except Timeout:
        raise RetrainctlError(f"{name}: being trained by another process; try the rollback again later") from None
    try:
        current = runner.store.current_version(name)
        if current is None:
            raise UsageError(f"{name}: no current model to roll back")
        if to is None:
            promoted = {e.get("version") for e in runner.log.iter_events()
                        if e.get("model_name") == name and e.get("status") == "success"}
            candidates = [v for v in runner.store.versions(name) if v < current and v in promoted]
            if not candidates:
                raise UsageError(f"{name}: no earlier promoted version on disk to roll back to (current is v{current})")
            to = candidates[-1]
        if to == current:
            raise UsageError(f"{name}: v{to} is already current")
        target = runner.store.get(name, to)
        if target is None:
            available = ", ".join(f"v{v}" for v in runner.store.versions(name)) or "none"
            raise UsageError(f"{name}: version {to} does not exist (available: {available})")
        runner.store.verify(target)
        runner.store.promote(name, to)
        return runner._record(model, "operator", "rolled_back", clock(),
                              f"rolled back from v{current} to v{to} by {_operator()}", version=to,
                              data_hash=target.metadata.get("data_hash"), score=target.metadata.get("score"),
                              previous_version=current)
    finally:
        lock.release()


def _operator():
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"

