"""One supervised child process, for fits (fit/executors.py), MLflow tracking (publish/tracking.py)
and notification commands (publish/notify.py): a fresh interpreter in its own process group that
runs the function it is sent and answers over a pipe.
The caller only says what to run; this module spawns, bounds every wait, kills the whole group
(on a deadline, an error, Ctrl-C) and makes the child die with its parent.

The child starts as `python -c <BOOT>`, never through multiprocessing: it must not re-run the
caller's `__main__` (a script without an `if __name__ == "__main__":` guard would run twice).
Requests go down its stdin and answers come back on a second pipe, as length-prefixed pickles;
the parent writes without blocking, so a child that never reads cannot hang it."""
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time

HEADER = struct.Struct("!Q")
PR_SET_PDEATHSIG = 1
SLICE_SECONDS = 0.25  # longest the parent waits without looking at its own signals
REAP_SECONDS = 5.0
CAPTURED_TAIL = 4000
# the folder holding the retrainctl package
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); import retrainctl.fit.child as c; c.main()"


class ChildError(Exception):
    """The child gave no answer. `output` is the tail of what it printed, when that was captured."""

    def __init__(self, text, output=""):
        super().__init__(text)
        self.output = output


class Timeout(ChildError):
    pass


class Died(ChildError):
    """The child ended without answering: `code` is its exit code, negative for a signal."""

    def __init__(self, code):
        super().__init__(f"exited with code {code}")
        self.code = code


class Failed(ChildError):
    """What the child ran raised; the message is one line, `output` ends with the traceback."""


def spawn_context():
    """What a child inherits when it starts, with the process and thread that start it (a child
    dies with that thread: PR_SET_PDEATHSIG): the interpreter, sys.path, working folder, where
    its stdout and stderr go and the environment. None where it cannot be told."""
    try:
        cwd = os.getcwd()
        outputs = tuple((st.st_dev, st.st_ino) for st in (os.fstat(1), os.fstat(2)))
    except OSError:  # a deleted working folder, a closed stdout
        return None
    return (os.getpid(), threading.current_thread(), sys.executable, tuple(sys.path), cwd, outputs,
            tuple(sorted(os.environ.items())))


