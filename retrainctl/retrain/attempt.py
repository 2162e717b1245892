"""Training attempts: claim a due model under its training lock, then carry each claimed fit
through prepare (record `started`) -> fit on the executor -> gate -> save -> track -> promote
-> record."""
import errno
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..base import faults
from ..base.errors import (DataError, ErrorType, IntegrityError, RetrainctlError, TrainingError,
                           error_type_of)
from ..base.locks import LockTimeout, training_lock
from ..base.version import __version__
from ..config.records import Config, ModelConfig
from ..core import decide
from ..core.decide import Decision, Observation
from ..core.outcomes import Outcome
from ..core.records import Action, FitResult, Record, Status, TriggerType, quality_fields
from ..core.values import host_info, new_attempt_id, utcnow_iso
from ..fit.executors import FitRequest, OpenExecutor, dismiss_prewarmed, open_executor, prewarm
from ..observe.observer import Observer
from ..state.lineage import previous_promoted
from ..state.sidecars import clear_running, mark_running
from ..state.store import ModelStore, ModelVersion, Staged
from .recorder import Recorder
from .recovery import Recovery

log = logging.getLogger(__name__)


@dataclass
class Claim:
    """A model to train, decided again under its training lock (None: the caller holds it)."""

    model: ModelConfig
    decision: Decision
    obs: Observation
    lock: Any = None
    force: bool = False


@dataclass(frozen=True)
class Refused:
    """Why a due model was not claimed."""

    note: str


@dataclass
class Job:
    """One training attempt, from its `started` record until its outcome is recorded."""

    claim: Claim
    trigger_type: TriggerType
    description: str
    attempt_id: str
    start: float
    champion: ModelVersion | None = None
    champion_bytes: bytes | None = None
    champion_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # where and how long it ran, for the record
    warm: Any = None  # a tracking process started beside the fit (publish.tracking.Warm), if any

    @property
    def model(self) -> ModelConfig:
        return self.claim.model


