"""Hand fits to where they run -- supervised child processes on this host (`local`) or a Dask
cluster (`dask`) -- and hand them back as they finish. The controller keeps deciding, locking,
gating and recording; an executor only runs `fit.task.run_task` and reports where and how long.
FakeExecutor stands in for both in tests of the orchestration.

distributed is imported only when `executor: {type: dask}` is configured."""
import concurrent.futures
import logging
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
from . import child

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

    @property
    def key(self) -> str:
        return f"retrainctl-fit-{self.model_name}-{self.attempt_id}"


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
    """The task a local fit process runs: `run_task`, or its error classified."""
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
        with self.lock:
            idle, self.idle = self.idle, []
        for proc in idle:
            proc.close()


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
        self.pending: dict[Any, _Pending] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.children.kill_all()  # else the pool's threads keep the process alive until their fits end
        self.pool.shutdown(wait=exc[0] is None, cancel_futures=True)
        self.spares.close()

    def submit(self, request):
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


def remote_fit(request: FitRequest) -> FitResult:
    """The task a Dask worker runs: `run_task`, plus the worker's address."""
    from distributed import get_worker

    from .task import run_task

    r = request
    result = run_task(r.spec, r.data_path, r.data_hash, r.champion_bytes, r.data_size, r.data_files)
    result.worker = get_worker().address
    return result


class DaskExecutor:
    """Fits as tasks on a Dask distributed cluster. The scheduler would silently re-run a task
    whose worker died; retrainctl's own retry policy should decide that, so a fit whose worker
    left the cluster is cancelled and reported as `worker_lost`."""

    name = "dask"

    def __init__(self, config: ExecutorConfig, on_running: OnRunning, poll: float = POLL_SECONDS) -> None:
        self.config = config
        self.on_running = on_running
        self.poll = poll
        self.pending: dict[str, _Pending] = {}
        self.client = connect(config)
        self.no_workers_since: float | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.pending.values():
            p.future.cancel()
        self.client.close()

    def submit(self, request):
        r = request
        future = self.client.submit(remote_fit, r, key=r.key, pure=False, retries=0)
        self.pending[r.key] = _Pending(r, future, time.monotonic())

    def completed(self):
        from distributed import wait

        while self.pending:
            try:
                wait([p.future for p in self.pending.values()], timeout=self.poll, return_when="FIRST_COMPLETED")
            except Exception:  # a timeout, or futures cancelled by a lost scheduler: both sorted out below
                pass
            for key, p in list(self.pending.items()):
                if p.future.done():
                    del self.pending[key]
                    yield self._collect(p)
            if self.pending:
                yield from self._watch()

    def _collect(self, p):
        from distributed import KilledWorker

        status = p.future.status
        if status == "finished":
            result = p.future.result()
            return _done(p, result=result, where=result.worker)
        if status == "cancelled":
            return _done(p, error=TrainingError(
                f"lost the connection to the Dask scheduler at {self.config.address} during the fit",
                ErrorType.SCHEDULER_LOST))
        exc = p.future.exception()
        if isinstance(exc, KilledWorker):
            return _done(p, error=TrainingError(f"Dask workers kept dying while running the fit: {exc}",
                                                ErrorType.WORKER_LOST))
        return _done(p, error=as_error(*classify(exc, p.request.max_memory_mb)))

    def _fail(self, key: str, error_type: ErrorType, text: str) -> FitDone:
        p = self.pending.pop(key)
        p.future.cancel()
        return _done(p, error=TrainingError(text, error_type=error_type))

    def _watch(self):
        """Follow each fit from scheduler to worker: note where it runs, and fail it when its
        worker left the cluster, it ran past its timeout, or there have been no workers for long."""
        try:
            processing = self.client.processing()
        except Exception as exc:  # the client's comm errors vary by version; any means no scheduler
            log.error("lost the Dask scheduler at %s: %s", self.config.address, exc)
            for key in list(self.pending):
                yield self._fail(key, ErrorType.SCHEDULER_LOST,
                                 f"lost the connection to the Dask scheduler at {self.config.address} during the fit")
            return
        now = time.monotonic()
        where = {key: addr for addr, keys in processing.items() for key in keys}
        if processing:
            self.no_workers_since = None
        elif self.no_workers_since is None:
            self.no_workers_since = now
        for key, p in list(self.pending.items()):
            if p.where is not None and p.where not in processing:
                yield self._fail(key, ErrorType.WORKER_LOST, f"Dask worker {p.where} died or left during the fit")
                continue
            addr = where.get(key)
            if addr is not None and addr != p.where:
                p.started = now if p.started is None else p.started
                p.where = addr
                self.on_running(p.request, addr)
            if p.started is not None and now - p.started > p.request.timeout:
                # A worker thread cannot be stopped; the result will be dropped when it arrives.
                yield self._fail(key, ErrorType.TIMEOUT, f"fit did not finish within train_timeout_seconds="
                                                 f"{p.request.timeout:g} on {p.where}")
            elif p.where is None and self.no_workers_since is not None and \
                    now - self.no_workers_since > self.config.connect_timeout_seconds:
                yield self._fail(key, ErrorType.NO_WORKERS, f"no Dask workers connected to {self.config.address} "
                                                    f"for {self.config.connect_timeout_seconds:g}s")


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
