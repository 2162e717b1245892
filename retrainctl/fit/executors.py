"""Hand fits to where they run -- supervised child processes on this host (`local`) or a Dask
cluster (`dask`) -- and hand them back as they finish. The controller keeps deciding, locking,
gating and recording; an executor only runs `fit.task.run_task` and reports where and how long.
FakeExecutor stands in for both in tests of the orchestration.

distributed is imported only when `executor: {type: dask}` is configured."""
import concurrent.futures
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..base import faults
from ..base.errors import DataError, ErrorType, RetrainctlError, TrainingError
from ..config.records import ExecutorConfig, TrainingSpec
from ..core.records import FitResult
from . import child, kept

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25


# Called when a fit starts running and where: (request, host or worker address).
OnRunning = Callable[["FitRequest", str], None]


class ExecutorUnavailable(RetrainctlError):
    """The configured executor cannot take work (e.g. the Dask scheduler is unreachable)."""


@dataclass
class FitRequest:
    """One fit as the executor sees it: plain, picklable data."""

    model_name: str
    attempt_id: str
    spec: TrainingSpec
    data_path: str
    data_hash: str | None
    champion_bytes: bytes | None = None
    timeout: float = 3600.0
    max_memory_mb: int | None = None
    data_size: int | None = None                 # the fingerprinted prefix of a growing CSV file
    data_files: list[list[str]] | None = None    # a set's decided files, each with its hash


@dataclass
class FitDone:
    """A finished fit: the task's result, or the error to record, and where and how long it ran."""

    request: FitRequest
    result: FitResult | None = None
    error: RetrainctlError | None = None
    where: str | None = None
    queued_seconds: float = 0.0
    run_seconds: float = 0.0


@dataclass
class _Pending:
    request: FitRequest
    future: Any
    submitted: float
    started: float | None = None
    where: str | None = None


def _done(p: _Pending, result: FitResult | None = None, error: RetrainctlError | None = None,
          where: str | None = None) -> FitDone:
    now = time.monotonic()
    started = p.started if p.started is not None else now
    return FitDone(p.request, result, error, where or p.where,
                   round(started - p.submitted, 3), round(now - started, 3))


# --- what a fit's error means, wherever it ran ------------------------------------------------------

def _out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or what an address-space limit looks like elsewhere: a shared library that
    cannot be mapped while importing, an allocation failing with ENOMEM."""
    import errno

    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return ((isinstance(exc, OSError) and exc.errno == errno.ENOMEM)
            or (isinstance(exc, (ImportError, OSError))
                and ("failed to map segment" in text or "Cannot allocate memory" in text)))


def classify(exc: BaseException, max_memory_mb: int | None = None) -> tuple[ErrorType, str]:
    """(error_type, message) for an exception the training task raised, wherever it ran."""
    if _out_of_memory(exc):
        why = f"fit exceeded max_memory_mb={max_memory_mb}" if max_memory_mb else "fit ran out of memory"
        return ErrorType.MEMORY, why if isinstance(exc, MemoryError) else f"{why} ({type(exc).__name__}: {exc})"
    if isinstance(exc, DataError):
        return ErrorType.DATA_ERROR, str(exc)
    if isinstance(exc, TrainingError):
        return exc.error_type, str(exc)
    if isinstance(exc, RetrainctlError):
        return ErrorType.CONFIG_ERROR, str(exc)
    return ErrorType.TRAINING_ERROR, f"{type(exc).__name__}: {exc}"


def as_error(error_type: ErrorType, text: str) -> RetrainctlError:
    """The controller-side exception for a classified task error."""
    return DataError(text) if error_type == ErrorType.DATA_ERROR else TrainingError(text, error_type=error_type)


# --- executors -----------------------------------------------------------------------------------

def local_fit(request: FitRequest) -> tuple[Any, ...]:
    """One fit as a fit process (or a Dask batch) runs it: `run_task`, or its error classified."""
    import traceback

    r = request
    try:
        from .task import run_task

        return "ok", run_task(r.spec, r.data_path, r.data_hash, r.champion_bytes, r.data_size, r.data_files)
    except Exception as exc:
        return ("error", *classify(exc, r.max_memory_mb), traceback.format_exc())


class Spares:
    """Fit processes that answered and may take the next fit: a process imports pandas and
    scikit-learn once and fits many models (the segments of an entry read their data once, see
    data.datasets). Only fits without max_memory_mb share processes, since an address-space limit
    cannot be lifted once set; a process that timed out, died or failed outside the task is
    never reused."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[child.Child] = []

    def take(self) -> "child.Child | None":
        with self.lock:
            while self.idle:
                proc = self.idle.pop()
                if proc.alive:
                    return proc
                proc.close()
        return None

    def give(self, proc: "child.Child") -> None:
        with self.lock:
            self.idle.append(proc)

    def close(self) -> None:
        for proc in self.drain():
            proc.close()

    def drain(self) -> "list[child.Child]":
        """The idle processes, no longer spares."""
        with self.lock:
            idle, self.idle = self.idle, []
        return idle