def _frame(obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


class Group:
    """The children of one owner (an executor). `kill_all` kills them and refuses new ones, under
    the lock that spawning holds, so no child can start unseen while the owner unwinds."""

    def __init__(self):
        self.lock = threading.Lock()
        self.live = set()
        self.closed = False

    def start(self, name, **options):
        with self.lock:
            if self.closed:
                raise ChildError("interrupted before it started")
            child = Child(name, **options)
            child.group = self
            self.live.add(child)
            return child

    def adopt(self, child):
        """Take in a child started outside the group (fit.executors.prewarm); closed at once if
        the group is already closed."""
        with self.lock:
            if not self.closed:
                child.group = self
                self.live.add(child)
                return True
        child.close()
        return False

    def kill_all(self):
        """Kill every child; each one's caller sees it die and closes it (its pipes are theirs)."""
        with self.lock:
            self.closed = True
            for child in self.live:
                child.kill()

    def discard(self, child):
        with self.lock:
            self.live.discard(child)


class Child:
    """A child process ready to run functions (`call`, one at a time); `prepare` (function, args) runs in it at
    once, while the caller does something else. `max_memory_mb` limits its address space while
    the function runs; `capture_output` keeps its stdout/stderr out of the caller's (the tail
    comes back as `output`); `env` gives defaults for its environment variables."""

    def __init__(self, name, prepare=None, max_memory_mb=None, capture_output=False, env=None):
        from ..base import faults

        self.name = name
        self.group = None
        self.output = ""
        self.max_memory_mb = max_memory_mb
        # What it inherits, with the thread starting it (fit.kept: a kept process serves only the
        # same thread, in the same context).
        self.context = spawn_context()
        self.asked = 0       # requests sent
        self.unanswered = 0  # of them, those whose answer was not taken (such a child is never kept)
        environ = dict(env or {}, **os.environ)  # explicit environment variables win
        flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]  # as multiprocessing: -I, -O, -W...
        answers, their_end = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, *flags, "-c", BOOT, ROOT, str(their_end), str(os.getpid()), name],
                stdin=subprocess.PIPE, pass_fds=(their_end,), start_new_session=True, env=environ)
        except BaseException:
            os.close(answers)
            raise
        finally:
            os.close(their_end)
        self.answers = answers
        self.incoming = bytearray()  # answers read, not yet taken
        assert self.proc.stdin is not None
        self.requests = self.proc.stdin.fileno()
        self.outgoing = bytearray(_frame({"sys_path": sys.path, "capture": capture_output, "prepare": prepare}))
        try:
            faults.point("child_spawned")
            os.set_blocking(self.requests, False)
            self._write()
        except BaseException:  # Ctrl-C here: nobody else knows about this child yet
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def alive(self):
        return self.proc.poll() is None

    def call(self, function, *args, timeout, on_note=None):
        """function(*args) in the child, within `timeout` seconds: its return value, or ChildError
        (Timeout, Died, Failed). `on_note` receives what the function passes to `note()` meanwhile."""
        self.send(function, *args)
        return self.receive(timeout=timeout, on_note=on_note)

    def send(self, function, *args):
        """Ask for function(*args) without waiting: receive() takes its answer (the child answers
        in the order asked). What the pipe does not take now is written while receive() waits."""
        self.outgoing += _frame((function, args, self.max_memory_mb))
        self.asked += 1
        self.unanswered += 1
        self._write()

    def receive(self, timeout, on_note=None):
        """The answer to the oldest request not answered yet; see call()."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.answers, selectors.EVENT_READ)
            self._write(sel)
            while True:
                answered, value = self._take_answer(on_note)
                if answered:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout(f"no answer within {timeout:g}s")
                for key, _ in sel.select(min(left, SLICE_SECONDS)):
                    if key.fd == self.requests:
                        self._write(sel)
                        continue
                    data = os.read(self.answers, 1 << 20)
                    if not data:
                        raise Died(self._exit_code())
                    self.incoming += data

    def _take_answer(self, on_note):
        """(True, the value) of the first whole answer read, its notes passed to `on_note` on the
        way; (False, None) while none is whole. Raises Failed for an error answer."""
        buffer = self.incoming
        while len(buffer) >= HEADER.size:
            end = HEADER.size + HEADER.unpack_from(buffer)[0]
            if len(buffer) < end:
                break
            kind, *rest = pickle.loads(bytes(buffer[HEADER.size:end]))
            del buffer[:end]
            if kind == "note":
                if on_note is not None:
                    on_note(rest[0])
                continue
            value, self.output = rest
            self.unanswered -= 1
            if kind == "error":
                raise Failed(value, self.output)
            return True, value
        return False, None

    def _write(self, sel=None):
        """Write what the pipe takes now; the rest waits for the selector (never blocks)."""
        try:
            if self.outgoing:
                del self.outgoing[:os.write(self.requests, self.outgoing)]
        except BlockingIOError:
            pass
        except (BrokenPipeError, ValueError):  # the child is gone: its answers pipe says how
            self.outgoing.clear()
        if sel is not None:
            registered = self.requests in sel.get_map()
            if self.outgoing and not registered:
                sel.register(self.requests, selectors.EVENT_WRITE)
            elif not self.outgoing and registered:
                sel.unregister(self.requests)

    def _exit_code(self):
        try:
            return self.proc.wait(REAP_SECONDS)
        except subprocess.TimeoutExpired:  # closed its end without exiting: ended here
            self.kill()
            return self.proc.wait()

    def kill(self):
        """SIGKILL to the whole group, while the child is not reaped (so its pid cannot be reused)."""
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self):
        """Kill the child's process group (it has answered, or is no longer wanted) and reap it.
        Idempotent."""
        self.kill()
        try:
            self.proc.wait(REAP_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        for close in (lambda: self.proc.stdin and self.proc.stdin.close(), lambda: os.close(self.answers)):
            try:
                close()
            except OSError:
                pass
        if self.group is not None:
            self.group.discard(self)


def run_command(argv, data, timeout):
    """Run an external program with `data` on its stdin, in its own process group, killed whole
    (with whatever it started) after `timeout` seconds: (returncode, stderr), or Timeout."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, err = proc.communicate(data, timeout=timeout)
    except BaseException as exc:
        # Not reaped yet, so its pid (the group's id) is still ours: a shell's `sleep` goes too.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise Timeout(f"no answer within {timeout:g}s") from None
        raise
    return proc.returncode, err


