"""The imperative shell around the decision core:
observe (fingerprints, state fold, model store) -> decide (triggers) -> act (train, gate,
promote) -> record (state log) -> tell (notify). Library functions return values; cli.py prints."""
import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Optional

from .state import LockTimeout as Timeout

from . import datasets, evaluation, faults, triggers
from .errors import DataError, IntegrityError, RetrainctlError, TrackingError, TrainingError, UsageError
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


@dataclass
class Job:
    """One training attempt, from its `started` record until its outcome is recorded."""

    model: object
    decision: object
    obs: object
    force: bool
    trigger_type: str
    description: str
    attempt_id: str
    start: float
    champion: object = None
    champion_bytes: Optional[bytes] = None
    champion_note: str = ""
    extra: dict = field(default_factory=dict)  # where and how long it ran, for the record
    warm: object = None  # a tracking process started beside the fit (tracking.Warm), if any

    def quality_fields(self):
        """The evidence a performance/drift retrain ran for, recorded so it does not loop."""
        return _quality_keys({"quality_keys": getattr(self.obs, "quality_keys", None)})


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
        data_hash = rows = data_error = ds = None
        try:
            ds = datasets.fingerprint(fpcache, model.data_path)
            data_hash, rows = ds.hash, ds.rows
        except DataError as exc:
            data_error = str(exc)
        cur = self.store.current(model.name)
        meta = cur.metadata if cur else {}
        assessment = evaluation.assess(self.config, self.store, model, cur, data_hash, rows,
                                       state.quality_handled, fpcache, dataset=ds)
        return triggers.Observation(
            now=now,
            data_hash=data_hash,
            data_rows=rows,
            data_path=ds.label(self.config.base_dir) if ds else os.path.relpath(model.data_path, self.config.base_dir),
            data_files=ds.files if ds and ds.is_set else None,
            fit_files=ds.fit_files if ds else None,
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
            **assessment.observation_fields(),
        )

    def states(self):
        return self.log.states()

    # --- record ----------------------------------------------------------------------------

    def _record(self, model, trigger_type, status, when, description, unless=None, **fields):
        """Append one history record (and notify); with `unless(model_state)`, only if that is
        false under the log's lock, else return None: see StateLog.append."""
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
        check = None if unless is None else (lambda states: unless(states.get(model.name, ModelState())))
        if not self.log.append(record, unless=check):
            return None
        if status in HISTORY_STATUSES and trigger_type != "operator":
            notify(record, callback=self.callback, command=self.config.notify.command,
                   timeout=self.config.notify.timeout_seconds)
        return record

    def recover_interrupted(self, model, state):
        """An attempt that started but never ended, whose lock is free, died with its process:
        record it as an `interrupted` failure so the retry policy sees it. Needs the model's lock.
        Returns the model's state afterwards, or None when nothing could be closed."""
        if not state.open_attempts:
            return None
        lock = training_lock(self.config.state_dir, model.name)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return None  # still running elsewhere
        try:
            return self.close_dead_attempts(model)
        finally:
            lock.release()

    def close_dead_attempts(self, model):
        """Close every open attempt of a model whose training lock this process holds: none of
        them can still be running. Returns the model's state afterwards (the log is read again
        only when something was closed)."""
        state = self.states().get(model.name, ModelState())
        if not state.open_attempts:
            return state
        for started in state.open_attempts.values():
            self._close_attempt(model, started)
        return self.states().get(model.name, ModelState())

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
                                **_quality_keys(started),
                                score=cur.metadata.get("score"), rows=cur.metadata.get("rows"), promoted=True)
        # Before the record: a crash in between repeats the realignment next time, never skips it.
        realigned = self._realign_champion(model, attempt, cur)
        log.warning("%s: recorded an interrupted training attempt", model.name)
        return self._record(model, started.get("trigger_type"), "failure", self.clock(), f"{where} never finished",
                            data_hash=started.get("data_hash"), error="interrupted: the training process died",
                            **_quality_keys(started),
                            error_type="interrupted", attempt_id=attempt, **realigned)

    def _realign_champion(self, model, attempt, cur):
        """Registering a candidate in MLflow moves `champion` to it just before the store promotes
        it; an attempt killed between the two leaves the alias ahead of the store. If the dead
        attempt saved a candidate meant for promotion, put the alias back on what is live.
        Returns the fields for the attempt's record (`tracking_error` when that failed)."""
        if not self.config.mlflow.enabled:
            return {}
        saved = None
        for version in reversed(self.store.versions(model.name)):  # the attempt's is usually the newest
            mv = self.store.get(model.name, version)
            if mv is not None and mv.metadata.get("attempt_id") == attempt:
                saved = mv
                break
        if saved is None or not saved.metadata.get("promoted"):
            return {}
        from .tracking import realign_champion

        tracked = realign_champion(self.config, model, cur)
        return {"tracking_error": tracked.error} if tracked.error else {}

    # --- act -------------------------------------------------------------------------------

    def train_locked(self, model, decision, obs, force=False):
        """Fit, gate, store, promote and record one model. The caller holds its training lock."""
        return self.train_claimed([(model, decision, obs, force)])[0]

    def train_claimed(self, claims):
        """Fit the claimed models [(model, decision, obs, force)] on the configured executor: all
        submitted at once, each gated and recorded as it comes back. The caller holds every
        model's training lock until this returns, so a remote fit is never duplicated."""
        if not claims:
            return []
        from .dispatch import clear_running, mark_running, open_executor
        from .tracking import start_warm  # MLflow's side: imported only when something trains

        state_dir = self.config.state_dir

        def on_running(request, where):
            mark_running(state_dir, request.model_name, request.attempt_id, executor.name, "running", where)

        jobs = {}
        outcomes = {}
        warm = None
        # Connecting comes first: an unreachable scheduler leaves no `started` record behind.
        with open_executor(self.config.executor, on_running) as executor:
            try:
                for model, decision, obs, force in claims:
                    job = self.prepare(model, decision, obs, force, executor.name)
                    jobs[job.attempt_id] = job
                    mark_running(state_dir, model.name, job.attempt_id, executor.name, "queued")
                    executor.submit(self.fit_request(job))
                # One tracking process warms up (imports MLflow) beside the fits; each finished
                # fit takes it, and the next one is started while fits remain.
                warm = start_warm(self.config)
                for done in executor.completed():
                    job = jobs[done.request.attempt_id]
                    job.extra = {"executor": executor.name, "worker": done.where,
                                 "executor_seconds": done.run_seconds, "queued_seconds": done.queued_seconds}
                    job.warm, warm = warm, None
                    outcomes[job.attempt_id] = self._finish_safely(job, done.result, done.error)
                    clear_running(state_dir, job.model.name)
                    if len(outcomes) < len(jobs):
                        warm = start_warm(self.config)
            finally:
                if warm is not None:
                    warm.close()
                for job in jobs.values():
                    clear_running(state_dir, job.model.name)
        return [outcomes[attempt_id] for attempt_id in jobs]

    def prepare(self, model, decision, obs, force=False, executor="local"):
        """Record the `started` event and gather what the fit needs: the champion to compare with."""
        start = self.clock()
        job = Job(model, decision, obs, force, decision.trigger_type or "manual", decision.describe(),
                  new_attempt_id(), start)
        self.log.append({"model_name": model.name, "trigger_type": job.trigger_type, "trigger_time": utcnow_iso(start),
                         "status": "started", "data_hash": obs.data_hash, "attempt_id": job.attempt_id,
                         "executor": executor, **job.quality_fields(), **host_info()})
        log.info("%s: training (%s)", model.name, job.description)
        job.champion = self.store.current(model.name)
        if job.champion is not None:
            try:
                job.champion_bytes = self.store.read_verified(job.champion)
            except IntegrityError as exc:
                log.warning("%s: %s; the gate treats the current model as missing", model.name, exc)
                job.champion_note = f"; current v{job.champion.version} failed its checksum"
        return job

    def fit_request(self, job):
        from .dispatch import FitRequest

        model, policy = job.model, job.model.policy
        return FitRequest(model.name, job.attempt_id, dict(model.training_spec(), min_data_size=policy.min_data_size,
                                                           data_files=job.obs.fit_files),
                          self.config.executor.worker_path(model.data_path), job.obs.data_hash, job.champion_bytes,
                          timeout=policy.train_timeout_seconds, max_memory_mb=policy.max_memory_mb)

    def _finish_safely(self, job, result, error):
        """finish(), but an unexpected error in it closes this attempt as a failure and lets the
        other models' fits be collected, instead of aborting the run with attempts left open."""
        try:
            return self.finish(job, result, error)
        except Exception as exc:
            log.error("%s: %s: %s", job.model.name, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            record = self._record(job.model, job.trigger_type, "failure", job.start, job.description,
                                  duration=round(self.clock() - job.start, 3), data_hash=job.obs.data_hash,
                                  attempt_id=job.attempt_id, error=f"{type(exc).__name__}: {exc}",
                                  error_type="internal", **job.quality_fields(), **job.extra)
            d = job.decision
            return Outcome(job.model.name, d.action, d.reasons, d.note, f"failed: {exc}", record, failed=True)
        finally:
            if job.warm is not None:  # not needed after all (the fit failed): dismissed
                job.warm.close()

    def finish(self, job, result=None, error=None):
        """Verify, gate, store, promote and record one fit's result (or its error), wherever it ran."""
        model, decision, force = job.model, job.decision, job.force
        policy = model.policy
        description = job.description

        def finish(status, text, **fields):
            return self._record(model, job.trigger_type, status, job.start, text,
                                duration=round(self.clock() - job.start, 3), data_hash=job.obs.data_hash,
                                attempt_id=job.attempt_id, **job.quality_fields(), **job.extra, **fields)

        if error is None and result["data_hash"] != job.obs.data_hash:
            error = TrainingError(f"{model.data_path}: fit returned data hash {result['data_hash']}, "
                                  f"expected {job.obs.data_hash}", error_type="data_changed")
        if isinstance(error, TrainingError) and error.error_type == "data_changed":
            # Not the model's fault: the next check sees the new data and decides afresh.
            log.warning("%s: skipped: %s", model.name, error)
            return Outcome(model.name, decision.action, decision.reasons, decision.note, f"skipped: {error}",
                           finish("skipped", description, error=str(error), error_type="data_changed"),
                           failed=job.trigger_type == "manual")
        if error is not None:
            error_type = getattr(error, "error_type", "data_error" if isinstance(error, DataError) else "error")
            log.error("%s: %s", model.name, error)
            return Outcome(model.name, decision.action, decision.reasons, decision.note, f"failed: {error}",
                           finish("failure", description, error=str(error), error_type=error_type), failed=True)

        champion, champion_bytes = job.champion, job.champion_bytes
        verdict = triggers.gate(result["score"], result["champion_score"], model.higher_is_better,
                                policy.promotion_tolerance, result["sanity_problem"], force=force,
                                has_champion=champion_bytes is not None)
        meta = dict(result["metadata"], trained_at=utcnow_iso(self.clock()), trained_at_ts=self.clock(),
                    trigger_type=job.trigger_type, attempt_id=job.attempt_id, model_name=model.name,
                    promoted=verdict.promote)
        faults.point("before_save")
        mv = self.store.save(model.name, result["model_bytes"], meta)
        faults.point("after_save")
        fields = dict(version=mv.version, score=result["score"], rows=meta["rows"],
                      champion_score=result["champion_score"],
                      champion_version=champion.version if champion_bytes is not None else None)
        text = f"{description}; {verdict.reason}{job.champion_note}"
        # Tracked before promotion, so that with mlflow.required a tracking failure keeps the candidate out.
        from .tracking import log_training

        tracked = log_training(self.config, model, mv, result, job.trigger_type, verdict.promote, text, job.warm)
        faults.point("after_track")
        if tracked.run_id is not None:
            mv = self.store.update_metadata(mv, **tracked.ids())
        fields.update(tracked.fields())
        if tracked.error and self.config.mlflow.required:
            error = f"MLflow tracking failed and mlflow.required is true: {tracked.error}"
            log.error("%s: v%d not promoted: %s", model.name, mv.version, error)
            self.store.update_metadata(mv, promoted=False)
            return Outcome(model.name, decision.action, decision.reasons, decision.note, f"failed: {error}",
                           finish("failure", text, error=error, error_type="tracking", **fields), failed=True)
        if verdict.promote:
            self.store.promote(model.name, mv.version)
            faults.point("after_promote")
            self.store.prune(model.name, policy.keep_versions)
            record = finish("success", text, promoted=True, forced=force, **fields)
            log.info("%s: promoted v%d (%s %.4g)", model.name, mv.version, model.metric, result["score"])
            return Outcome(model.name, decision.action, decision.reasons, decision.note,
                           f"promoted v{mv.version} ({model.metric} {result['score']:.4g})", record)
        self.store.prune(model.name, policy.keep_versions)
        record = finish("rejected", text, promoted=False, **fields)
        log.warning("%s: candidate v%d rejected: %s", model.name, mv.version, verdict.reason)
        return Outcome(model.name, decision.action, decision.reasons, decision.note,
                       f"rejected v{mv.version}: {verdict.reason}", record)

    def claim(self, model):
        """Take the model's training lock and decide again under it: another run may have trained
        it meanwhile. Returns ((model, decision, obs), lock) to train, or (None, why not)."""
        lock = training_lock(self.config.state_dir, model.name)
        try:
            lock.acquire()
        except Timeout:
            log.info("%s: skipped, another process is training it", model.name)
            return None, "skipped: being trained by another process"
        try:
            # An attempt still open while this process holds the lock has died (a run that found
            # the lock busy a moment ago could not close it): closed first, then decided after it.
            state = self.close_dead_attempts(model)
            fresh = self.observe(model, state, FingerprintCache(self.config.state_dir))
            again = triggers.decide(model.policy, fresh)
        except BaseException:
            lock.release()
            raise
        if again.action != triggers.TRAIN:
            lock.release()
            return None, "skipped: already handled by another process"
        return (model, again, fresh), lock

    def act(self, model, decision, obs, dry_run=False):
        """Carry out a decision that trains nothing: record a skip or an error, or report it."""
        out = Outcome(model.name, decision.action, decision.reasons, decision.note)
        if decision.action == triggers.ERROR:
            out.failed = True
            out.result = f"error: {decision.note}"
            log.error("%s", decision.note)
            if not dry_run:  # once per distinct error, however many runs meet it at the same time
                out.record = self._record(model, "data_change", "failure", obs.now, "data file could not be read",
                                          error=decision.note, error_type="data_error",
                                          error_signature=decision.note,
                                          unless=lambda st: st.error_signature == decision.note)
            return out
        if decision.action == triggers.SKIP_SMALL:
            out.result = f"skipped: {decision.note}"
            if not dry_run:
                out.record = self._record(model, decision.trigger_type, "skipped", obs.now,
                                          f"{decision.describe()}; not trained: {decision.note}",
                                          data_hash=obs.data_hash, error=decision.note, error_type="too_few_rows",
                                          unless=lambda st: st.skipped_hash == obs.data_hash)
                if out.record is not None:
                    log.warning("%s: skipped: %s", model.name, decision.note)
            return out
        if decision.action != triggers.TRAIN:
            out.result = {triggers.NOTHING: "up to date", triggers.WAIT: "not evaluated"}.get(
                decision.action, "not trained")
            return out
        # A due model reaches here only on a dry run: real fits are claimed and trained together
        # by check() (claim, train_claimed).
        out.result = "would train"
        return out


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
    claims = []  # (index in report.outcomes, (model, decision, obs), training lock)
    try:
        evaluated = _decide_and_claim(runner, models, states, last, fpcache, report, claims, dry_run)
        # Phase 2: every claimed fit goes to the executor at once and is recorded as it returns.
        outcomes = runner.train_claimed([claimed + (False,) for _, claimed, _ in claims])
        for (index, _, _), out in zip(claims, outcomes):
            report.outcomes[index] = out
    finally:
        for _, _, lock in claims:
            lock.release()
    if not dry_run:
        schedule.record(evaluated)
    return report


def _decide_and_claim(runner, models, states, last, fpcache, report, claims, dry_run):
    """Phase 1: decide every model; record skips and errors; lock and re-decide the due ones,
    appending them to `claims` so the caller releases their locks whatever happens."""
    clock = runner.clock
    evaluated = {}
    for model in models:
        state = states.get(model.name, ModelState())
        now = clock()
        # A dry run answers "is anything due now?", so it does not wait out check_interval; and a
        # data file that went missing is reported at once, not hidden by the interval.
        wait = None if dry_run else triggers.waiting(model.policy, now, last.get(model.name))
        if wait is not None and (os.path.exists(model.data_path) or datasets.is_glob(model.data_path)):
            report.outcomes.append(Outcome(model.name, wait.action, note=wait.note, result="not evaluated"))
            continue
        try:
            if state.open_attempts and not dry_run:
                recovered = runner.recover_interrupted(model, state)
                if recovered is not None:
                    state = recovered
                    now = clock()  # decided after the failure just recorded, never before it
            obs = runner.observe(model, state, fpcache, now=now)
            decision = triggers.decide(model.policy, obs)
            fpcache.save()
        except (OSError, ValueError, TypeError, KeyError) as exc:  # one model's bad state must not stop the rest
            log.error("%s: %s: %s", model.name, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            report.outcomes.append(Outcome(model.name, triggers.ERROR, note=str(exc),
                                           result=f"error: {type(exc).__name__}: {exc}", failed=True))
            continue
        if decision.action == triggers.TRAIN and not dry_run:
            claimed, lock = runner.claim(model)
            if claimed is None:
                report.outcomes.append(Outcome(model.name, decision.action, decision.reasons, decision.note, lock))
            else:
                claims.append((len(report.outcomes), claimed, lock))
                report.outcomes.append(None)  # filled in when its fit comes back
        else:
            report.outcomes.append(runner.act(model, decision, obs, dry_run=dry_run))
        if decision.action != triggers.ERROR:  # an unreadable data file is looked at again next run
            evaluated[model.name] = now
    return evaluated


def train(config, name, reason=None, force=False, clock=time.time, callback=None):
    """Manual retrain of one model, whatever its triggers, pause or auto-retraining setting."""
    runner = Runner(config, clock, callback)
    model = config.model(name)
    runner.log.ensure_dir()
    runner.ensure_models_valid()
    with _model_lock(config, name, "already being trained by another process"):
        state = runner.close_dead_attempts(model)  # see Runner.claim
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


def status(config, names=None, clock=time.time, verify=True, states=None):
    """One row per model: data, current version, age, due and why, last event, failures, training now.
    `verify` checks each current model file's sha256 (skipped where only counters are wanted);
    `states` is the log's fold when the caller has already read it."""
    runner = Runner(config, clock)
    if states is None:
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
            "data_files": len(obs.data_files) if obs.data_files else None,
            "new_files": datasets.new_files(obs.data_files, cur.metadata if cur else None),
            "data_hash": obs.data_hash,
            "data_error": obs.data_error,
            "data_changed": (obs.data_hash != obs.model_data_hash) if (obs.data_hash and cur) else None,
            "model_version": cur.version if cur else None,
            "model_age_seconds": round(obs.now - obs.model_trained_at, 1) if obs.model_trained_at else None,
            "metric": model.metric,
            "score": cur.metadata.get("score") if cur else None,
            "mlflow_run_id": cur.metadata.get("mlflow_run_id") if cur else None,
            "mlflow_model_version": cur.metadata.get("mlflow_model_version") if cur else None,
            "due": decision.due,
            "due_reasons": [{"trigger_type": r.trigger_type, "description": r.description} for r in decision.reasons],
            "action": decision.action,
            "note": "; ".join(filter(None, [decision.note, *(obs.quality or {}).get("quality_notes", ())])),
            "paused": state.paused,
            "auto_retraining": model.policy.enable_auto_retraining,
            "failures_in_row": obs.failures_on_data,
            "next_retry": utcnow_iso(decision.next_retry) if decision.next_retry else None,
            "model_integrity": _integrity(runner.store, cur) if verify else None,
            "training_now": os.path.isdir(config.state_dir) and lock_is_held(config.state_dir, model.name),
            "last_event": state.last_event,
            **evaluation.status_fields(obs.quality),
        })
        rows[-1]["executing"] = _executing(config, model.name) if rows[-1]["training_now"] else None
    if os.path.isdir(config.state_dir):
        fpcache.save()
    return rows