# Fit processes started ahead of the executor (prewarm), which the next LocalExecutor opened by
# the same thread takes as spares (another thread's command has its own).
_PREWARMED: dict[threading.Thread, list[child.Child]] = {}
_PREWARMED_LOCK = threading.Lock()


def _forget_prewarmed_in_fork() -> None:
    """In a forked copy of the caller: those processes are its parent's."""
    global _PREWARMED_LOCK
    _PREWARMED_LOCK = threading.Lock()
    _PREWARMED.clear()


os.register_at_fork(after_in_child=_forget_prewarmed_in_fork)


# What every fit imports first: a fit process's start-up is mostly these imports.
FIT_MODULES = ("pandas", "sklearn.pipeline", "sklearn.compose", "sklearn.impute", "sklearn.preprocessing",
               "sklearn.metrics", "scipy.stats", "joblib", "retrainctl.fit.task", "retrainctl.data.features")


def prewarm(config: ExecutorConfig, wanted: int) -> None:
    """Have `wanted` fit processes (at most max_parallel; local executor only) importing pandas
    and scikit-learn now, while the caller decides and claims the rest of its models: the
    LocalExecutor opened next takes them as its first spares. A caller that opens none after all
    calls dismiss_prewarmed()."""
    if config.type != "local":
        return
    with _PREWARMED_LOCK:
        mine = _PREWARMED.setdefault(threading.current_thread(), [])
        wanted = min(wanted, config.max_parallel)
        mine.extend(kept.take(wanted - len(mine)))  # warm already: a previous call's
        while len(mine) < wanted:
            mine.append(_warming_fit_process())


def prewarm_asking(config: ExecutorConfig, function: Callable[..., Any], *args: Any) -> "child.Child | None":
    """A fit process prewarmed as prewarm() does (local executor only, else None), asked at once
    for function(*args): its answer is to be taken (child.receive) before an executor takes the
    process, which it then does like any prewarmed one."""
    if config.type != "local":
        return None
    proc = (kept.take(1) or [_warming_fit_process()])[0]
    try:
        proc.send(function, *args)
    except BaseException:
        proc.close()
        raise
    with _PREWARMED_LOCK:
        _PREWARMED.setdefault(threading.current_thread(), []).append(proc)
    return proc


def _warming_fit_process() -> child.Child:
    """A shared fit process (see Spares), importing FIT_MODULES from its start."""
    return child.Child("retrainctl-fit", prepare=(kept.preload_fit, (FIT_MODULES,)))


def dismiss_prewarmed() -> None:
    """Let go of the prewarmed fit processes no executor took (idempotent): kept for a later
    call where fit.kept allows, else closed."""
    kept.keep(_take_prewarmed())


def _take_prewarmed() -> list[child.Child]:
    """This thread's prewarmed processes, no longer prewarmed."""
    with _PREWARMED_LOCK:
        return _PREWARMED.pop(threading.current_thread(), [])


