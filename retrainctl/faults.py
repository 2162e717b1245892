"""Named crash points for the fault-injection tests: with RETRAINCTL_FAULT=<point> in the
environment, the process kills itself with SIGKILL when it reaches that point, so tests can
prove what a `kill -9` at exactly that moment leaves behind. Unset, it costs one dict lookup.

Points: before_save, after_save, after_track (MLflow done, store not yet promoted), after_promote
(attempt.py); mid_append (state.py, half a line written)."""
import os
import signal

ENV = "RETRAINCTL_FAULT"


def point(name):
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