def _quality_keys(record):
    return {"quality_keys": record["quality_keys"]} if record.get("quality_keys") else {}


def _integrity(store, mv):
    if mv is None:
        return None
    try:
        store.verify(mv)
        return "ok"
    except IntegrityError as exc:
        return str(exc)


def _executing(config, name):
    """Where a running fit executes, from the sidecar its controller keeps while it holds the lock."""
    from .dispatch import read_running

    info = read_running(config.state_dir, name)
    if not info:
        return None
    return {"executor": info.get("executor"), "state": info.get("state"), "where": info.get("where"),
            "since": utcnow_iso(info["since"]) if isinstance(info.get("since"), (int, float)) else None,
            "controller": info.get("controller")}


def history(config, model=None, limit=20):
    """Retraining and operator events, newest first."""
    if model is not None:
        config.model(model)
    return StateLog(config.state_dir).history(model, limit)


def set_paused(config, names, paused, clock=time.time):
    """Pause or resume automatic retraining; returns (model, changed) pairs."""
    runner = Runner(config, clock)
    runner.log.ensure_dir()
    results = []
    status_word = "paused" if paused else "resumed"
    for model in _select(config, names):
        # Decided under the log's lock: concurrent pauses write one `paused` record between them.
        record = runner._record(model, "operator", status_word, clock(),
                                f"automatic retraining {status_word} by {_operator()}",
                                unless=lambda st: st.paused == paused)
        results.append((model.name, record is not None))
    return results