def run_local(request: FitRequest, children: child.Group, spares: Spares | None = None) -> FitResult:
    """Run the training task in a child process of `children` (a spare one when it may share);
    raise TrainingError with an error_type (timeout, memory, crashed, data_error, ...) when it
    does not return a model."""
    r = request
    shared = spares is not None and r.max_memory_mb is None
    try:
        proc = (spares.take() if spares is not None and shared else None) or \
            children.start("retrainctl-fit" if shared else f"retrainctl-fit-{r.model_name}",
                           max_memory_mb=r.max_memory_mb)
        try:
            message = proc.call(local_fit, r, timeout=r.timeout)
        except BaseException:
            proc.close()
            raise
        if shared and spares is not None:
            spares.give(proc)
        else:
            proc.close()
    except child.Timeout:
        raise TrainingError(f"fit did not finish within train_timeout_seconds={r.timeout:g}",
                            ErrorType.TIMEOUT) from None
    except child.Died as exc:
        if exc.code < 0:
            raise TrainingError(f"fit process was killed by signal {-exc.code}", ErrorType.CRASHED) from None
        hint = (f" (with max_memory_mb={r.max_memory_mb}: native code that cannot allocate often exits like this; "
                f"try a higher limit)") if r.max_memory_mb else ""
        raise TrainingError(f"fit process exited with code {exc.code} before returning a model{hint}",
                            ErrorType.CRASHED) from None
    except child.ChildError as exc:  # outside the task: e.g. interrupted, or its arguments did not unpickle
        log.debug("fit process failed:\n%s", exc.output)
        raise TrainingError(f"fit process failed: {exc}", ErrorType.CRASHED) from None
    if message[0] == "ok":
        return message[1]
    _, error_type, text, tb = message
    log.debug("fit failed in the child process:\n%s", tb)
    raise as_error(error_type, text)