class Attempts:
    """Runs training attempts for one command. `open_executor(executor_config, on_running)` gives
    the executor (fit.executors.open_executor unless a test passes another)."""

    def __init__(self, config: Config, store: ModelStore, recorder: Recorder, observer: Observer,
                 recovery: Recovery, clock: Callable[[], float] = time.time,
                 open_executor: OpenExecutor | None = None) -> None:
        self.config = config
        self.store = store
        self.recorder = recorder
        self.observer = observer
        self.recovery = recovery
        self.clock = clock
        self.open_executor = open_executor
        self._prewarm_wanted = 0

    def claim(self, model: ModelConfig, obs: Observation) -> Claim | Refused:
        """Take the model's training lock and decide again under it: another run may have trained
        it meanwhile. Returns a Claim holding the lock, or Refused."""
        lock = training_lock(self.config.state_dir, model.name)
        try:
            lock.acquire()
        except LockTimeout:
            log.info("%s: skipped, another process is training it", model.name)
            return Refused("skipped: being trained by another process")
        try:
            # An attempt still open while this process holds the lock has died (a run that found
            # the lock busy a moment ago could not close it): closed first, then decided after it.
            state = self.recovery.close_dead_attempts(model)
            fresh = self.observer.refresh(obs, model, state, data=True)
            again = decide.decide(model.policy, fresh)
        except BaseException:
            lock.release()
            raise
        if again.action != Action.TRAIN:
            lock.release()
            return Refused("skipped: already handled by another process")
        return Claim(model, again, fresh, lock)

    def prewarm(self, claim: Claim) -> None:
        """While the rest of a command's models are decided and claimed: have a fit process
        (up to max_parallel, one per claim so far) import pandas and scikit-learn, for the
        executor that run() opens (the local one; not for a model with max_memory_mb, whose fit
        gets a process of its own). dismiss_prewarmed() closes those that run() did not take."""
        if self.open_executor is None and claim.model.policy.max_memory_mb is None:
            self._prewarm_wanted += 1
            prewarm(self.config.executor, self._prewarm_wanted)

    @staticmethod
    def dismiss_prewarmed() -> None:
        dismiss_prewarmed()

    def run_one(self, model: ModelConfig, decision: Decision, obs: Observation, force: bool = False) -> Outcome:
        """Fit, gate, store, promote and record one model. The caller holds its training lock."""
        return self.run([Claim(model, decision, obs, force=force)])[0]

    def run(self, claims: list[Claim]) -> list[Outcome]:
        """Fit the claimed models on the configured executor: all submitted at once, each gated
        and recorded as it comes back. The caller holds every model's training lock until this
        returns, so a remote fit is never duplicated."""
        if not claims:
            return []
        from ..publish import entry_registry
        from ..publish.tracking import start_warm, tracks  # MLflow's side: imported only when something trains

        state_dir = self.config.state_dir

        def on_running(request: FitRequest, where: str) -> None:
            mark_running(state_dir, request.model_name, request.attempt_id, executor.name, "running", where)

        jobs: dict[str, Job] = {}
        outcomes: dict[str, Outcome] = {}
        order: list[str | Outcome] = []  # per claim: its job's attempt id, or the Outcome of one that could not start
        warm = rounds = None
        tracking = any(tracks(self.config, c.model) for c in claims)
        # Connecting comes first: an unreachable scheduler leaves no `started` record behind.
        with (self.open_executor or open_executor)(self.config.executor, on_running) as executor, \
                self.recorder.log.summary_held():
            try:
                for job in self._prepare_all(claims, executor.name):
                    order.append(job if isinstance(job, Outcome) else job.attempt_id)
                    if isinstance(job, Outcome):
                        continue
                    jobs[job.attempt_id] = job  # `status` says it is queued from its `started` record
                    executor.submit(self.fit_request(job))
                # An entry's segments: one MLflow run per round, its process warming up beside the fits.
                rounds = entry_registry.start_round(self.config, [c.model for c in claims], warm=True)
                # One tracking process warms up (imports MLflow) beside the fits; each finished
                # fit that is tracked takes it, and the next one is started while fits remain.
                warm = start_warm(self.config) if tracking else None
                for group in _completed_groups(executor):
                    plain: list[tuple[Job, FitResult]] = []
                    for done in group:
                        job = jobs[done.request.attempt_id]
                        job.extra = {"executor": executor.name, "worker": done.where,
                                     "executor_seconds": done.run_seconds, "queued_seconds": done.queued_seconds}
                        if done.error is None and done.result is not None and not tracks(self.config, job.model) \
                                and done.result.data_hash == job.claim.obs.data_hash:
                            plain.append((job, done.result))
                            continue
                        if tracks(self.config, job.model):
                            job.warm, warm = warm, None
                        outcomes[job.attempt_id] = self._finish_safely(job, done.result, done.error)
                        clear_running(state_dir, job.model.name)
                        if warm is None and tracking and len(outcomes) + len(plain) < len(jobs):
                            warm = start_warm(self.config)
                    if plain:
                        outcomes.update(self._finish_group(plain))
                        for job, _ in plain:
                            clear_running(state_dir, job.model.name)
                rounds.end(self.store, [*outcomes.values(), *(o for o in order if isinstance(o, Outcome))])
            finally:
                if rounds is not None:
                    rounds.close()
                if warm is not None:
                    warm.close()
                for job in jobs.values():
                    if job.attempt_id not in outcomes:
                        clear_running(state_dir, job.model.name)
        return [outcomes[key] if isinstance(key, str) else key for key in order]

    def _prepare_all(self, claims: list[Claim], executor: str) -> "list[Job | Outcome]":
        """prepare() each claim, their `started` records appended in one write (one fsync for a
        batch of models). When that write fails (the state log on a full disk) none of them
        starts: each is a failed Outcome, and nothing is left open for the next run to call dead."""
        jobs = [self._job(claim) for claim in claims]
        try:
            self.recorder.record_many([self._started(job, executor) for job in jobs])
        except RetrainctlError as exc:
            for job in jobs:
                log.error("%s: not trained: %s", job.model.name, exc)
            return [Outcome.of(job.model.name, job.claim.decision, f"failed: {exc}", failed=True) for job in jobs]
        out: list[Job | Outcome] = []
        for job in jobs:
            try:
                out.append(self._champion(job))
            except RetrainctlError as exc:
                log.error("%s: not trained: %s", job.model.name, exc)
                out.append(self._outcome(job, f"failed: {exc}", Status.FAILURE, job.description, failed=True,
                                         error=str(exc), error_type=error_type_of(exc, ErrorType.ERROR)))
        return out

    def prepare(self, claim: Claim, executor: str = "local") -> "Job":
        """Record the `started` event and gather what the fit needs: the champion to compare with."""
        job = self._job(claim)
        self.recorder.record(self._started(job, executor))
        return self._champion(job)

    def _job(self, claim: Claim) -> "Job":
        decision = claim.decision
        return Job(claim, decision.trigger_type or TriggerType.MANUAL, decision.describe(), new_attempt_id(),
                   self.clock())

    def _started(self, job: "Job", executor: str) -> Record:
        obs = job.claim.obs
        return Record(job.model.name, job.trigger_type, Status.STARTED, job.start, data_hash=obs.data_hash,
                      attempt_id=job.attempt_id,
                      extra={"executor": executor, "config_hash": obs.config_hash,
                             **quality_fields(obs.quality_keys, obs.quality_evidence), **host_info()})

    def _champion(self, job: "Job") -> "Job":
        """The live version the candidate is compared with, read and checked once."""
        model = job.model
        log.info("%s: training (%s)", model.name, job.description)
        job.champion = self.store.current(model.name)
        if job.champion is not None:
            try:
                job.champion_bytes = self.store.read_verified(job.champion)
            except IntegrityError as exc:
                log.warning("%s: %s; the gate treats the current model as missing", model.name, exc)
                job.champion_note = f"; current v{job.champion.version} failed its checksum"
        return job

    def fit_request(self, job: "Job") -> FitRequest:
        model, policy, obs = job.model, job.model.policy, job.claim.obs
        return FitRequest(model.name, job.attempt_id, model.training_spec(),
                          self.config.executor.worker_path(model.data_path), obs.data_hash, job.champion_bytes,
                          timeout=policy.train_timeout_seconds, max_memory_mb=policy.max_memory_mb,
                          data_size=obs.data_size, data_files=obs.fit_files)

    def _finish_safely(self, job: "Job", result: FitResult | None, error: RetrainctlError | None) -> Outcome:
        """finish(), but an unexpected error in it closes this attempt as a failure and lets the
        other models' fits be collected, instead of aborting the run with attempts left open."""
        try:
            return self.finish(job, result, error)
        except Exception as exc:
            return self._failed(job, exc)
        finally:
            if job.warm is not None:  # not needed after all (the fit failed): dismissed
                job.warm.close()

    def _failed(self, job: "Job", exc: Exception) -> Outcome:
        """Close the attempt as failed by `exc`, an error while finishing it; if even that cannot be
        recorded, an Outcome that says so."""
        error_type, text = self._cause(job, exc)
        log.error("%s: %s", job.model.name, text, exc_info=log.isEnabledFor(logging.DEBUG))
        try:
            return self._outcome(job, f"failed: {text}", Status.FAILURE, job.description, failed=True,
                                 error=text, error_type=error_type)
        except RetrainctlError as unrecorded:  # the state log cannot take it either: said, not hidden
            log.error("%s: failure not recorded: %s", job.model.name, unrecorded)
            return Outcome.of(job.model.name, job.claim.decision, f"failed: {text}; not recorded: {unrecorded}",
                              failed=True)

    def _cause(self, job: "Job", exc: Exception) -> tuple[ErrorType, str]:
        """(error_type, message) of an error raised while finishing an attempt: a full disk or a
        quota is `disk_full` naming the path (the model's folder when the write named none), a
        named error keeps its type, anything else is `internal`."""
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return ErrorType.DISK_FULL, f"{exc.filename or self.store.folder(job.model.name)}: {exc.strerror}"
        if isinstance(exc, RetrainctlError):
            return error_type_of(exc, ErrorType.INTERNAL), str(exc)
        return ErrorType.INTERNAL, f"{type(exc).__name__}: {exc}"

    def _event(self, job: "Job", status: Status, text: str, **fields: Any) -> Record:
        """The record of how the attempt ended."""
        return self.recorder.event(job.model, job.trigger_type, status, job.start, text,
                                   duration=round(self.clock() - job.start, 3), data_hash=job.claim.obs.data_hash,
                                   attempt_id=job.attempt_id, config_hash=job.claim.obs.config_hash,
                                   **quality_fields(job.claim.obs.quality_keys, job.claim.obs.quality_evidence),
                                   **job.extra, **fields)

    def _outcome(self, job: "Job", result: str, status: Status, text: str, failed: bool = False,
                 **fields: Any) -> Outcome:
        """Record how the attempt ended and return its Outcome."""
        event = self.recorder.record(self._event(job, status, text, **fields))
        return Outcome.of(job.model.name, job.claim.decision, result, event, failed)

    def finish(self, job: "Job", result: FitResult | None = None, error: RetrainctlError | None = None) -> Outcome:
        """Verify, gate, store, promote and record one fit's FitResult (or its error),
        wherever it ran."""
        model, expected = job.model, job.claim.obs.data_hash
        if error is None and result is not None and result.data_hash != expected:
            error = TrainingError(f"{model.data_path}: fit returned data hash {result.data_hash}, "
                                  f"expected {expected}", ErrorType.DATA_CHANGED)
        if isinstance(error, TrainingError) and error.error_type == ErrorType.DATA_CHANGED:
            # Not the model's fault: the next check sees the new data and decides afresh.
            log.warning("%s: skipped: %s", model.name, error)
            return self._outcome(job, f"skipped: {error}", Status.SKIPPED, job.description,
                                 failed=job.trigger_type == TriggerType.MANUAL,
                                 error=str(error), error_type=ErrorType.DATA_CHANGED)
        if error is not None:
            error_type = error_type_of(error, ErrorType.DATA_ERROR if isinstance(error, DataError) else ErrorType.ERROR)
            log.error("%s: %s", model.name, error)
            from ..publish.tracking import log_failure

            tracked = log_failure(self.config, model, job.trigger_type, job.attempt_id, error, error_type,
                                  job.description, job.warm, self.clock() - job.start)
            return self._outcome(job, f"failed: {error}", Status.FAILURE, job.description, failed=True,
                                 error=str(error), error_type=error_type,
                                 **({"mlflow_run_id": tracked.run_id} if tracked.run_id else {}))
        assert result is not None
        return self._keep(job, result)

    def _keep(self, job: "Job", result: FitResult) -> Outcome:
        """Gate the candidate, save it, track it, and promote it if the gate passes."""
        model = job.model
        verdict, meta = self._judge(job, result)
        faults.point("before_save")
        mv = self.store.save(model.name, result.model_bytes, meta, at_least=self.recorder.state(model.name).max_version)
        faults.point("after_save")
        fields, text = self._fields(job, result, mv, verdict)
        # Tracked before promotion, so that with mlflow.required a tracking failure keeps the candidate out.
        from ..publish.tracking import log_training

        tracked = log_training(self.config, model, mv, result, job.trigger_type, verdict.promote, text, job.warm,
                               training_time=self.clock() - job.start)
        try:
            return self._track_and_promote(job, result, mv, verdict, tracked, fields, text)
        finally:
            tracked.close()

    def _judge(self, job: "Job", result: FitResult) -> tuple[decide.GateResult, dict[str, Any]]:
        """The gate's verdict on the candidate, and the metadata its version is saved with."""
        model, force = job.model, job.claim.force
        policy = model.policy
        for warning in result.metadata.get("column_warnings", ()):
            log.warning("%s: %s", model.name, warning)
        champion, champion_bytes = job.champion, job.champion_bytes
        # Only on a random holdout, whose rows come from the training rows' own population: there
        # a model that learnt anything scores above a constant, so none means nothing learnable
        # (shuffled labels). With `holdout: latest` the newest period may be a new regime that one
        # period of training data cannot teach yet, and its candidate still beats the live model.
        live = (decide.skill_of(champion.metadata) if champion is not None and champion_bytes is not None
                and policy.holdout == "random" else None)
        no_skill = decide.skill_problem(decide.skill_of(result.metadata), live,
                                        model.higher_is_better, model.metric,
                                        champion.version if champion is not None else None)
        verdict = decide.gate(result.score, result.champion_score, model.higher_is_better,
                              policy.promotion_tolerance, result.sanity_problem, force=force,
                              has_champion=champion_bytes is not None, no_skill=no_skill)
        meta = dict(result.metadata, trained_at=utcnow_iso(self.clock()), trained_at_ts=self.clock(),
                    trigger_type=job.trigger_type, attempt_id=job.attempt_id, model_name=model.name,
                    promoted=verdict.promote, config_hash=job.claim.obs.config_hash,
                    training_config=model.training_config(), retrainctl_version=__version__)
        return verdict, meta

    def _fields(self, job: "Job", result: FitResult, mv: ModelVersion,
                verdict: decide.GateResult) -> tuple[dict[str, Any], str]:
        """The outcome record's fields for saved version `mv`, and its description."""
        champion = job.champion
        fields = dict(version=mv.version, score=result.score, rows=mv.metadata["rows"],
                      champion_score=result.champion_score,
                      champion_version=champion.version if champion is not None and job.champion_bytes is not None
                      else None)
        return fields, f"{job.description}; {verdict.reason}{job.champion_note}"

    def _verdict(self, job: "Job", result: FitResult, mv: ModelVersion, verdict: decide.GateResult, text: str,
                 fields: dict[str, Any]) -> tuple[str, Record]:
        """(the outcome's text, the record to write) of a saved candidate, promoted or rejected."""
        if verdict.promote:
            return (f"promoted v{mv.version} ({job.model.metric} {result.score:.4g})",
                    self._event(job, Status.SUCCESS, text, promoted=True, forced=job.claim.force, **fields))
        return (f"rejected v{mv.version}: {verdict.reason}",
                self._event(job, Status.REJECTED, text, promoted=False, **fields))

    def _finish_group(self, fits: list[tuple["Job", FitResult]]) -> dict[str, Outcome]:
        """finish() for fits that came back together and are not tracked in MLflow, with group
        commits: their versions saved with one fsync round (store.commit), promoted with one
        (store.link_current, store.sync_folders), their outcomes appended in one write. The order of what becomes
        durable is each model's as in finish(): version folder, then `current`, then the
        record; a crash in between leaves what recovery.close_dead_attempts closes for one model.
        A model's own error (a gate or a save that fails) fails it alone."""
        outcomes: dict[str, Outcome] = {}
        staged: list[tuple[Job, FitResult, decide.GateResult, Staged]] = []
        for job, result in fits:
            try:
                verdict, meta = self._judge(job, result)
                faults.point("before_save")
                at_least = self.recorder.state(job.model.name).max_version
                staged.append((job, result, verdict, self.store.stage(job.model.name, result.model_bytes, meta,
                                                                      at_least=at_least)))
            except Exception as exc:
                outcomes[job.attempt_id] = self._failed(job, exc)
        if not staged:
            return outcomes
        try:
            self.store.commit([st for *_, st in staged])
        except Exception as exc:
            for job, *_ in staged:
                outcomes[job.attempt_id] = self._failed(job, exc)
            return outcomes
        faults.point("after_save")
        faults.point("after_track")
        linked: list[tuple[Job, FitResult, decide.GateResult, Staged]] = []
        for item in staged:
            job, _, verdict, st = item
            if not verdict.promote:
                linked.append(item)
                continue
            try:
                self.store.link_current(job.model.name, st.mv.version)
                linked.append(item)
            except Exception as exc:
                outcomes[job.attempt_id] = self._failed(job, exc)
        try:
            self.store.sync_folders([job.model.name for job, _, verdict, _ in linked if verdict.promote])
        except Exception as exc:
            for job, *_ in linked:
                outcomes[job.attempt_id] = self._failed(job, exc)
            return outcomes
        if any(verdict.promote for _, _, verdict, _ in linked):
            faults.point("after_promote")
        events: list[tuple[Job, Record, Outcome]] = []
        for job, result, verdict, st in linked:
            model, mv = job.model, st.mv
            try:
                self._prune(model, model.policy.keep_versions)
            except Exception as exc:  # a version left behind is pruned next time
                log.warning("%s: old versions not pruned: %s", model.name, exc)
            fields, text = self._fields(job, result, mv, verdict)
            result_text, event = self._verdict(job, result, mv, verdict, text, fields)
            _log_verdict(model.name, mv, result, verdict, model.metric)
            events.append((job, event, Outcome.of(model.name, job.claim.decision, result_text, event)))
        try:
            self.recorder.record_many([event for _, event, _ in events])
        except RetrainctlError as exc:
            for job, _, outcome in events:
                log.error("%s: outcome not recorded: %s", job.model.name, exc)
                outcomes[job.attempt_id] = Outcome.of(job.model.name, job.claim.decision,
                                                      f"{outcome.result}; not recorded: {exc}", failed=True)
            return outcomes
        for job, _, outcome in events:
            outcomes[job.attempt_id] = outcome
        return outcomes

    def _prune(self, model: ModelConfig, keep: int) -> None:
        """Prune old versions, never the one a rollback goes back to."""
        current = self.store.current_version(model.name)
        target = previous_promoted(self.recorder.log, self.store, model.name, current) if current else None
        self.store.prune(model.name, keep, protect=(target,))

    def _track_and_promote(self, job: "Job", result: FitResult, mv: ModelVersion, verdict: decide.GateResult,
                           tracked: Any, fields: dict[str, Any], text: str) -> Outcome:
        """Keep the run's ids, promote (or not), record, then attach the report page to the run."""
        from ..publish.tracking import attach_report

        model, policy = job.model, job.model.policy
        faults.point("after_track")
        if tracked.run_id is not None:
            mv = self.store.update_metadata(mv, **tracked.ids())
        fields.update(tracked.fields())
        if tracked.error and self.config.mlflow.required:
            error = f"MLflow tracking failed and mlflow.required is true: {tracked.error}"
            log.error("%s: v%d not promoted: %s", model.name, mv.version, error)
            self.store.update_metadata(mv, promoted=False)
            return self._outcome(job, f"failed: {error}", Status.FAILURE, text, failed=True,
                                 error=error, error_type=ErrorType.TRACKING, **fields)
        if verdict.promote:
            self.store.promote(model.name, mv.version)
            faults.point("after_promote")
        self._prune(model, policy.keep_versions)
        result_text, event = self._verdict(job, result, mv, verdict, text, fields)
        out = Outcome.of(model.name, job.claim.decision, result_text, self.recorder.record(event))
        _log_verdict(model.name, mv, result, verdict, model.metric)
        attach_report(self.config, model, tracked)  # after the record, so that the page shows this attempt
        return out


def _log_verdict(name: str, mv: ModelVersion, result: FitResult, verdict: decide.GateResult, metric: str) -> None:
    if verdict.promote:
        log.info("%s: promoted v%d (%s %.4g)", name, mv.version, metric, result.score)
    else:
        log.warning("%s: candidate v%d rejected: %s", name, mv.version, verdict.reason)


def _completed_groups(executor: Any) -> Iterator[list[Any]]:
    """The executor's finished fits, in the groups that finished together when it can tell
    (LocalExecutor.completed_groups), else one by one."""
    groups = getattr(executor, "completed_groups", None)
    if groups is not None:
        yield from groups()
    else:
        for done in executor.completed():
            yield [done]
