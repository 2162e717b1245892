"""Where a fit runs. The local executor runs the training task in a child process, so a
timeout or a memory limit can be enforced by the parent, which then records the outcome."""
import logging
import multiprocessing
import os
import threading
import traceback

from .errors import DataError, RetrainctlError, TrainingError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """Linux: the child is killed when the controller dies, so an orphaned fit cannot linger.
    Ctrl-C reaches the whole process group: the child leaves at once and silently (the
    controller reports the interruption), instead of printing a KeyboardInterrupt traceback."""
    import signal

    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


_live = set()  # fit processes running now (run_local registers them), for kill_live()
_live_lock = threading.Lock()


def kill_live():
    """Kill every fit process still running: the controller is unwinding (Ctrl-C, an error),
    and its fit threads would otherwise keep it alive until their fits end."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        try:
            proc.kill()
        except (OSError, ValueError):
            pass


def exit_child():
    """End a child process whose answer is sent: flush stdio and leave without the interpreter's
    shutdown, which after importing pandas, scikit-learn or MLflow takes up to a second the
    parent would spend waiting. Only for processes that keep nothing buffered (no open files)."""
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def _child(conn, spec, data_path, expected_hash, champion_bytes, max_memory_mb):
    _die_with_parent()
    try:
        if max_memory_mb:
            import resource

            limit = int(max_memory_mb) << 20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        from .training import run_task

        result = run_task(spec, data_path, expected_hash, champion_bytes)
        conn.send(("ok", result))
    except Exception as exc:
        conn.send(("error", *classify(exc, max_memory_mb), traceback.format_exc()))
    finally:
        conn.close()
    exit_child()


def _out_of_memory(exc):
    """MemoryError, or what an address-space limit looks like elsewhere: a shared library that
    cannot be mapped while importing, an allocation failing with ENOMEM."""
    import errno

    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return ((isinstance(exc, OSError) and exc.errno == errno.ENOMEM)
            or (isinstance(exc, (ImportError, OSError))
                and ("failed to map segment" in text or "Cannot allocate memory" in text)))


def classify(exc, max_memory_mb=None):
    """(error_type, message) for an exception the training task raised, wherever it ran."""
    if _out_of_memory(exc):
        why = f"fit exceeded max_memory_mb={max_memory_mb}" if max_memory_mb else "fit ran out of memory"
        return "memory", why if isinstance(exc, MemoryError) else f"{why} ({type(exc).__name__}: {exc})"
    if isinstance(exc, DataError):
        return "data_error", str(exc)
    if isinstance(exc, TrainingError):
        return exc.error_type, str(exc)
    if isinstance(exc, RetrainctlError):
        return "config_error", str(exc)
    return "training_error", f"{type(exc).__name__}: {exc}"


def as_error(error_type, text):
    """The controller-side exception for a classified task error."""
    return DataError(text) if error_type == "data_error" else TrainingError(text, error_type=error_type)


def run_local(spec, data_path, expected_hash, champion_bytes=None, timeout=3600.0, max_memory_mb=None):
    """Run the training task in a fresh child process; raise TrainingError with an error_type
    (timeout, memory, crashed, data_error, ...) when it does not return a model."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, name=f"retrainctl-fit-{spec['name']}",
                       args=(child, spec, data_path, expected_hash, champion_bytes, max_memory_mb), daemon=True)
    proc.start()
    child.close()
    with _live_lock:
        _live.add(proc)
    try:
        if not parent.poll(timeout):
            proc.kill()
            proc.join()
            raise TrainingError(f"fit did not finish within train_timeout_seconds={timeout:g}", error_type="timeout")
        try:
            message = parent.recv()
        except EOFError:
            proc.join()
            code = proc.exitcode
            if code is not None and code < 0:
                raise TrainingError(f"fit process was killed by signal {-code}", error_type="crashed") from None
            hint = (f" (with max_memory_mb={max_memory_mb}: native code that cannot allocate often exits like this; "
                    f"try a higher limit)") if max_memory_mb else ""
            raise TrainingError(f"fit process exited with code {code} before returning a model{hint}",
                                error_type="crashed") from None
    finally:
        parent.close()
        if proc.is_alive():
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        with _live_lock:
            _live.discard(proc)
    if message[0] == "ok":
        return message[1]
    _, error_type, text, tb = message
    log.debug("fit failed in the child process:\n%s", tb)
    raise as_error(error_type, text)