class LocalExecutor:
    """Fits in fresh child processes on this host, at most `max_parallel` at a time."""

    name = "local"

    def __init__(self, config: ExecutorConfig, on_running: OnRunning, poll: float = POLL_SECONDS) -> None:
        self.on_running = on_running
        self.poll = poll
        self.where = socket.gethostname()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=config.max_parallel,
                                                          thread_name_prefix="retrainctl-fit")
        self.children = child.Group()
        self.spares = Spares()
        self.max_parallel = config.max_parallel
        prewarmed = _take_prewarmed()
        for proc in [*prewarmed, *kept.take(config.max_parallel - len(prewarmed))]:
            if proc.unanswered:  # asked something whose answer nobody took: it would be read as a fit's
                proc.close()
            elif self.children.adopt(proc):
                self.spares.give(proc)
        self.shared = len(self.spares.idle)  # shared fit processes started for (or taken by) this executor
        self.pending: dict[Any, _Pending] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.children.kill_all()  # else the pool's threads keep the process alive until their fits end
        self.pool.shutdown(wait=exc[0] is None, cancel_futures=True)
        if exc[0] is None:  # idle processes serve a later call where fit.kept allows
            kept.keep(self.spares.drain())
        self.spares.close()

    def submit(self, request):
        if request.max_memory_mb is None and self.shared < self.max_parallel:
            # Started here, by the thread that owns the executor, rather than by a pool thread that
            # ends with it: a process dies with the thread that started it, and this one may be
            # kept for the caller's next call (fit.kept). Its imports begin at once.
            self.shared += 1
            proc = _warming_fit_process()
            if self.children.adopt(proc):
                self.spares.give(proc)
        p = _Pending(request, None, time.monotonic())
        p.future = self.pool.submit(self._run, p)
        self.pending[p.future] = p
        faults.point("fit_submitted")

    def _run(self, p):
        p.started = time.monotonic()
        p.where = self.where
        self.on_running(p.request, self.where)
        return run_local(p.request, self.children, self.spares)

    def completed(self):
        for group in self.completed_groups():
            yield from group

    def completed_groups(self):
        """The fits that finished, in the groups found finished together: the caller commits
        each group at once, and while it does so the next group's fits run on."""
        while self.pending:
            # In slices: a Ctrl-C handled by another thread does not wake a wait without a timeout.
            done, _ = concurrent.futures.wait(list(self.pending), timeout=self.poll,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            group = []
            for future in done:
                p = self.pending.pop(future)
                try:
                    result = future.result()
                except RetrainctlError as exc:
                    group.append(_done(p, error=exc))
                except Exception as exc:  # a bug in the runner thread: that fit failed, the others go on
                    group.append(_done(p, error=TrainingError(f"{type(exc).__name__}: {exc}",
                                                              ErrorType.EXECUTOR_ERROR)))
                else:
                    group.append(_done(p, result=result))
            if group:
                yield group


# --- Dask: one task per batch of fits -------------------------------------------------------------

BATCHES_PER_THREAD = 4  # batches per worker thread: the last ones even out the workers' finishing times
MAX_BATCH = 100         # fits per batch at most: bounds what a lost worker or a timeout takes down with it


def plan_batches(requests: list[FitRequest], threads: int) -> list[list[FitRequest]]:
    """The due fits cut into batches, one Dask task each: about BATCHES_PER_THREAD batches per
    worker thread, so every thread stays busy until the end, of at most MAX_BATCH fits, and at
    least one. Fits of the same data path go together (a worker reads a file once for all the
    segments of a batch that it holds), in the order they were submitted otherwise."""
    if not requests:
        return []
    size = max(1, min(MAX_BATCH, -(-len(requests) // (BATCHES_PER_THREAD * max(1, threads)))))
    first_seen = {path: i for i, path in reversed(list(enumerate(r.data_path for r in requests)))}
    ordered = sorted(requests, key=lambda r: first_seen[r.data_path])
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def remote_batch(requests: list[FitRequest], queue_name: str, batch_key: str) -> int:
    """The task a Dask worker runs for a batch: each fit in turn (`local_fit`: its error is that
    fit's own), each result sent to the controller through the queue `queue_name` as soon as it
    is there, so a worker lost mid-batch loses only the fits it had not finished."""
    import pickle

    from distributed import Queue, get_worker

    queue = Queue(queue_name)
    where = get_worker().address

    def send(attempt_id: str | None, message: tuple[Any, ...], seconds: float = 0.0) -> None:
        queue.put(pickle.dumps((batch_key, attempt_id, seconds, message), protocol=pickle.HIGHEST_PROTOCOL))

    try:
        # The scheduler hands a worker more tasks than it has threads: the controller learns from
        # this when the batch, and so its first fit, really started.
        send(None, ("started", where))
        for r in requests:
            started = time.monotonic()
            message = local_fit(r)
            if message[0] == "ok":
                message[1].worker = where
            send(r.attempt_id, message, time.monotonic() - started)
    finally:  # the scheduler counts the queue's users: it is gone once the controller and every task let go
        queue.close()
    return len(requests)


@dataclass
class _Batch:
    """One task: its fits not answered yet, in the order the worker runs them (the first is running)."""

    key: str
    future: Any
    left: dict[str, _Pending]  # attempt id -> its fit
    size: int
    where: str | None = None

    @property
    def current(self) -> _Pending:
        return next(iter(self.left.values()))


class DaskExecutor:
    """Fits as tasks on a Dask distributed cluster, in batches (plan_batches): a task fits its
    batch one model after another and sends each result back as it is there. The scheduler would
    silently re-run a task whose worker died; retrainctl's own retry policy should decide that,
    so a batch whose worker left the cluster is cancelled and each of its unfinished fits reported
    as `worker_lost`. The store is written by the controller alone, from results that came back
    whole: a re-run can never leave half a version behind."""

    name = "dask"

    def __init__(self, config: ExecutorConfig, on_running: OnRunning, poll: float = POLL_SECONDS) -> None:
        import uuid

        self.config = config
        self.on_running = on_running
        self.poll = poll
        self.waiting: list[_Pending] = []
        self.batches: dict[str, _Batch] = {}
        self.client = connect(config)
        self.queue_name = f"retrainctl-results-{uuid.uuid4().hex}"
        self.queue: Any = None
        self.no_workers_since: float | None = None
        self.watched = 0.0  # when _watch last asked the scheduler

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for b in self.batches.values():
            b.future.cancel()
        if self.queue is not None:
            try:
                self.queue.close()
            except Exception:  # the scheduler may be gone: nothing to release then
                pass
        self.client.close()

    def submit(self, request):
        self.waiting.append(_Pending(request, None, time.monotonic()))

    def _launch(self, fits: list[_Pending]) -> None:
        """Batch the fits and submit one task per batch."""
        from distributed import Queue

        if self.queue is None:
            self.queue = Queue(self.queue_name, client=self.client)
        try:
            threads = sum(self.client.nthreads().values())
        except Exception:  # the scheduler is gone: the watch reports each fit as scheduler_lost
            threads = 1
        by_id = {p.request.attempt_id: p for p in fits}
        for batch in plan_batches([p.request for p in fits], threads):
            first = batch[0]
            key = f"retrainctl-batch-{first.model_name}-{first.attempt_id}-{len(batch)}"
            future = self.client.submit(remote_batch, batch, self.queue_name, key, key=key, pure=False, retries=0)
            self.batches[key] = _Batch(key, future, {r.attempt_id: by_id[r.attempt_id] for r in batch}, len(batch))

    def completed(self):
        for group in self.completed_groups():
            yield from group

    def completed_groups(self):
        """The fits' results in the groups they came in (all the results in the queue at once, a
        finished batch's leftovers, what a watch found): the caller commits each group at once."""
        from distributed import wait

        if self.waiting:
            fits, self.waiting = self.waiting, []
            self._launch(fits)
        while self.batches:
            answered = list(self._drain())
            if answered:
                yield answered
            for key, b in list(self.batches.items()):
                if b.future.done():
                    late = list(self._drain())  # a task's results are all in the queue before it ends
                    if key in self.batches:
                        del self.batches[key]
                        late += self._collect(b)
                    if late:
                        yield late
            if not self.batches:
                break
            if not answered:
                try:
                    wait([b.future for b in self.batches.values()], timeout=self.poll, return_when="FIRST_COMPLETED")
                except Exception:  # a timeout, or futures cancelled by a lost scheduler: both sorted out below
                    pass
            if time.monotonic() - self.watched >= self.poll:  # not at every result while they stream in
                self.watched = time.monotonic()
                watched = list(self._watch())
                if watched:
                    yield watched

    def _drain(self) -> Iterator[FitDone]:
        """The results the workers have sent, each handed back as its fit's FitDone. A result of
        a batch given up on (its worker lost, a fit timed out) is dropped: its fits were reported."""
        import pickle

        try:
            items = self.queue.get(batch=True) if self.queue is not None else []
        except Exception:  # no scheduler: the watch reports it
            return
        now = time.monotonic()
        for item in items:
            key, attempt_id, seconds, message = pickle.loads(item)
            b = self.batches.get(key)
            if b is not None and attempt_id is None and b.where is None and b.left:
                b.where = message[1]
                self._running(b.current, b.where, now)
                continue
            p = b.left.pop(attempt_id, None) if b is not None else None
            if b is None or p is None:
                continue
            # Its seconds on the worker: results that arrive together did not run in no time.
            p.started = now - seconds
            if message[0] == "ok":
                yield _done(p, result=message[1], where=message[1].worker)
            else:
                _, error_type, text, tb = message
                log.debug("%s: fit failed on %s:\n%s", p.request.model_name, b.where, tb)
                yield _done(p, error=as_error(error_type, text))
            if b.left and b.where is not None:
                self._running(b.current, b.where, now)

    def _running(self, p: _Pending, where: str, now: float) -> None:
        p.started = now if p.started is None else p.started
        p.where = where
        self.on_running(p.request, where)

    def _collect(self, b: _Batch) -> Iterator[FitDone]:
        """The fits of a finished task that sent no result: why, for each."""
        from distributed import KilledWorker

        if not b.left:
            return
        status = b.future.status
        if status == "finished":
            error: RetrainctlError = TrainingError(f"the batch task on {b.where} ended without this fit's result",
                                                   ErrorType.EXECUTOR_ERROR)
        elif status == "cancelled":
            error = TrainingError(f"lost the connection to the Dask scheduler at {self.config.address} during the fit",
                                  ErrorType.SCHEDULER_LOST)
        else:
            exc = b.future.exception()
            if isinstance(exc, KilledWorker):
                error = TrainingError(f"Dask workers kept dying while running the fit: {exc}", ErrorType.WORKER_LOST)
            else:  # outside any one fit (e.g. the batch did not unpickle on the worker): each fit's error
                error = as_error(*classify(exc))
        for p in b.left.values():
            yield _done(p, error=error)
        b.left.clear()

    def _give_up(self, b: _Batch, error_type: ErrorType, current: str, rest: str) -> Iterator[FitDone]:
        """Cancel a batch: its running fit fails with `current`, the ones after it with `rest`."""
        self.batches.pop(b.key, None)
        b.future.cancel()
        for i, p in enumerate(b.left.values()):  # where: the worker its batch was on, started or not
            yield _done(p, error=TrainingError(current if i == 0 else rest, error_type=error_type), where=b.where)
        b.left.clear()

    def _watch(self):
        """Follow each batch once it started on a worker (its first message): give it up when
        that worker left the cluster, its running fit passed its timeout (the fits after
        that one go on in a new batch), or there have been no workers for long."""
        try:
            processing = self.client.processing()
        except Exception as exc:  # the client's comm errors vary by version; any means no scheduler
            log.error("lost the Dask scheduler at %s: %s", self.config.address, exc)
            text = f"lost the connection to the Dask scheduler at {self.config.address} during the fit"
            for b in list(self.batches.values()):
                yield from self._give_up(b, ErrorType.SCHEDULER_LOST, text, text)
            return
        now = time.monotonic()
        if processing:
            self.no_workers_since = None
        elif self.no_workers_since is None:
            self.no_workers_since = now
        for b in list(self.batches.values()):
            if not b.left:
                continue
            if b.where is not None and b.where not in processing:
                done = b.size - len(b.left)
                yield from self._give_up(b, ErrorType.WORKER_LOST, f"Dask worker {b.where} died or left during the fit",
                                         f"Dask worker {b.where} died or left before this fit of its batch started "
                                         f"({done} of {b.size} done)")
                continue
            p = b.current
            if p.started is not None and now - p.started > p.request.timeout:
                # A worker thread cannot be stopped: the batch's later results will be dropped, and
                # its fits after this one go on in a batch of their own.
                rest = list(b.left.values())[1:]
                b.left = {p.request.attempt_id: p}
                yield from self._give_up(b, ErrorType.TIMEOUT, f"fit did not finish within train_timeout_seconds="
                                         f"{p.request.timeout:g} on {b.where}", "")
                if rest:
                    self._launch(rest)
            elif b.where is None and self.no_workers_since is not None and \
                    now - self.no_workers_since > self.config.connect_timeout_seconds:
                text = f"no Dask workers connected to {self.config.address} for {self.config.connect_timeout_seconds:g}s"
                yield from self._give_up(b, ErrorType.NO_WORKERS, text, text)


def security(config):
    if not (config.tls_ca_file or config.tls_cert):
        return None
    from distributed.security import Security

    return Security(tls_ca_file=config.tls_ca_file, tls_client_cert=config.tls_cert,
                    tls_client_key=config.tls_key, require_encryption=True)


def connect(config):
    """A client of the configured scheduler, or ExecutorUnavailable within connect_timeout_seconds."""
    try:
        from distributed import Client
    except ImportError:
        raise ExecutorUnavailable("executor.type dask needs the dask extra: pip install 'retrainctl[dask]'") from None
    try:
        return Client(config.address, timeout=config.connect_timeout_seconds, security=security(config),
                      set_as_default=False)
    except Exception as exc:  # OSError, TimeoutError, TLS errors: all mean "cannot use it"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExecutorUnavailable(f"executor.address: cannot reach the Dask scheduler at {config.address} "
                                  f"({first}); nothing was trained") from None


class Executor(Protocol):
    """What runs fits: a context manager that takes requests and yields them back as they finish."""

    name: str

    def __enter__(self) -> "Executor": ...
    def __exit__(self, *exc: Any) -> Any: ...
    def submit(self, request: FitRequest) -> None: ...
    def completed(self) -> Iterator[FitDone]: ...


OpenExecutor = Callable[[ExecutorConfig, OnRunning], Executor]


def open_executor(config: ExecutorConfig, on_running: OnRunning) -> Executor:
    """The executor the config names, ready to take fits (for Dask: connected)."""
    if config.type == "dask":
        return DaskExecutor(config, on_running)
    return LocalExecutor(config, on_running)


@dataclass
class FakeExecutor:
    """Stands in for open_executor in tests of the orchestration (milliseconds instead of fits):
    answers each fit with `fits[model name](request)`, a FitResult or a RetrainctlError, and
    remembers each session's submissions. Passed as `open_executor` to the commands."""

    fits: dict[str, Callable[[FitRequest], "FitResult | RetrainctlError"]]
    name: str = "fake"
    sessions: list[list[FitRequest]] = field(default_factory=list)
    on_running: OnRunning | None = None

    def __call__(self, config: ExecutorConfig, on_running: OnRunning) -> "FakeExecutor":
        self.on_running = on_running
        self.sessions.append([])
        return self

    def __enter__(self) -> "FakeExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def submit(self, request: FitRequest) -> None:
        self.sessions[-1].append(request)

    def completed(self) -> Iterator[FitDone]:
        for request in self.sessions[-1]:
            if self.on_running is not None:
                self.on_running(request, "fakehost")
            answer = self.fits[request.model_name](request)
            if isinstance(answer, FitResult):
                yield FitDone(request, result=answer, where="fakehost", run_seconds=0.01)
            else:
                yield FitDone(request, error=answer, where="fakehost", run_seconds=0.01)