def rollback(config, name, to=None, clock=time.time):
    """Make the previous promoted version (or `to`) current again, after checking its checksum."""
    runner = Runner(config, clock)
    model = config.model(name)
    runner.log.ensure_dir()
    with _model_lock(config, name, "being trained by another process; try the rollback again later"):
        current = runner.store.current_version(name)
        if current is None:
            raise UsageError(f"{name}: no current model to roll back")
        if to is None:
            to = _previous_promoted(runner, name, current)
            if to is None:
                raise UsageError(f"{name}: no earlier promoted version on disk to roll back to (current is v{current})")
        if to == current:
            raise UsageError(f"{name}: v{to} is already current")
        target = runner.store.get(name, to)
        if target is None:
            available = ", ".join(f"v{v}" for v in runner.store.versions(name)) or "none"
            raise UsageError(f"{name}: version {to} does not exist (available: {available})")
        runner.store.verify(target)
        from .tracking import CHAMPION, move_champion

        tracked = move_champion(config, model, target)
        if tracked.error and config.mlflow.required:
            raise TrackingError(f"{name}: not rolled back to v{to}: MLflow alias '{CHAMPION}' could not be moved "
                                f"and mlflow.required is true: {tracked.error}")
        abandoned = runner.store.get(name, current)
        runner.store.promote(name, to)
        return runner._record(model, "operator", "rolled_back", clock(),
                              f"rolled back from v{current} to v{to} by {_operator()}", version=to,
                              data_hash=target.metadata.get("data_hash"), score=target.metadata.get("score"),
                              previous_version=current,
                              abandoned_data_hash=abandoned.metadata.get("data_hash") if abandoned else None,
                              **tracked.fields())


def _previous_promoted(runner, name, current):
    """The newest version below `current` that was promoted (a `success` record) and is still on
    disk. Versions are numbered in the order they are trained, so reading the log backwards the
    first such record is the one: no need to read years of log."""
    on_disk = set(runner.store.versions(name))
    for ev in runner.log.events(name, ("success",)):
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
    except Timeout:
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

