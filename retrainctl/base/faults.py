"""Named fault points for the fault-injection tests. With RETRAINCTL_FAULT=<point> in the
environment, the process kills itself with SIGKILL when it reaches that point, so tests can prove
what a `kill -9` at exactly that moment leaves behind; with RETRAINCTL_FAULT=sigint:<point>, the
controller gets the SIGINT of a Ctrl-C there (once). Unset, it costs one dict lookup.

Points: before_save, after_save, after_track (MLflow done, store not yet promoted), after_promote
(retrain/attempt.py); mid_append (state/log.py, half a line written); prewarmed (commands/check.py:
a model claimed and a fit process started for it, the others not yet decided); fit_submitted
(fit/executors.py); child_spawned, child_started (fit/child.py: in the parent, in the child);
tracking_warming, report_attaching (publish/tracking.py, in the tracking process)."""
import os
import signal

ENV = "RETRAINCTL_FAULT"
INTERRUPT = "sigint:"
_fired: set[str] = set()


def point(name: str, interrupt: int | None = None) -> None:
    """`interrupt`: the controller's pid, when this point is reached in a child process."""
    fault = os.environ.get(ENV)
    if fault == name:
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault == INTERRUPT + name and name not in _fired:
        _fired.add(name)
        os.kill(interrupt or os.getpid(), signal.SIGINT)
