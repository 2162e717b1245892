"""What every command that may train wires up (Shell: the store, the recorder, the observer,
recovery and attempts), and the small helpers the commands share."""
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from ..base.errors import ConfigError, RetrainctlError, UsageError
from ..base.fsutil import atomic_write_json, best_effort, read_json
from ..base.locks import LockTimeout, training_lock
from ..config.records import Config, ModelConfig
from ..core.values import one_line
from ..fit.executors import OpenExecutor
from ..observe.fleet import Fleet, segmented
from ..observe.observer import Observer
from ..retrain.attempt import Attempts
from ..retrain.recorder import Recorder
from ..retrain.recovery import Recovery
from ..state.log import StateLog
from ..state.store import ModelStore

log = logging.getLogger(__name__)

VALIDATED_FILE = "validated.json"
Clock = Callable[[], float]
Callback = Callable[..., Any]


class Shell:
    """The parts one command works with. The model store, the state log and the executor
    (`open_executor(executor_config, on_running)`, see fit.executors.open_executor) can be passed
    in; by default they are the configured ones."""

    def __init__(self, config: Config, clock: Clock = time.time, callback: Callback | None = None,
                 store: ModelStore | None = None, log: StateLog | None = None,
                 open_executor: OpenExecutor | None = None) -> None:
        self.config = config
        self.clock = clock
        self.store = store if store is not None else ModelStore(config.model_dir)
        self.recorder = Recorder(config, log, callback)
        self.log = self.recorder.log
        self.observer = Observer(config, self.store, clock)
        self.recovery = Recovery(config, self.store, self.recorder, clock)
        self.attempts = Attempts(config, self.store, self.recorder, self.observer, self.recovery, clock,
                                 open_executor)
        # (validation key, the fit process asked to validate) from start_validation, for prepare_to_train
        self._validation: tuple[str | None, Any] | None = None

    def start_validation(self) -> None:
        """When this config's models are to be validated (see _ensure_models_valid): ask a fit
        process started now (a prewarmed one, which goes on to fit) to do it, while this process
        finds and decides the models. prepare_to_train takes its answer. The local executor
        only, and not with an executor passed in (tests): otherwise prepare_to_train validates."""
        if self.attempts.open_executor is not None:
            return
        key, process = _validation_key(self.config), None
        if key is not None:
            from ..fit.executors import prewarm_asking
            from ..fit.task import validation_problem

            process = prewarm_asking(self.config.executor, validation_problem, self.config)
        self._validation = (key, process)

    def prepare_to_train(self, dry_run: bool = False) -> None:
        """Make the state dir, and check the models once per config (see _ensure_models_valid).
        A dry run only asks: it works on a state dir it may not write (or that does not exist)."""
        if dry_run:
            _ensure_models_valid(self.config, remember=os.access(self.config.state_dir, os.W_OK))
            return
        self.log.ensure_dir()
        started, self._validation = self._validation, None
        _ensure_models_valid(self.config, started=started)
        if self.config.mlflow.enabled and any(m.segment_by for m in self.config.models.values()):
            from ..publish.entry_registry import repair  # a no-op check of other models never loads it

            repair(self.config, self.store)  # an entry's `champion` left behind by a command that died


def _ensure_models_valid(config: Config, remember: bool = True, started: tuple[str | None, Any] | None = None) -> None:
    """Import-time validation (estimators, params, trainers) costs the ML imports, so it runs
    once per config content and installed scikit-learn and is remembered in the state dir.
    `started`: (its key, the fit process asked to do it) from Shell.start_validation, whose
    answer counts; if that process gives none (it died), it runs here."""
    key, process = started if started is not None else (_validation_key(config), None)
    if key is None:
        return
    if not _validated_by(process):
        from ..fit.task import validate_models

        validate_models(config)
    if remember:
        with best_effort(os.path.join(config.state_dir, VALIDATED_FILE)):
            atomic_write_json(os.path.join(config.state_dir, VALIDATED_FILE), {"key": key})


VALIDATE_SECONDS = 600.0


def _validated_by(process: Any) -> bool:
    """Whether the fit process asked to validate the models answered: ConfigError when it found a
    problem; False without a process or an answer."""
    if process is None:
        return False
    from ..fit import child

    try:
        problem = process.receive(timeout=VALIDATE_SECONDS)
    except child.ChildError as exc:
        log.debug("the fit process asked to validate the models gave no answer (%s); validating here", exc)
        process.close()
        return False
    if problem:
        raise ConfigError(problem)
    return True


def _validation_key(config: Config) -> str | None:
    """The key this config's validation is remembered under, or None when it is remembered
    already. (find_spec + stat, not importlib.metadata, which costs a no-op check ~20 ms of imports.)"""
    from importlib.util import find_spec

    spec = find_spec("sklearn")
    try:
        sk = f"{spec.origin}:{os.stat(spec.origin).st_mtime_ns}"  # type: ignore[union-attr,arg-type]
    except (AttributeError, TypeError, OSError):
        sk = "none"
    key = hashlib.sha256(f"{config.file_digest}:{sk}".encode()).hexdigest()
    if (read_json(os.path.join(config.state_dir, VALIDATED_FILE)) or {}).get("key") == key:
        return None
    return key


def select(config: Config, names: tuple[str, ...] | list[str] | None, observer: Observer | None = None,
           known: Iterable[str] | None = None, skip: Collection[str] = ()) -> list[ModelConfig]:
    """The named models (each once), or every configured model when none is named but those of
    the entries in `skip`; an entry with segment_by is its segments (observe.fleet). `known`: the
    model names of the state log (read here only when an entry's segments are to be listed)."""
    if not names and all(m.name in skip for m in config.models.values() if m.segment_by):
        return [m for m in config.models.values() if m.name not in skip]
    if not segmented(config):
        return [config.model(n) for n in dict.fromkeys(names or ())]
    if known is None:
        known = StateLog(config.state_dir).states() if os.path.isdir(config.state_dir) else ()
    return Fleet(config, observer or Observer(config), known).select(names, skip)


def one(config: Config, name: str, observer: Observer | None = None) -> ModelConfig:
    """The one model `name` stands for (a model or a segment); UsageError for an entry or a glob
    that stands for several."""
    models = select(config, [name], observer)
    if len(models) != 1:
        raise UsageError(f"'{name}' stands for {len(models)} models; name one of them (e.g. '{models[0].name}')")
    return models[0]


@contextlib.contextmanager
def model_lock(config: Config, name: str, busy: str) -> Iterator[None]:
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


def operator() -> str:
    """Who runs the command, for the history record of an operator's action: from $LOGNAME or
    $USER first, so made one line like any text an operator gives."""
    import getpass

    try:
        return one_line(getpass.getuser()) or f"uid {os.getuid()}"
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