# --- the child side: everything below runs in the child process ------------------------------------

_answers: int = -1  # the pipe to the parent (in the child)


def preload(modules):
    """Import `modules` ahead of need (a warm-up while the caller does something else). Best
    effort: a module that fails to import here is reported by whatever imports it for real."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:
            pass


def note(value):
    """Tell the parent something before the answer (e.g. an id obtained halfway)."""
    _send(("note", value))


def _send(message):
    data = _frame(message)
    while data:
        data = data[os.write(_answers, data):]


def _read_exactly(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _receive(fd):
    header = _read_exactly(fd, HEADER.size)
    data = header and _read_exactly(fd, HEADER.unpack(header)[0])
    return None if data is None else pickle.loads(data)


def _die_with_parent(parent):
    """Linux: killed when the parent dies, so an orphan cannot linger; and a SIGINT (which reaches
    a child only when sent to it directly) ends it at once and silently."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above: nobody is waiting
        os._exit(1)


def _capture():
    """stdout and stderr into a temporary file, whose tail goes back with the answer."""
    import tempfile

    captured = tempfile.TemporaryFile()
    os.dup2(captured.fileno(), 1)
    os.dup2(captured.fileno(), 2)
    return captured


def _tail(captured):
    if captured is None:
        return ""
    captured.seek(0)
    return captured.read().decode("utf-8", "replace")[-CAPTURED_TAIL:]


def _one_line(exc):
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def _limit_memory(megabytes):
    import resource

    limit = int(megabytes) << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _flush_stdio():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def main():
    """`python -c BOOT <root> <answers fd> <parent pid> <name>`: serve requests until the parent
    closes the pipe (or kills the group), then leave with os._exit. Without the interpreter's
    shutdown, which after importing pandas, scikit-learn or MLflow takes up to a second the parent
    would spend waiting; whatever a function did is complete when it answers."""
    global _answers

    from ..base import faults

    _answers, parent = int(sys.argv[2]), int(sys.argv[3])
    os.set_inheritable(_answers, False)  # a process it starts must not hold the parent's EOF back
    _die_with_parent(parent)
    faults.point("child_started", interrupt=parent)
    requests = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)  # what it runs gets no stdin, as under multiprocessing
    os.dup2(devnull, 0)
    os.close(devnull)
    boot = _receive(requests)
    if boot is None:
        os._exit(0)  # the parent changed its mind (or died) before telling us anything
    sys.path[:] = boot["sys_path"]  # what the parent can import, its script's folder included
    captured = _capture() if boot["capture"] else None
    if boot["prepare"] is not None:
        function, args = boot["prepare"]
        function(*args)
    while True:  # until the parent closes the pipe (it kills the group once it is done with it)
        request = _receive(requests)
        if request is None:
            os._exit(0)  # dismissed, or done
        function, args, max_memory_mb = request
        try:
            if max_memory_mb:
                _limit_memory(max_memory_mb)
            answer: tuple[str, ...] = ("ok", function(*args))
        except Exception as exc:
            import traceback

            answer = ("error", _one_line(exc), traceback.format_exc())
        _flush_stdio()
        kind, value, *tb = answer
        _send((kind, value, _tail(captured) + "".join(tb)))
        if captured is not None:  # each answer carries the tail of its own request's output
            captured.seek(0)
            captured.truncate()
